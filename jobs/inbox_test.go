package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom"
)

var quiet = slog.New(slog.NewTextHandler(testLogOut(), nil))

func addEvent(corp, staff, customer string, at int64) (wecom.Event, []byte) {
	x := fmt.Sprintf(`<xml><ToUserName>%s</ToUserName><FromUserName>sys</FromUserName><CreateTime>%d</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><UserID>%s</UserID><ExternalUserID>%s</ExternalUserID><WelcomeCode>W</WelcomeCode></xml>`, corp, at, staff, customer)
	ev, err := wecom.ParseEvent([]byte(x))
	if err != nil {
		panic(err)
	}
	return ev, []byte(x)
}

func newInbox(t *testing.T, db *qsql.DB) *Inbox {
	in := NewInbox(db, quiet)
	in.Start()
	t.Cleanup(in.Stop)
	return in
}

func startDispatcher(t *testing.T, in *Inbox, owner string, lease time.Duration) *Dispatcher {
	d := NewDispatcher(in, DispatcherOptions{Owner: owner, Workers: 4, FastWorkers: 2, Lease: lease, MaxAttempts: 3,
		Poll: 20 * time.Millisecond, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, quiet)
	d.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Stop(ctx)
	})
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(t *testing.T, db *qsql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, q, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInbox_SameEventThreeTimesIsOneRowAndOneProcessing(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		in := newInbox(t, db)
		var calls atomic.Int32
		in.Subscribe(Subscriber{Name: "count", Lane: LaneNormal, Handle: func(ctx context.Context, d Delivery) error {
			calls.Add(1)
			return nil
		}})
		ev, raw := addEvent("ww1", "zhangsan", "wmA", 1700000000)
		ctx := context.Background()
		var dupes int
		for i := 0; i < 3; i++ {
			dup, err := in.Append(ctx, "ww1", ev, raw)
			if err != nil {
				t.Fatal(err)
			}
			if dup {
				dupes++
			}
		}
		if dupes != 2 {
			t.Fatalf("%d of 3 appends reported duplicate, want 2", dupes)
		}
		startDispatcher(t, in, "a", 5*time.Second)
		waitFor(t, "delivery done", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM inbox_deliveries WHERE status = 'done'") == 1
		})
		time.Sleep(100 * time.Millisecond)
		if n := count(t, db, "SELECT COUNT(*) FROM inbox_events"); n != 1 {
			t.Fatalf("%d inbox rows", n)
		}
		if calls.Load() != 1 {
			t.Fatalf("subscriber called %d times", calls.Load())
		}
	})
}

func TestInbox_ConcurrentAppendsKeepOneRowPerEvent(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		in := newInbox(t, db)
		in.Subscribe(Subscriber{Name: "s1", Handle: func(context.Context, Delivery) error { return nil }})
		in.Subscribe(Subscriber{Name: "s2", Lane: LaneFast, Handle: func(context.Context, Delivery) error { return nil }})
		var wg sync.WaitGroup
		// 50 distinct events, each posted by 4 goroutines at once.
		for i := 0; i < 50; i++ {
			for j := 0; j < 4; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ev, raw := addEvent("ww1", "u", fmt.Sprintf("wm%d", i), 1700000000)
					if _, err := in.Append(context.Background(), "ww1", ev, raw); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		if n := count(t, db, "SELECT COUNT(*) FROM inbox_events"); n != 50 {
			t.Fatalf("%d events, want 50", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM inbox_deliveries"); n != 100 {
			t.Fatalf("%d deliveries, want 100", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM inbox_deliveries WHERE lane = 1"); n != 50 {
			t.Fatalf("%d fast deliveries, want 50", n)
		}
	})
}

func TestDispatcher_RetriesOnlyTheFailedSubscriberThenDeadLetters(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		in := newInbox(t, db)
		var okCalls, flakyCalls, brokenCalls atomic.Int32
		in.Subscribe(Subscriber{Name: "ok", Handle: func(context.Context, Delivery) error { okCalls.Add(1); return nil }})
		in.Subscribe(Subscriber{Name: "flaky", Handle: func(ctx context.Context, d Delivery) error {
			if flakyCalls.Add(1) < 3 {
				return errors.New("wecom busy")
			}
			return nil
		}})
		in.Subscribe(Subscriber{Name: "broken", Handle: func(context.Context, Delivery) error {
			brokenCalls.Add(1)
			return errors.New("always fails")
		}})
		ev, raw := addEvent("ww1", "u", "wm1", 1700000000)
		if _, err := in.Append(context.Background(), "ww1", ev, raw); err != nil {
			t.Fatal(err)
		}
		startDispatcher(t, in, "a", 5*time.Second)
		waitFor(t, "settled", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM inbox_deliveries WHERE status IN ('done','dead')") == 3
		})
		if okCalls.Load() != 1 || flakyCalls.Load() != 3 || brokenCalls.Load() != 3 {
			t.Fatalf("calls ok=%d flaky=%d broken=%d", okCalls.Load(), flakyCalls.Load(), brokenCalls.Load())
		}
		var dead struct {
			Status   string `db:"status"`
			Attempts int    `db:"attempts"`
			Err      string `db:"last_error"`
		}
		if err := db.Get(&dead, "SELECT status, attempts, last_error FROM inbox_deliveries WHERE subscriber = 'broken'"); err != nil {
			t.Fatal(err)
		}
		if dead.Status != StatusDead || dead.Attempts != 3 || dead.Err != "always fails" {
			t.Fatalf("dead letter: %+v", dead)
		}
		// The event is kept while it has a dead letter, even past retention.
		if n, err := in.Prune(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("prune removed %d (err %v) with a dead letter present", n, err)
		}
		// Replay runs only the dead subscriber again.
		var eventID int64
		db.Get(&eventID, "SELECT id FROM inbox_events")
		n, err := in.Replay(context.Background(), "ww1", eventID)
		if err != nil || n != 1 {
			t.Fatalf("replay: %d %v", n, err)
		}
		waitFor(t, "replayed attempts", func() bool { return brokenCalls.Load() == 6 })
		if okCalls.Load() != 1 {
			t.Fatal("replay re-ran a subscriber that had succeeded")
		}
		waitFor(t, "dead again", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM inbox_deliveries WHERE status = 'dead'") == 1
		})
		if n, err := in.Dismiss(context.Background(), "ww1", eventID); err != nil || n != 1 {
			t.Fatalf("dismiss: %d %v", n, err)
		}
		if n, err := in.Prune(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("prune after dismiss removed %d (err %v)", n, err)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM inbox_deliveries"); n != 0 {
			t.Fatalf("%d deliveries left after prune", n)
		}
	})
}

