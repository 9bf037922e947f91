// Package jobs runs Qiflow's asynchronous work: the inbox of WeCom events and
// its dispatcher (leases, retries, dead letters, fast lane), background job
// rows (progress, resume, cancel), and the cron schedule that runs once across
// instances. It holds no business rules: domain packages register subscribers
// and job kinds, and jobs calls them.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// Lane separates time-critical deliveries (the welcome message, whose code
// lives 20 s) from the rest, so they never wait behind a backlog.
type Lane int

const (
	LaneNormal Lane = 0
	LaneFast   Lane = 1
)

func (l Lane) String() string {
	if l == LaneFast {
		return "fast"
	}
	return "normal"
}

// Delivery statuses.
const (
	StatusQueued    = "queued"
	StatusDone      = "done"
	StatusDead      = "dead"
	StatusDismissed = "dismissed"
)

// Subscriber is a domain package's handler for inbox events.
type Subscriber struct {
	// Name is stable: deliveries are recorded under it.
	Name string
	Lane Lane
	// Match says whether the subscriber wants the event.
	Match func(ev wecom.Event) bool
	// Handle processes one delivery. It must be idempotent: after a crash a
	// delivery may run again. Return Permanent(err) to dead-letter at once.
	Handle func(ctx context.Context, d Delivery) error
}

// Delivery is one event handed to one subscriber.
type Delivery struct {
	ID         int64
	EventID    int64
	CorpID     string
	Subscriber string
	Event      wecom.Event
	Attempt    int
	ReceivedAt time.Time

	owner string
	lane  Lane
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks an error that retrying cannot fix: the delivery is dead-lettered at once.
func Permanent(err error) error { return permanentError{err} }

// Inbox is the durable store of WeCom events and their per-subscriber deliveries.
// Writers: the callback gateway appends events (through a group-committing
// writer); the dispatcher claims and settles deliveries; operators replay or
// dismiss dead letters. Every state change is one statement or one short transaction.
type Inbox struct {
	db  *qsql.DB
	log *slog.Logger
	now func() time.Time

	mu          sync.RWMutex
	subscribers []Subscriber

	appends chan *appendReq
	notify  [2]chan struct{} // per lane: new work for the local dispatcher
	closing chan struct{}
	writers sync.WaitGroup
}

// NewInbox returns an inbox over db. Call Start before Append.
func NewInbox(db *qsql.DB, log *slog.Logger) *Inbox {
	return &Inbox{
		db:      db,
		log:     log,
		now:     time.Now,
		appends: make(chan *appendReq, 4096),
		notify:  [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)},
		closing: make(chan struct{}),
	}
}

// SetClock replaces the clock (tests).
func (in *Inbox) SetClock(now func() time.Time) { in.now = now }

