package sql

import (
	"context"
	"errors"
	"sync"
	"time"
)

// writerQueue hands SQLite's one write lock to this process's writers in
// the order they asked, urgent ones (a callback's acknowledgement, which
// WeCom waits for) before the rest. SQLite's own busy handler polls instead:
// a writer that commits and begins again at once (an import's batches)
// wins nearly every poll, and a waiter starves past its busy timeout.
type writerQueue struct {
	mu     sync.Mutex
	busy   bool
	urgent []chan struct{}
	normal []chan struct{}
}

// writerWait bounds how long a write waits for its turn on SQLite before it
// fails like a busy database would.
const writerWait = 30 * time.Second

// ErrWriterBusy is a write on SQLite that waited writerWait for its turn.
var ErrWriterBusy = errors.New("database busy: waited too long for the SQLite writer")

// takeWriter waits for this process's turn to write (SQLite) and returns
// its release; on MySQL it returns at once.
func (db *DB) takeWriter(ctx context.Context) (func(), error) {
	if db.writer == nil {
		return func() {}, nil
	}
	return db.writer.take(ctx)
}

type urgentKey struct{}

// Urgent marks writes made with ctx as ones somebody is waiting on (an
// acknowledgement): on SQLite they go before queued background writes.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

func isUrgent(ctx context.Context) bool {
	u, _ := ctx.Value(urgentKey{}).(bool)
	return u
}

// take waits for the turn to write and returns its release. It gives up
// with ctx or after writerWait (ErrWriterBusy).
func (q *writerQueue) take(ctx context.Context) (func(), error) {
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		return q.release, nil
	}
	turn := make(chan struct{})
	urgent := isUrgent(ctx)
	if urgent {
		q.urgent = append(q.urgent, turn)
	} else {
		q.normal = append(q.normal, turn)
	}
	q.mu.Unlock()
	t := time.NewTimer(writerWait)
	defer t.Stop()
	var err error
	select {
	case <-turn:
		return q.release, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = ErrWriterBusy
	}
	q.mu.Lock()
	if q.leave(turn, urgent) {
		q.mu.Unlock()
		return nil, err
	}
	q.mu.Unlock()
	// The turn was handed over as the wait ended: pass it on.
	q.release()
	return nil, err
}

// leave takes a waiter out of its queue; false if it had been handed the turn.
func (q *writerQueue) leave(turn chan struct{}, urgent bool) bool {
	list := &q.normal
	if urgent {
		list = &q.urgent
	}
	for i, c := range *list {
		if c == turn {
			*list = append((*list)[:i], (*list)[i+1:]...)
			return true
		}
	}
	return false
}

// release hands the turn to the first urgent waiter, else the first other
// one, else frees it.
func (q *writerQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, list := range []*[]chan struct{}{&q.urgent, &q.normal} {
		if len(*list) > 0 {
			next := (*list)[0]
			*list = (*list)[1:]
			close(next)
			return
		}
	}
	q.busy = false
}
