package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

var quiet = slog.New(slog.NewTextHandler(testLogOut(), nil))

func testLogOut() io.Writer {
	if os.Getenv("QIFLOW_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// contactEvent is a domain event about a contact, numbered per contact.
type contactEvent struct {
	Contact string    `json:"contact"`
	Seq     int       `json:"seq"`
	At      time.Time `json:"at"`
}

func (e contactEvent) EventType() string    { return "TestContactEvent" }
func (e contactEvent) EventSubject() string { return "ext:" + e.Contact }
func (e contactEvent) EventKey() string     { return fmt.Sprintf("%s/%d", e.Contact, e.Seq) }
func (e contactEvent) EventTime() time.Time { return e.At }

// external is an event from outside (as WeCom's are), stored as JSON.
type external struct {
	Kind    string `json:"kind"`
	Contact string `json:"contact"`
	At      int64  `json:"at"`
}

func incoming(corp, kind, contact string, at time.Time) Incoming {
	x := external{Kind: kind, Contact: contact, At: at.UnixMilli()}
	b, _ := json.Marshal(x)
	return Incoming{CorpID: corp, Source: "ext", Type: "contact/" + kind, Subject: "ext:" + contact,
		DedupKey: fmt.Sprintf("%s/%s/%d", kind, contact, at.UnixMilli()), Payload: b, OccurredAt: at, Data: &x}
}

func newBus(t *testing.T, db *qsql.DB) *Bus {
	b := NewBus(db, quiet)
	b.RegistryRefresh = time.Hour // tests sync the registry when they mean to
	b.RegisterSource("ext", func(_ string, p []byte) (any, error) {
		var x external
		err := json.Unmarshal(p, &x)
		return &x, err
	})
	RegisterEvent[contactEvent](b)
	return b
}

func startBus(t *testing.T, b *Bus) {
	t.Helper()
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
}

func dispatcherFor(b *Bus, owner string, lease time.Duration) *Dispatcher {
	return NewDispatcher(b, DispatcherOptions{Owner: owner, Workers: 4, FastWorkers: 2, Lease: lease, MaxAttempts: 3,
		Poll: 20 * time.Millisecond, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, quiet)
}

func startDispatcher(t *testing.T, b *Bus, owner string, lease time.Duration) *Dispatcher {
	d := dispatcherFor(b, owner, lease)
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
	deadline := time.Now().Add(20 * time.Second)
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

// settled waits until no delivery is queued: after it, nothing more can run.
func settled(t *testing.T, db *qsql.DB) {
	t.Helper()
	waitFor(t, "every delivery settled", func() bool {
		return count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE status = 'queued'") == 0
	})
}

func TestBus_SameEventThreeTimesIsOneRowAndOneProcessing(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		var calls atomic.Int32
		On(b, Subscription[*external]{Name: "count", Types: []string{"contact/*"}, Handle: func(ctx context.Context, d Delivery, ev *external) error {
			calls.Add(1)
			return nil
		}})
		startBus(t, b)
		in := incoming("ww1", "added", "wmA", time.UnixMilli(1700000000000))
		var dupes int
		for i := 0; i < 3; i++ {
			dup, err := b.Receive(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if dup {
				dupes++
			}
		}
		if dupes != 2 {
			t.Fatalf("%d of 3 receives reported duplicate, want 2", dupes)
		}
		startDispatcher(t, b, "a", 5*time.Second)
		settled(t, db)
		if n := count(t, db, "SELECT COUNT(*) FROM bus_events"); n != 1 {
			t.Fatalf("%d event rows", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE status = 'done'"); n != 1 || calls.Load() != 1 {
			t.Fatalf("%d done deliveries, subscriber called %d times", n, calls.Load())
		}
	})
}

func TestBus_ConcurrentReceivesKeepOneRowPerEvent(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		noop := func(context.Context, Delivery, *external) error { return nil }
		On(b, Subscription[*external]{Name: "s1", Types: []string{"contact/*"}, Handle: noop})
		On(b, Subscription[*external]{Name: "s2", Lane: LaneFast, Types: []string{"contact/added"}, Handle: noop})
		startBus(t, b)
		var wg sync.WaitGroup
		// 50 distinct events, each posted by 4 goroutines at once.
		for i := 0; i < 50; i++ {
			for j := 0; j < 4; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := b.Receive(context.Background(), incoming("ww1", "added", fmt.Sprintf("wm%d", i), time.UnixMilli(1700000000000))); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		if n := count(t, db, "SELECT COUNT(*) FROM bus_events"); n != 50 {
			t.Fatalf("%d events, want 50", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries"); n != 100 {
			t.Fatalf("%d deliveries, want 100", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE lane = 1"); n != 50 {
			t.Fatalf("%d fast deliveries, want 50", n)
		}
	})
}

func TestBus_TypesAndFilterChooseSubscribers(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		var got sync.Map
		rec := func(name string) func(context.Context, Delivery, *external) error {
			return func(_ context.Context, d Delivery, ev *external) error {
				got.Store(name+"/"+ev.Kind+"/"+ev.Contact, true)
				return nil
			}
		}
		On(b, Subscription[*external]{Name: "adds", Types: []string{"contact/added"}, Handle: rec("adds")})
		On(b, Subscription[*external]{Name: "all", Types: []string{"contact/*"}, Handle: rec("all")})
		On(b, Subscription[*external]{Name: "vip", Types: []string{"*"}, Where: func(ev *external) bool { return ev.Contact == "vip" }, Handle: rec("vip")})
		startBus(t, b)
		at := time.UnixMilli(1700000000000)
		for _, in := range []Incoming{incoming("ww1", "added", "vip", at), incoming("ww1", "lost", "plain", at)} {
			if _, err := b.Receive(context.Background(), in); err != nil {
				t.Fatal(err)
			}
		}
		startDispatcher(t, b, "a", 5*time.Second)
		settled(t, db)
		var keys []string
		got.Range(func(k, _ any) bool { keys = append(keys, k.(string)); return true })
		want := map[string]bool{"adds/added/vip": true, "all/added/vip": true, "all/lost/plain": true, "vip/added/vip": true}
		if len(keys) != len(want) {
			t.Fatalf("handled %v, want %v", keys, want)
		}
		for _, k := range keys {
			if !want[k] {
				t.Fatalf("handled %v, want %v", keys, want)
			}
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries"); n != 4 {
			t.Fatalf("%d deliveries: filtered-out subscribers got rows", n)
		}
	})
}

// A skipped subscriber (bench callbacks --skip) is not registered: its
// events get no deliveries, the others' are untouched, and Skipped tells
// the names that matched a subscriber from a misspelt one.
func TestBus_SkippedSubscribersGetNoDeliveries(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		b.Skip("later", "misspelt")
		var handled atomic.Int64
		On(b, Subscription[*external]{Name: "first", Types: []string{"contact/*"}, Handle: func(context.Context, Delivery, *external) error {
			handled.Add(1)
			return nil
		}})
		On(b, Subscription[*external]{Name: "later", Types: []string{"contact/*"}, Handle: func(context.Context, Delivery, *external) error {
			t.Error("a skipped subscriber ran")
			return nil
		}})
		if got := b.Skipped(); len(got) != 1 || got[0] != "later" {
			t.Fatalf("Skipped() = %v, want [later]", got)
		}
		if subs := b.Subscribers(); len(subs) != 1 || subs[0].Name != "first" {
			t.Fatalf("subscribers %v, want only first", subs)
		}
		startBus(t, b)
		if _, err := b.Receive(context.Background(), incoming("ww1", "added", "c1", time.UnixMilli(1700000000000))); err != nil {
			t.Fatal(err)
		}
		startDispatcher(t, b, "a", 5*time.Second)
		settled(t, db)
		if n := handled.Load(); n != 1 {
			t.Fatalf("first handled %d events, want 1", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE subscriber = 'later'"); n != 0 {
			t.Fatalf("the skipped subscriber got %d deliveries", n)
		}
	})
}

// The gauges: deliveries waiting per lane, the age of each lane's oldest,
// and dead letters.
func TestBus_StatsCountEachLaneAndAgeItsOldest(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		t0 := time.UnixMilli(1700000000000)
		clock := t0
		b.SetClock(func() time.Time { return clock })
		noop := func(context.Context, Delivery, *external) error { return nil }
		On(b, Subscription[*external]{Name: "normal", Types: []string{"contact/*"}, Handle: noop})
		On(b, Subscription[*external]{Name: "fast", Lane: LaneFast, Types: []string{"contact/added"}, Handle: noop})
		startBus(t, b)
		ctx := context.Background()
		if st, err := b.Stats(ctx); err != nil || st != (BusStats{}) {
			t.Fatalf("empty bus: %+v %v", st, err)
		}
		if _, err := b.Receive(ctx, incoming("ww1", "added", "c1", t0)); err != nil {
			t.Fatal(err)
		}
		clock = t0.Add(2 * time.Second)
		if _, err := b.Receive(ctx, incoming("ww1", "lost", "c2", clock)); err != nil {
			t.Fatal(err)
		}
		clock = t0.Add(10 * time.Second)
		st, err := b.Stats(ctx)
		want := BusStats{Queued: [2]int{LaneNormal: 2, LaneFast: 1}, OldestAge: [2]time.Duration{LaneNormal: 10 * time.Second, LaneFast: 10 * time.Second}}
		if err != nil || st != want {
			t.Fatalf("stats %+v %v, want %+v", st, err, want)
		}
		// The oldest normal delivery dead-lettered: the next one is the oldest.
		if _, err := db.Exec(`UPDATE bus_deliveries SET status = 'dead' WHERE subscriber = 'normal' AND created_at = ?`, t0.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		st, err = b.Stats(ctx)
		want = BusStats{Queued: [2]int{LaneNormal: 1, LaneFast: 1}, OldestAge: [2]time.Duration{LaneNormal: 8 * time.Second, LaneFast: 10 * time.Second}, Dead: 1}
		if err != nil || st != want {
			t.Fatalf("stats %+v %v, want %+v", st, err, want)
		}
	})
}

func TestDispatcher_RetriesOnlyTheFailedSubscriberThenDeadLetters(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		var okCalls, flakyCalls, brokenCalls atomic.Int32
		types := []string{"contact/*"}
		On(b, Subscription[*external]{Name: "ok", Types: types, Handle: func(context.Context, Delivery, *external) error { okCalls.Add(1); return nil }})
		On(b, Subscription[*external]{Name: "flaky", Types: types, Handle: func(context.Context, Delivery, *external) error {
			if flakyCalls.Add(1) < 3 {
				return errors.New("wecom busy")
			}
			return nil
		}})
		On(b, Subscription[*external]{Name: "broken", Types: types, Handle: func(context.Context, Delivery, *external) error {
			brokenCalls.Add(1)
			return errors.New("always fails")
		}})
		startBus(t, b)
		if _, err := b.Receive(context.Background(), incoming("ww1", "added", "wm1", time.UnixMilli(1700000000000))); err != nil {
			t.Fatal(err)
		}
		startDispatcher(t, b, "a", 5*time.Second)
		settled(t, db)
		if okCalls.Load() != 1 || flakyCalls.Load() != 3 || brokenCalls.Load() != 3 {
			t.Fatalf("calls ok=%d flaky=%d broken=%d", okCalls.Load(), flakyCalls.Load(), brokenCalls.Load())
		}
		var dead struct {
			Status   string `db:"status"`
			Attempts int    `db:"attempts"`
			Err      string `db:"last_error"`
		}
		if err := db.Get(&dead, "SELECT status, attempts, last_error FROM bus_deliveries WHERE subscriber = 'broken'"); err != nil {
			t.Fatal(err)
		}
		if dead.Status != StatusDead || dead.Attempts != 3 || dead.Err != "always fails" {
			t.Fatalf("dead letter: %+v", dead)
		}
		// The event is kept while it has a dead letter, even past retention.
		if n, err := b.Prune(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("prune removed %d (err %v) with a dead letter present", n, err)
		}
		// Replay runs only the dead subscriber again.
		var eventID int64
		db.Get(&eventID, "SELECT id FROM bus_events")
		n, err := b.Replay(context.Background(), "ww1", eventID)
		if err != nil || n != 1 {
			t.Fatalf("replay: %d %v", n, err)
		}
		waitFor(t, "dead again", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE status = 'dead'") == 1 && brokenCalls.Load() == 6
		})
		if okCalls.Load() != 1 {
			t.Fatal("replay re-ran a subscriber that had succeeded")
		}
		if n, err := b.Dismiss(context.Background(), "ww1", eventID); err != nil || n != 1 {
			t.Fatalf("dismiss: %d %v", n, err)
		}
		if n, err := b.Prune(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("prune after dismiss removed %d (err %v)", n, err)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries"); n != 0 {
			t.Fatalf("%d deliveries left after prune", n)
		}
	})
}