// Subscribe registers a subscriber. Events appended afterwards are delivered to it.
func (in *Inbox) Subscribe(s Subscriber) {
	if s.Name == "" || s.Handle == nil {
		panic("jobs: subscriber needs a name and a handler")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, x := range in.subscribers {
		if x.Name == s.Name {
			panic("jobs: subscriber registered twice: " + s.Name)
		}
	}
	in.subscribers = append(in.subscribers, s)
}

func (in *Inbox) subscriber(name string) (Subscriber, bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	for _, s := range in.subscribers {
		if s.Name == name {
			return s, true
		}
	}
	return Subscriber{}, false
}

func (in *Inbox) matching(ev wecom.Event) []Subscriber {
	in.mu.RLock()
	defer in.mu.RUnlock()
	var out []Subscriber
	for _, s := range in.subscribers {
		if s.Match == nil || s.Match(ev) {
			out = append(out, s)
		}
	}
	return out
}

type appendReq struct {
	corpID  string
	key     string // the event's dedup key, computed once
	ev      wecom.Event
	payload []byte
	done    chan appendResult
}

type appendResult struct {
	duplicate bool
	err       error
}

// Start runs the group-committing writers: concurrent Appends are written in
// one transaction, one multi-row statement per table. SQLite has one writer;
// MySQL a few, so a commit's fsync overlaps the next batch.
func (in *Inbox) Start() {
	n := 4
	if in.db.Dialect == qsql.SQLite {
		n = 1
	}
	for i := 0; i < n; i++ {
		in.writers.Add(1)
		go in.writeLoop()
	}
}

// Stop drains pending appends and stops the writers.
func (in *Inbox) Stop() {
	close(in.closing)
	in.writers.Wait()
}

const maxAppendBatch = 256

func (in *Inbox) writeLoop() {
	defer in.writers.Done()
	batch := make([]*appendReq, 0, maxAppendBatch)
	for {
		var first *appendReq
		select {
		case first = <-in.appends:
		case <-in.closing:
			// Answer whatever is still queued before leaving.
			for {
				select {
				case r := <-in.appends:
					in.flush([]*appendReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxAppendBatch {
			select {
			case r := <-in.appends:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		in.flush(batch)
	}
}

// Append durably records a decrypted event under its dedup key, with a
// delivery for each subscriber that wants it, and returns once committed.
// duplicate is true when the event was already in the inbox (a WeCom retry or
// replay): nothing new is written.
func (in *Inbox) Append(ctx context.Context, corpID string, ev wecom.Event, payload []byte) (duplicate bool, err error) {
	r := &appendReq{corpID: corpID, key: ev.DedupKey(), ev: ev, payload: payload, done: make(chan appendResult, 1)}
	select {
	case in.appends <- r:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-in.closing:
		return false, errors.New("inbox is shutting down")
	}
	select {
	case res := <-r.done:
		return res.duplicate, res.err
	case <-ctx.Done():
		// The write may still commit; WeCom's retry will then be a duplicate.
		return false, ctx.Err()
	}
}

func (in *Inbox) flush(batch []*appendReq) {
	// The writer's own deadline: the caller's context only bounds its wait.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Rows go in dedup-key order, so concurrent writers lock keys in one
	// order; a deadlock that still happens (other instances) is retried.
	sort.Slice(batch, func(i, j int) bool { return batch[i].key < batch[j].key })
	var dups []bool
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if dups, err = in.write(ctx, batch); err == nil || !isDeadlock(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	for i, r := range batch {
		r.done <- appendResult{duplicate: err == nil && dups[i], err: err}
	}
	if err == nil {
		in.wake(LaneFast)
		in.wake(LaneNormal)
	} else {
		in.log.Error("inbox write failed", "events", len(batch), "err", err)
	}
}

func (in *Inbox) wake(l Lane) {
	select {
	case in.notify[l] <- struct{}{}:
	default:
	}
}

var eventCols = []string{"corp_id", "dedup_key", "event", "change_type", "payload", "event_time", "received_at"}
var deliveryCols = []string{"event_id", "corp_id", "subscriber", "lane", "status", "attempts", "available_at", "lease_owner", "created_at", "updated_at"}

// write inserts the batch's events (skipping known dedup keys) and their
// deliveries (skipping existing ones) in one transaction, and reports which
// events were already there.
func (in *Inbox) write(ctx context.Context, batch []*appendReq) ([]bool, error) {
	now := qsql.Millis(in.now())
	type keyed struct{ corp, key string }
	keys := make([]keyed, len(batch))
	args := make([]any, 0, len(batch)*len(eventCols))
	for i, r := range batch {
		h := r.ev.Head()
		keys[i] = keyed{r.corpID, r.key}
		args = append(args, r.corpID, keys[i].key, eventName(h), h.ChangeType, string(r.payload), h.CreateTime*1000, now)
	}
	dups := make([]bool, len(batch))
	err := in.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		q := in.db.InsertIgnoreRows("inbox_events", eventCols, []string{"dedup_key", "corp_id"}, len(batch))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		// Find the ids, old and new; the dedup key decides which row is ours.
		placeholders := strings.TrimSuffix(strings.Repeat("?,", len(batch)), ",")
		kargs := make([]any, len(batch))
		for i, k := range keys {
			kargs[i] = k.key
		}
		var rows []struct {
			ID         int64  `db:"id"`
			CorpID     string `db:"corp_id"`
			Key        string `db:"dedup_key"`
			ReceivedAt int64  `db:"received_at"`
		}
		if err := tx.SelectContext(ctx, &rows, "SELECT id, corp_id, dedup_key, received_at FROM inbox_events WHERE dedup_key IN ("+placeholders+")", kargs...); err != nil {
			return fmt.Errorf("read event ids: %w", err)
		}
		ids := make(map[keyed]int64, len(rows))
		fresh := make(map[keyed]bool, len(rows))
		for _, r := range rows {
			k := keyed{r.CorpID, r.Key}
			ids[k] = r.ID
			fresh[k] = r.ReceivedAt == now
		}
		var dargs []any
		n := 0
		seen := map[int64]bool{}
		for i, r := range batch {
			id, ok := ids[keys[i]]
			if !ok {
				return fmt.Errorf("event %s vanished after insert", keys[i].key)
			}
			// A key inserted before this batch, or twice within it, is a duplicate.
			// (Telling "before" by received_at is exact enough for logs and
			// metrics; one row and one set of deliveries per event come from
			// the unique keys, not from this flag.)
			dups[i] = !fresh[keys[i]] || seen[id]
			if seen[id] {
				continue
			}
			seen[id] = true
			for _, s := range in.matching(r.ev) {
				dargs = append(dargs, id, r.corpID, s.Name, int(s.Lane), StatusQueued, 0, now, "", now, now)
				n++
			}
		}
		if n == 0 {
			return nil
		}
		q = in.db.InsertIgnoreRows("inbox_deliveries", deliveryCols, []string{"event_id", "subscriber"}, n)
		if _, err := tx.ExecContext(ctx, q, dargs...); err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		return nil
	})
	return dups, err
}

func eventName(h wecom.Header) string {
	if h.Event != "" {
		return h.Event
	}
	return h.MsgType
}

// Claim leases up to n due deliveries of a lane to owner for lease. The lease
// is taken in one short transaction; other instances skip rows being claimed
// (SKIP LOCKED on MySQL, the single writer on SQLite). A lease that expired
// (its holder crashed) is due again and is taken over here.
func (in *Inbox) Claim(ctx context.Context, lane Lane, owner string, n int, lease time.Duration) ([]Delivery, error) {
	now := in.now()
	var claimed []struct {
		ID         int64  `db:"id"`
		EventID    int64  `db:"event_id"`
		CorpID     string `db:"corp_id"`
		Subscriber string `db:"subscriber"`
		Attempts   int    `db:"attempts"`
	}
	err := in.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		claimed = claimed[:0]
		err := tx.SelectContext(ctx, &claimed,
			`SELECT id, event_id, corp_id, subscriber, attempts FROM inbox_deliveries
			 WHERE lane = ? AND status = ? AND available_at <= ?
			 ORDER BY available_at LIMIT ?`+in.db.ForUpdateSkipLocked(),
			int(lane), StatusQueued, qsql.Millis(now), n)
		if err != nil || len(claimed) == 0 {
			return err
		}
		ids := make([]int64, len(claimed))
		for i, c := range claimed {
			ids[i] = c.ID
		}
		q, args, err := sqlx.In(`UPDATE inbox_deliveries SET lease_owner = ?, available_at = ?, attempts = attempts + 1, updated_at = ? WHERE id IN (?)`,
			owner, qsql.Millis(now.Add(lease)), qsql.Millis(now), ids)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil || len(claimed) == 0 {
		return nil, err
	}
	eventIDs := make([]int64, 0, len(claimed))
	for _, c := range claimed {
		eventIDs = append(eventIDs, c.EventID)
	}
	events, err := in.loadEvents(ctx, eventIDs)
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, 0, len(claimed))
	for _, c := range claimed {
		ev := events[c.EventID]
		out = append(out, Delivery{
			ID: c.ID, EventID: c.EventID, CorpID: c.CorpID, Subscriber: c.Subscriber,
			Event: ev.event, Attempt: c.Attempts + 1, ReceivedAt: ev.receivedAt,
			owner: owner, lane: lane,
		})
	}
	return out, nil
}

type loadedEvent struct {
	event      wecom.Event
	receivedAt time.Time
}

func (in *Inbox) loadEvents(ctx context.Context, ids []int64) (map[int64]loadedEvent, error) {
	q, args, err := sqlx.In(`SELECT id, payload, received_at FROM inbox_events WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID         int64  `db:"id"`
		Payload    string `db:"payload"`
		ReceivedAt int64  `db:"received_at"`
	}
	if err := in.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := make(map[int64]loadedEvent, len(rows))
	for _, r := range rows {
		ev, err := wecom.ParseEvent([]byte(r.Payload))
		if err != nil {
			// Stored events were parsed once on the way in; keep it raw rather than lose it.
			ev = &wecom.RawEvent{XML: []byte(r.Payload)}
		}
		out[r.ID] = loadedEvent{ev, qsql.FromMillis(r.ReceivedAt)}
	}
	return out, nil
}

// complete marks deliveries done. Only rows still leased by their owner
// change: a delivery whose lease expired and was taken over is left to its new holder.
func (in *Inbox) complete(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	byOwner := map[string][]int64{}
	for _, d := range ds {
		byOwner[d.owner] = append(byOwner[d.owner], d.ID)
	}
	now := qsql.Millis(in.now())
	for owner, ids := range byOwner {
		q, args, err := sqlx.In(`UPDATE inbox_deliveries SET status = ?, lease_owner = '', done_at = ?, updated_at = ?, last_error = NULL
			WHERE id IN (?) AND lease_owner = ? AND status = ?`, StatusDone, now, now, ids, owner, StatusQueued)
		if err != nil {
			return err
		}
		if _, err := in.db.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// fail records a failed attempt: retried after backoff, or dead-lettered after
// the last attempt or on a permanent error.
func (in *Inbox) fail(ctx context.Context, d Delivery, cause error, maxAttempts int, backoff time.Duration) (dead bool, err error) {
	now := in.now()
	msg := cause.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	var pe permanentError
	dead = d.Attempt >= maxAttempts || errors.As(cause, &pe)
	status, next := StatusQueued, now.Add(backoff)
	if dead {
		status, next = StatusDead, now
	}
	_, err = in.db.ExecContext(ctx, `UPDATE inbox_deliveries SET status = ?, available_at = ?, lease_owner = '', last_error = ?, updated_at = ?
		WHERE id = ? AND lease_owner = ? AND status = ?`,
		status, qsql.Millis(next), msg, qsql.Millis(now), d.ID, d.owner, StatusQueued)
	return dead, err
}

// Replay re-queues an event's dead (or dismissed) deliveries with fresh attempts.
// It returns how many deliveries were re-queued.
func (in *Inbox) Replay(ctx context.Context, corpID string, eventID int64) (int, error) {
	now := qsql.Millis(in.now())
	res, err := in.db.ExecContext(ctx, `UPDATE inbox_deliveries SET status = ?, attempts = 0, available_at = ?, lease_owner = '', updated_at = ?
		WHERE event_id = ? AND corp_id = ? AND status IN (?, ?)`, StatusQueued, now, now, eventID, corpID, StatusDead, StatusDismissed)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		in.wake(LaneFast)
		in.wake(LaneNormal)
	}
	return int(n), nil
}

// Dismiss closes an event's dead letters without running them.
func (in *Inbox) Dismiss(ctx context.Context, corpID string, eventID int64) (int, error) {
	now := qsql.Millis(in.now())
	res, err := in.db.ExecContext(ctx, `UPDATE inbox_deliveries SET status = ?, updated_at = ? WHERE event_id = ? AND corp_id = ? AND status = ?`,
		StatusDismissed, now, eventID, corpID, StatusDead)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Prune deletes events received before cutoff whose deliveries are all settled
// (done or dismissed). Dead letters and unfinished work are kept. It deletes
// in small batches so it never holds long locks.
func (in *Inbox) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		var ids []int64
		err := in.db.SelectContext(ctx, &ids, `SELECT e.id FROM inbox_events e WHERE e.received_at < ?
			AND NOT EXISTS (SELECT 1 FROM inbox_deliveries d WHERE d.event_id = e.id AND d.status IN (?, ?))
			ORDER BY e.id LIMIT 500`, qsql.Millis(cutoff), StatusQueued, StatusDead)
		if err != nil || len(ids) == 0 {
			return total, err
		}
		err = in.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
			q, args, _ := sqlx.In(`DELETE FROM inbox_deliveries WHERE event_id IN (?)`, ids)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
			q, args, _ = sqlx.In(`DELETE FROM inbox_events WHERE id IN (?)`, ids)
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		})
		if err != nil {
			return total, err
		}
		total += len(ids)
	}
}

// InboxStats summarizes unfinished work.
type InboxStats struct {
	Queued    [2]int
	OldestAge [2]time.Duration
	Dead      int
}

// Stats counts queued deliveries per lane, the oldest one's age, and dead letters.
func (in *Inbox) Stats(ctx context.Context) (InboxStats, error) {
	var st InboxStats
	var rows []struct {
		Lane   int   `db:"lane"`
		N      int   `db:"n"`
		Oldest int64 `db:"oldest"`
	}
	if err := in.db.SelectContext(ctx, &rows, `SELECT lane, COUNT(*) AS n, MIN(created_at) AS oldest FROM inbox_deliveries WHERE status = ? GROUP BY lane`, StatusQueued); err != nil {
		return st, err
	}
	now := in.now()
	for _, r := range rows {
		if r.Lane == 0 || r.Lane == 1 {
			st.Queued[r.Lane] = r.N
			st.OldestAge[r.Lane] = now.Sub(qsql.FromMillis(r.Oldest))
		}
	}
	err := in.db.GetContext(ctx, &st.Dead, `SELECT COUNT(*) FROM inbox_deliveries WHERE status = ?`, StatusDead)
	return st, err
}
