package sql

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

// waiting counts the writers queued for the turn.
func (q *writerQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.urgent) + len(q.normal)
}

// Writers get the turn in the order they asked, an urgent one (a
// callback's acknowledgement) before those queued already; one that gives
// up leaves the queue without holding up the rest.
func TestWriterQueue_InOrderUrgentFirst(t *testing.T) {
	q := &writerQueue{}
	release, err := q.take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	queue := func(ctx context.Context, name string) {
		before := q.waiting()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := q.take(ctx)
			if err != nil {
				mu.Lock()
				order = append(order, name+" gave up")
				mu.Unlock()
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			rel()
		}()
		for q.waiting() == before { // it is in the queue
			runtime.Gosched()
		}
	}
	queue(context.Background(), "import 1")
	gone, cancel := context.WithCancel(context.Background())
	queue(gone, "import 2")
	queue(context.Background(), "import 3")
	queue(Urgent(context.Background()), "ack")
	cancel()
	for q.waiting() != 3 { // import 2 left
		runtime.Gosched()
	}
	release()
	wg.Wait()
	want := []string{"ack", "import 1", "import 3"}
	var got []string
	gaveUp := false
	for _, o := range order {
		if o == "import 2 gave up" {
			gaveUp = true
		} else {
			got = append(got, o)
		}
	}
	if !gaveUp || len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("order %q, want import 2 to give up and then %q", order, want)
	}
	// The turn is free again.
	rel, err := q.take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rel()
}