func TestDispatcher_FastLaneDoesNotWaitBehindBacklog(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		block := make(chan struct{})
		defer close(block)
		On(b, Subscription[*external]{Name: "slow", Types: []string{"contact/*"}, Handle: func(ctx context.Context, d Delivery, _ *external) error {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil
		}})
		On(b, Subscription[*external]{Name: "welcome", Lane: LaneFast, Types: []string{"contact/*"}, Handle: func(context.Context, Delivery, *external) error { return nil }})
		startBus(t, b)
		startDispatcher(t, b, "a", 5*time.Second)
		for i := 0; i < 40; i++ {
			if _, err := b.Receive(context.Background(), incoming("ww1", "added", fmt.Sprintf("wm%d", i), time.UnixMilli(1700000000000))); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every fast delivery while the normal lane is stuck", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE subscriber = 'welcome' AND status = 'done'") == 40
		})
	})
}

// subjectChecker records, per subject, the order events were handled in and
// whether two were ever handled at once.
type subjectChecker struct {
	mu      sync.Mutex
	running map[string]int
	seen    map[string][]int
	overlap atomic.Int32
}

func newSubjectChecker() *subjectChecker {
	return &subjectChecker{running: map[string]int{}, seen: map[string][]int{}}
}

func (c *subjectChecker) handle(subject string, seq int, work func()) {
	c.mu.Lock()
	c.running[subject]++
	if c.running[subject] > 1 {
		c.overlap.Add(1)
	}
	c.mu.Unlock()
	work()
	c.mu.Lock()
	c.running[subject]--
	c.seen[subject] = append(c.seen[subject], seq)
	c.mu.Unlock()
}