func TestDispatcher_KilledInstanceLeasesAreFinishedByAnother(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		// Two instances share the database: A claims and freezes mid-processing.
		inA, inB := newInbox(t, db), newInbox(t, db)
		frozen := make(chan struct{})
		t.Cleanup(func() { close(frozen) })
		var aStarted atomic.Int32
		var bDone sync.Map
		inA.Subscribe(Subscriber{Name: "work", Handle: func(ctx context.Context, d Delivery) error {
			aStarted.Add(1)
			<-frozen
			return nil
		}})
		inB.Subscribe(Subscriber{Name: "work", Handle: func(ctx context.Context, d Delivery) error {
			bDone.Store(d.EventID, true)
			return nil
		}})
		for i := 0; i < 3; i++ {
			ev, raw := addEvent("ww1", "u", fmt.Sprintf("wm%d", i), 1700000000)
			if _, err := inA.Append(context.Background(), "ww1", ev, raw); err != nil {
				t.Fatal(err)
			}
		}
		lease := 1500 * time.Millisecond
		a := NewDispatcher(inA, DispatcherOptions{Owner: "A", Workers: 4, FastWorkers: 1, Lease: lease, MaxAttempts: 3, Poll: 20 * time.Millisecond}, quiet)
		a.Start()
		waitFor(t, "A to take all three", func() bool { return aStarted.Load() == 3 })
		a.Kill()
		startDispatcher(t, inB, "B", lease)
		waitFor(t, "B to finish A's leased rows", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM inbox_deliveries WHERE status = 'done'") == 3
		})
		if n := count(t, db, "SELECT COUNT(*) FROM inbox_deliveries WHERE attempts = 2"); n != 3 {
			t.Fatalf("%d deliveries show the second attempt", n)
		}
	})
}

func TestDispatcher_FastLaneDoesNotWaitBehindBacklog(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		in := newInbox(t, db)
		block := make(chan struct{})
		defer close(block)
		in.Subscribe(Subscriber{Name: "slow", Lane: LaneNormal, Handle: func(ctx context.Context, d Delivery) error {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil
		}})
		var fast sync.Map
		in.Subscribe(Subscriber{Name: "welcome", Lane: LaneFast, Handle: func(ctx context.Context, d Delivery) error {
			fast.Store(d.EventID, true)
			return nil
		}})
		startDispatcher(t, in, "a", 5*time.Second)
		for i := 0; i < 40; i++ {
			ev, raw := addEvent("ww1", "u", fmt.Sprintf("wm%d", i), 1700000000)
			if _, err := in.Append(context.Background(), "ww1", ev, raw); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every fast delivery while the normal lane is stuck", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM inbox_deliveries WHERE subscriber = 'welcome' AND status = 'done'") == 40
		})
	})
}

func testLogOut() io.Writer {
	if os.Getenv("QIFLOW_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