// check fails unless every subject saw 0..n-1 once each, in order.
func (c *subjectChecker) check(t *testing.T, subjects, n int) {
	t.Helper()
	if c.overlap.Load() > 0 {
		t.Fatalf("%d times two events of one subject were handled at once", c.overlap.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) != subjects {
		t.Fatalf("%d subjects handled, want %d", len(c.seen), subjects)
	}
	for s, seqs := range c.seen {
		if len(seqs) != n {
			t.Fatalf("subject %s: handled %v, want each of %d events once", s, seqs, n)
		}
		for i, q := range seqs {
			if q != i {
				t.Fatalf("subject %s: handled in order %v", s, seqs)
			}
		}
	}
}

func TestBus_OneSubjectAtATimeInTheOrderEventsHappened(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		chk := newSubjectChecker()
		On(b, Subscription[contactEvent]{Name: "ordered", Handle: func(_ context.Context, d Delivery, ev contactEvent) error {
			if rand.IntN(10) == 0 && d.Attempt == 1 {
				return errors.New("transient") // a retry must not let a later event overtake
			}
			chk.handle(d.Subject, ev.Seq, func() { time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond) })
			return nil
		}})
		startBus(t, b)
		const contacts, perContact = 8, 12
		base := time.UnixMilli(1700000000000)
		// Published in a shuffled order: what counts is when they happened.
		type pub struct{ c, s int }
		var all []pub
		for c := 0; c < contacts; c++ {
			for s := 0; s < perContact; s++ {
				all = append(all, pub{c, s})
			}
		}
		rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for _, p := range all {
			ev := contactEvent{Contact: fmt.Sprintf("c%d", p.c), Seq: p.s, At: base.Add(time.Duration(p.s) * time.Second)}
			if err := db.WriteTx(context.Background(), func(tx *qsql.Tx) error { return b.Publish(context.Background(), tx, "ww1", ev) }); err != nil {
				t.Fatal(err)
			}
		}
		startDispatcher(t, b, "a", 5*time.Second)
		settled(t, db)
		chk.check(t, contacts, perContact)
		if n := count(t, db, "SELECT COUNT(*) FROM bus_subject_locks"); n != 0 {
			t.Fatalf("%d subject locks left after every delivery settled", n)
		}
	})
}

func TestBus_AnOlderEventArrivingLateWaitsForTheRunningOne(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		started := make(chan string, 4)
		release := make(chan struct{})
		chk := newSubjectChecker()
		On(b, Subscription[*external]{Name: "sub", Types: []string{"contact/*"}, Handle: func(_ context.Context, d Delivery, ev *external) error {
			started <- ev.Kind
			chk.handle(d.Subject, 0, func() {
				if ev.Kind == "lost" {
					<-release
				}
			})
			return nil
		}})
		startBus(t, b)
		startDispatcher(t, b, "a", 10*time.Second)
		at := time.UnixMilli(1700000000000)
		if _, err := b.Receive(context.Background(), incoming("ww1", "lost", "wm1", at.Add(time.Second))); err != nil {
			t.Fatal(err)
		}
		if k := <-started; k != "lost" {
			t.Fatalf("first handled %s", k)
		}
		// The add happened first but arrives while the loss is being handled.
		if _, err := b.Receive(context.Background(), incoming("ww1", "added", "wm1", at)); err != nil {
			t.Fatal(err)
		}
		// Another contact's event is not held up.
		if _, err := b.Receive(context.Background(), incoming("ww1", "added", "wm2", at)); err != nil {
			t.Fatal(err)
		}
		if k := <-started; k != "added" {
			t.Fatalf("then %s", k)
		}
		waitFor(t, "the other contact's event", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE subject = 'ext:wm2' AND status = 'done'") == 1
		})
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE subject = 'ext:wm1' AND status = 'done'"); n != 0 {
			t.Fatalf("%d of wm1's events done while its loss is still running", n)
		}
		close(release)
		settled(t, db)
		if chk.overlap.Load() != 0 {
			t.Fatal("the late add ran beside the loss")
		}
	})
}

func TestBus_TwoDispatchersRacingRunEachDeliveryOnce(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		var runs sync.Map
		var total atomic.Int32
		record := func(_ context.Context, d Delivery, _ *external) error {
			v, _ := runs.LoadOrStore(d.ID, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			total.Add(1)
			return nil
		}
		// Two instances over one database, each with its own dispatcher.
		var buses []*Bus
		for i := 0; i < 2; i++ {
			b := newBus(t, db)
			On(b, Subscription[*external]{Name: "free", Types: []string{"contact/*"}, Handle: record})
			On(b, Subscription[*external]{Name: "fast", Lane: LaneFast, Types: []string{"contact/*"}, Handle: record})
			startBus(t, b)
			buses = append(buses, b)
		}
		const n = 300
		at := time.UnixMilli(1700000000000)
		for i := 0; i < n; i++ {
			// Half with their own subject, half sharing ten subjects.
			contact := fmt.Sprintf("wm%d", i)
			if i%2 == 0 {
				contact = fmt.Sprintf("shared%d", i%10)
			}
			if _, err := buses[i%2].Receive(context.Background(), incoming("ww1", fmt.Sprintf("k%d", i), contact, at.Add(time.Duration(i)*time.Millisecond))); err != nil {
				t.Fatal(err)
			}
		}
		for i, b := range buses {
			d := NewDispatcher(b, DispatcherOptions{Owner: fmt.Sprintf("inst%d", i), Workers: 8, FastWorkers: 8, Lease: 30 * time.Second, MaxAttempts: 3,
				Poll: 5 * time.Millisecond}, quiet)
			d.Start()
			t.Cleanup(func() { d.Stop(context.Background()) })
		}
		settled(t, db)
		if got := total.Load(); got != 2*n {
			t.Fatalf("%d runs for %d deliveries", got, 2*n)
		}
		runs.Range(func(k, v any) bool {
			if c := v.(*atomic.Int32).Load(); c != 1 {
				t.Errorf("delivery %v ran %d times", k, c)
			}
			return true
		})
	})
}

func TestBus_AStaleSettleChangesNothing(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		On(b, Subscription[*external]{Name: "sub", Types: []string{"contact/*"}, Handle: func(context.Context, Delivery, *external) error { return nil }})
		startBus(t, b)
		var mu sync.Mutex
		now := time.UnixMilli(1800000000000)
		b.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		ctx := context.Background()
		if _, err := b.Receive(ctx, incoming("ww1", "added", "wm1", now)); err != nil {
			t.Fatal(err)
		}
		first, err := b.Claim(ctx, LaneNormal, "same-instance", 5, time.Second)
		if err != nil || len(first) != 1 {
			t.Fatalf("first claim: %v %v", first, err)
		}
		// Nothing else can claim it while the lease lasts.
		if again, err := b.Claim(ctx, LaneNormal, "same-instance", 5, time.Second); err != nil || len(again) != 0 {
			t.Fatalf("claimed twice within the lease: %v %v", again, err)
		}
		mu.Lock()
		now = now.Add(2 * time.Second) // the first attempt stalls past its lease
		mu.Unlock()
		second, err := b.Claim(ctx, LaneNormal, "same-instance", 5, time.Second)
		if err != nil || len(second) != 1 || second[0].ID != first[0].ID || second[0].token == first[0].token {
			t.Fatalf("second claim: %+v %v", second, err)
		}
		// The stalled first attempt now finishes, then fails: neither counts.
		if err := b.complete(ctx, first); err != nil {
			t.Fatal(err)
		}
		if _, err := b.fail(ctx, first[0], Permanent(errors.New("stale")), 3, time.Second); err != nil {
			t.Fatal(err)
		}
		var row struct {
			Status string `db:"status"`
			Token  string `db:"lease_token"`
		}
		db.Get(&row, "SELECT status, lease_token FROM bus_deliveries WHERE id = ?", first[0].ID)
		if row.Status != StatusQueued || row.Token != second[0].token {
			t.Fatalf("a stale settle changed the delivery: %+v", row)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_subject_locks WHERE token = ?", second[0].token); n != 1 {
			t.Fatal("a stale settle freed the live claim's subject")
		}
		if err := b.complete(ctx, second); err != nil {
			t.Fatal(err)
		}
		db.Get(&row, "SELECT status, lease_token FROM bus_deliveries WHERE id = ?", first[0].ID)
		if row.Status != StatusDone {
			t.Fatalf("the live claim's settle did not land: %+v", row)
		}
	})
}

func TestBus_RollingDeployKeepsEverySubscribersEvents(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		// The old instance has subscriber "base"; the new one also has "added-later".
		var oldRuns, newBase, newLater atomic.Int32
		old := newBus(t, db)
		On(old, Subscription[*external]{Name: "base", Types: []string{"contact/*"}, Handle: func(context.Context, Delivery, *external) error { oldRuns.Add(1); return nil }})
		startBus(t, old)
		nb := newBus(t, db)
		On(nb, Subscription[*external]{Name: "base", Types: []string{"contact/*"}, Handle: func(context.Context, Delivery, *external) error { newBase.Add(1); return nil }})
		On(nb, Subscription[*external]{Name: "added-later", Types: []string{"contact/added"}, Handle: func(context.Context, Delivery, *external) error { newLater.Add(1); return nil }})
		startBus(t, nb)
		// The old instance learns of the new subscriber from the registry.
		if err := old.syncRegistry(context.Background()); err != nil {
			t.Fatal(err)
		}
		at := time.UnixMilli(1700000000000)
		for i := 0; i < 10; i++ {
			if _, err := old.Receive(context.Background(), incoming("ww1", "added", fmt.Sprintf("wm%d", i), at)); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE subscriber = 'added-later'"); n != 10 {
			t.Fatalf("the old instance created %d deliveries for the new subscriber, want 10", n)
		}
		// The old instance runs alone for a while: it never touches what it lacks.
		od := startDispatcher(t, old, "old", 5*time.Second)
		waitFor(t, "the old instance's own work", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE subscriber = 'base' AND status = 'done'") == 10
		})
		od.Stop(context.Background())
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE subscriber = 'added-later' AND status = 'queued' AND attempts = 0"); n != 10 {
			t.Fatalf("the old instance claimed or dead-lettered the new subscriber's deliveries (%d left untouched)", n)
		}
		nd := startDispatcher(t, nb, "new", 5*time.Second)
		settled(t, db)
		if newLater.Load() != 10 || oldRuns.Load()+newBase.Load() != 10 {
			t.Fatalf("the new subscriber handled %d of 10, base %d", newLater.Load(), oldRuns.Load()+newBase.Load())
		}
		nd.Stop(context.Background())
		// A subscriber no instance has had for a day is retired when pruning:
		// deliveries an instance still made for it are dismissed, not left queued.
		db.Exec("UPDATE bus_subscribers SET seen_at = 0 WHERE name = 'added-later'")
		if _, err := old.Receive(context.Background(), incoming("ww1", "added", "wm-after", at)); err != nil {
			t.Fatal(err)
		}
		if _, err := old.Prune(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		var st struct {
			Status string `db:"status"`
			Err    string `db:"last_error"`
		}
		db.Get(&st, "SELECT d.status, d.last_error FROM bus_deliveries d JOIN bus_events e ON e.id = d.event_id WHERE d.subscriber = 'added-later' AND e.subject = 'ext:wm-after'")
		if st.Status != StatusDismissed {
			t.Fatalf("a retired subscriber's delivery: %+v", st)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries d JOIN bus_events e ON e.id = d.event_id WHERE d.subscriber = 'base' AND e.subject = 'ext:wm-after' AND d.status = 'queued'"); n != 1 {
			t.Fatal("pruning touched a live subscriber's delivery")
		}
	})
}

func TestBus_PublishIsPartOfTheCallersTransaction(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		var handled atomic.Int32
		On(b, Subscription[contactEvent]{Name: "leads", Handle: func(_ context.Context, _ Delivery, ev contactEvent) error {
			if ev.Contact != "wm1" {
				t.Errorf("decoded %+v", ev)
			}
			handled.Add(1)
			return nil
		}})
		startBus(t, b)
		startDispatcher(t, b, "a", 5*time.Second)
		ctx := context.Background()
		ev := contactEvent{Contact: "wm1", Seq: 1, At: time.UnixMilli(1700000000000)}
		// A transaction that rolls back publishes nothing.
		boom := errors.New("boom")
		err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
			if err := b.Publish(ctx, tx, "ww1", ev); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || count(t, db, "SELECT COUNT(*) FROM bus_events") != 0 {
			t.Fatalf("a rolled-back publish left an event: %v", err)
		}
		// Committed twice (a retried cause): one event, handled once.
		for i := 0; i < 2; i++ {
			if err := db.WriteTx(ctx, func(tx *qsql.Tx) error { return b.Publish(ctx, tx, "ww1", ev) }); err != nil {
				t.Fatal(err)
			}
		}
		settled(t, db)
		if handled.Load() != 1 || count(t, db, "SELECT COUNT(*) FROM bus_events WHERE source = 'domain' AND type = 'TestContactEvent'") != 1 {
			t.Fatalf("handled %d times", handled.Load())
		}
		// Unregistered types are refused, not silently stored.
		if err := db.WriteTx(ctx, func(tx *qsql.Tx) error { return b.Publish(ctx, tx, "ww1", unregistered{}) }); err == nil {
			t.Fatal("an unregistered event type was published")
		}
	})
}

type unregistered struct{}

func (unregistered) EventType() string    { return "Unregistered" }
func (unregistered) EventSubject() string { return "" }
func (unregistered) EventKey() string     { return "x" }
func (unregistered) EventTime() time.Time { return time.Now() }

// Two instances publish events about the same contacts while both run
// subscribers; one instance dies mid-way holding leases. Every event is
// handled once by each subscriber, in order per contact.
func TestBus_DomainEventsFromTwoInstancesOncePerSubscriberInOrderWithTakeover(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		checkers := map[string]*subjectChecker{"leads.intake": newSubjectChecker(), "journeys.triggers": newSubjectChecker()}
		frozen := make(chan struct{})
		t.Cleanup(func() { close(frozen) })
		var aStarted atomic.Int32
		var buses []*Bus
		for i := 0; i < 2; i++ {
			b := newBus(t, db)
			for name, chk := range checkers {
				On(b, Subscription[contactEvent]{Name: name, Handle: func(_ context.Context, d Delivery, ev contactEvent) error {
					if i == 0 {
						// Instance A dies holding every lease it took: a
						// delivery it finished could not be marked done
						// once it is killed, and would rightly run again
						// (the bus delivers at least once).
						aStarted.Add(1)
						<-frozen
						return nil
					}
					chk.handle(d.Subject, ev.Seq, func() {})
					return nil
				}})
			}
			startBus(t, b)
			buses = append(buses, b)
		}
		const contacts, perContact = 6, 8
		base := time.UnixMilli(1700000000000)
		var wg sync.WaitGroup
		for c := 0; c < contacts; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := 0; s < perContact; s++ {
					ev := contactEvent{Contact: fmt.Sprintf("c%d", c), Seq: s, At: base.Add(time.Duration(s) * time.Second)}
					// Each event is published by one of the two instances.
					b := buses[(c+s)%2]
					if err := db.WriteTx(context.Background(), func(tx *qsql.Tx) error { return b.Publish(context.Background(), tx, "ww1", ev) }); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		lease := 1500 * time.Millisecond
		a := dispatcherFor(buses[0], "A", lease)
		a.Start()
		waitFor(t, "A to be holding three leases", func() bool { return aStarted.Load() >= 3 })
		a.Kill()
		startDispatcher(t, buses[1], "B", lease)
		settled(t, db)
		for name, chk := range checkers {
			t.Run(name, func(t *testing.T) { chk.check(t, contacts, perContact) })
		}
		// A's three held deliveries, plus any it had claimed but not started
		// when it died, were taken over; none ran a third time.
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE status = 'done' AND attempts = 2"); n < 3 {
			t.Fatalf("%d deliveries show a second attempt, want at least the 3 A held", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE attempts > 2 OR status <> 'done'"); n != 0 {
			t.Fatalf("%d deliveries ran a third time or did not finish", n)
		}
	})
}

// A batch subscriber gets a backlog several deliveries at a time, never two
// of one subject together; a failing batch falls back to one delivery at a
// time, so only the bad event is retried and dead-lettered.
func TestDispatcher_BatchSubscriberTakesBacklogsTogetherAndIsolatesABadEvent(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		var mu sync.Mutex
		handled := map[string]int{} // dedup-ish: contact/seq → times done
		var batches, biggest int
		bad := func(ev *external) bool { return ev.Contact == "wm-bad" }
		On(b, Subscription[*external]{Name: "batch", Types: []string{"contact/*"},
			Handle: func(_ context.Context, d Delivery, ev *external) error {
				if bad(ev) {
					return errors.New("bad event")
				}
				mu.Lock()
				handled[fmt.Sprint(ev.Contact, "/", ev.At)]++
				mu.Unlock()
				return nil
			},
			HandleBatch: func(_ context.Context, items []Item[*external]) error {
				subjects := map[string]bool{}
				for _, it := range items {
					if subjects[it.Subject] {
						t.Errorf("two deliveries of %s in one batch", it.Subject)
					}
					subjects[it.Subject] = true
					if bad(it.Event) {
						return errors.New("bad event in batch")
					}
				}
				mu.Lock()
				defer mu.Unlock()
				batches++
				biggest = max(biggest, len(items))
				for _, it := range items {
					handled[fmt.Sprint(it.Event.Contact, "/", it.Event.At)]++
				}
				return nil
			}})
		startBus(t, b)
		receive := func(contact string, at time.Time) {
			t.Helper()
			if _, err := b.Receive(context.Background(), incoming("ww1", "added", contact, at)); err != nil {
				t.Fatal(err)
			}
		}
		// A backlog before the dispatcher starts: one event for each of 40 contacts.
		base := time.UnixMilli(1700000000000)
		for i := 0; i < 40; i++ {
			receive(fmt.Sprint("wm", i), base.Add(time.Duration(i)*time.Second))
		}
		startDispatcher(t, b, "a", 5*time.Second)
		settled(t, db)
		mu.Lock()
		if biggest < 2 {
			t.Fatalf("no batch held more than one delivery (%d batches)", batches)
		}
		mu.Unlock()
		// Then a second event for ten of them, and a bad event among them.
		for i := 0; i < 10; i++ {
			receive(fmt.Sprint("wm", i), base.Add(time.Hour+time.Duration(i)*time.Second))
		}
		receive("wm-bad", base.Add(time.Hour))
		waitFor(t, "the second round handled", func() bool {
			return count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE status = 'queued'") == 0
		})
		mu.Lock()
		defer mu.Unlock()
		if len(handled) != 50 {
			t.Fatalf("%d events handled, want 50", len(handled))
		}
		for k, n := range handled {
			if n != 1 {
				t.Errorf("%s handled %d times", k, n)
			}
		}
		if n := count(t, db, "SELECT COUNT(*) FROM bus_deliveries WHERE status = 'dead'"); n != 1 {
			t.Fatalf("%d dead letters, want the bad event's only", n)
		}
	})
}

// During a burst of callbacks the normal lane keeps only BurstWorkers
// running, so acknowledgements get the machine; the fast lane (welcomes)
// does not yield, and when the burst passes every worker works again.
func TestDispatcher_YieldsToABurstOfCallbacks(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		release := make(chan struct{})
		var running, most, fast atomic.Int32
		On(b, Subscription[*external]{Name: "slow", Types: []string{"contact/*"}, Handle: func(ctx context.Context, _ Delivery, _ *external) error {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}})
		On(b, Subscription[*external]{Name: "welcome", Lane: LaneFast, Types: []string{"contact/*"}, Handle: func(context.Context, Delivery, *external) error {
			fast.Add(1)
			return nil
		}})
		startBus(t, b)
		d := NewDispatcher(b, DispatcherOptions{Owner: "a", Workers: 8, FastWorkers: 2, BurstWorkers: 2, Lease: 30 * time.Second, MaxAttempts: 3,
			Poll: 20 * time.Millisecond}, quiet)
		b.receiving.Add(burstReceives) // callbacks waiting for their commit: a burst
		for i := range 8 {
			if _, err := b.Receive(context.Background(), incoming("ww1", "added", fmt.Sprintf("wm%d", i), time.UnixMilli(1700000000000))); err != nil {
				t.Fatal(err)
			}
		}
		d.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d.Stop(ctx)
		})
		waitFor(t, "the welcomes, during the burst", func() bool { return fast.Load() == 8 })
		waitFor(t, "two slow deliveries running", func() bool { return running.Load() == 2 })
		// The claimer has had every chance to start more: the fast lane is
		// done and it looks again each few milliseconds.
		for range 20 {
			time.Sleep(burstPause)
			if n := running.Load(); n > 2 {
				t.Fatalf("%d normal-lane deliveries running during a burst, want 2", n)
			}
		}
		b.receiving.Add(-burstReceives) // the burst is over
		waitFor(t, "every slow delivery running", func() bool { return running.Load() == 8 })
		close(release)
		settled(t, db)
		if most.Load() != 8 {
			t.Fatalf("at most %d ran at once after the burst", most.Load())
		}
	})
}

// A claimer is woken only by deliveries in its lane: an add with no
// welcome to send must not make the fast lane's claimer query for work
// (under load those empty claims were most of the claim queries).
func TestBus_WakesOnlyTheLanesThatGotDeliveries(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		b := newBus(t, db)
		noop := func(context.Context, Delivery, *external) error { return nil }
		On(b, Subscription[*external]{Name: "welcome", Lane: LaneFast, Types: []string{"contact/added"}, Where: func(ev *external) bool { return ev.Contact == "by-code" }, Handle: noop})
		On(b, Subscription[*external]{Name: "mirror", Types: []string{"contact/*"}, Handle: noop})
		On(b, Subscription[contactEvent]{Name: "leads", Types: []string{contactEvent{}.EventType()}, Handle: func(context.Context, Delivery, contactEvent) error { return nil }})
		startBus(t, b)
		woken := func() (fast, normal bool) {
			select {
			case <-b.notify[LaneFast]:
				fast = true
			default:
			}
			select {
			case <-b.notify[LaneNormal]:
				normal = true
			default:
			}
			return fast, normal
		}
		at := time.UnixMilli(1700000000000)
		if _, err := b.Receive(context.Background(), incoming("ww1", "added", "direct", at)); err != nil {
			t.Fatal(err)
		}
		if fast, normal := woken(); fast || !normal {
			t.Fatalf("a direct add woke fast %v, normal %v: want the normal lane only", fast, normal)
		}
		if _, err := b.Receive(context.Background(), incoming("ww1", "added", "by-code", at)); err != nil {
			t.Fatal(err)
		}
		if fast, normal := woken(); !fast || !normal {
			t.Fatalf("an add by code woke fast %v, normal %v: want both", fast, normal)
		}
		if err := db.WriteTx(context.Background(), func(tx *qsql.Tx) error {
			return b.Publish(context.Background(), tx, "ww1", contactEvent{Contact: "direct", Seq: 1, At: at})
		}); err != nil {
			t.Fatal(err)
		}
		if fast, normal := woken(); fast || !normal {
			t.Fatalf("a domain event for a normal-lane subscriber woke fast %v, normal %v", fast, normal)
		}
	})
}
