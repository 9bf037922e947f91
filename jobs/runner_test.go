package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiflow/qiflow/kv/kvtest"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

type countCP struct{ Next int }

// countTo is a resumable job: it counts to 5, checkpointing each step, and
// records every step it ran.
func countTo(steps *[]int, stopAt int, stop func()) JobFunc {
	return func(ctx context.Context, j *Job) (any, error) {
		var cp countCP
		if _, err := j.LoadCheckpoint(&cp); err != nil {
			return nil, err
		}
		for i := cp.Next; i < 5; i++ {
			if i == stopAt && stop != nil {
				stop()
				<-ctx.Done() // frozen, as a killed process
				return nil, ctx.Err()
			}
			*steps = append(*steps, i)
			if err := j.Checkpoint(ctx, countCP{Next: i + 1}, int64(i+1), 5); err != nil {
				return nil, err
			}
		}
		return map[string]int{"counted": 5}, nil
	}
}

func TestRunner_ResumesFromCheckpointAfterCrash(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		var stepsA, stepsB []int
		a := NewRunner(db, "A", time.Second, quiet)
		a.poll = 20 * time.Millisecond
		var crashed atomic.Bool
		a.Register("count", countTo(&stepsA, 3, func() { crashed.Store(true) }))
		id, err := a.Enqueue(context.Background(), "ww1", "count", "count:ww1", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The same unique key while queued gives the same job.
		if id2, _ := a.Enqueue(context.Background(), "ww1", "count", "count:ww1", nil, 0); id2 != id {
			t.Fatalf("unique key made a second job %d", id2)
		}
		a.Start(1)
		waitFor(t, "A to crash at step 3", crashed.Load)
		// A dies: it claims nothing more and renews no lease.
		a.frozen.Store(true)
		a.cancel()
		b := NewRunner(db, "B", time.Second, quiet)
		b.poll = 20 * time.Millisecond
		b.Register("count", countTo(&stepsB, -1, nil))
		b.Start(1)
		defer b.Stop(context.Background())
		waitFor(t, "B to finish the job", func() bool {
			j, _ := b.Get(context.Background(), "ww1", id)
			return j.Status == JobDone
		})
		j, _ := b.Get(context.Background(), "ww1", id)
		if len(stepsA) != 3 || len(stepsB) != 2 || stepsB[0] != 3 {
			t.Fatalf("A ran %v, B ran %v: B should resume at 3", stepsA, stepsB)
		}
		if j.ProgressDone != 5 || j.ProgressTotal != 5 || string(j.Result) != `{"counted":5}` {
			t.Fatalf("job row: %+v", j)
		}
		if _, err := b.Get(context.Background(), "other-corp", id); !errors.Is(err, ErrJobNotFound) {
			t.Fatalf("job visible to another corp: %v", err)
		}
	})
}

func TestRunner_CancelStopsARunningJob(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		r := NewRunner(db, "A", 300*time.Millisecond, quiet)
		r.poll = 20 * time.Millisecond
		started := make(chan struct{})
		r.Register("forever", func(ctx context.Context, j *Job) (any, error) {
			close(started)
			for i := 0; ; i++ {
				if err := j.Checkpoint(ctx, i, int64(i), 0); err != nil {
					return nil, err
				}
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
		id, _ := r.Enqueue(context.Background(), "ww1", "forever", "", nil, 0)
		r.Start(1)
		defer r.Stop(context.Background())
		<-started
		if _, err := r.Cancel(context.Background(), "ww1", id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "cancelled", func() bool {
			j, _ := r.Get(context.Background(), "ww1", id)
			return j.Status == JobCancelled
		})
	})
}

func TestCron_RunsOnceAcrossInstances(t *testing.T) {
	store := kvtest.Open(t)
	var runs atomic.Int32
	fn := func(context.Context) error { runs.Add(1); return nil }
	fixed := func() time.Time { return time.Date(2026, 11, 23, 3, 17, 0, 0, time.UTC) }
	for i := 0; i < 3; i++ {
		c := NewCron(store, quiet)
		c.now = fixed
		c.RunOnce("reconcile", fn)
	}
	if runs.Load() != 1 {
		t.Fatalf("tick ran %d times across 3 instances", runs.Load())
	}
	c := NewCron(store, quiet)
	c.now = func() time.Time { return fixed().Add(time.Minute) }
	c.RunOnce("reconcile", fn)
	if runs.Load() != 2 {
		t.Fatal("next tick did not run")
	}
}

func TestRunner_AJobWhoseLeaseWasTakenOverStops(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		lease := 600 * time.Millisecond
		a := NewRunner(db, "A", lease, quiet)
		a.poll = 20 * time.Millisecond
		aStarted := make(chan struct{})
		var aCause, aCheckpoint atomic.Value
		a.Register("sync", func(ctx context.Context, j *Job) (any, error) {
			close(aStarted)
			<-ctx.Done() // stalled: no checkpoint renews the lease
			aCause.Store(context.Cause(ctx))
			aCheckpoint.Store(j.Checkpoint(context.Background(), "late", 1, 1))
			return nil, ctx.Err()
		})
		id, err := a.Enqueue(context.Background(), "ww1", "sync", "", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		a.frozen.Store(true) // A's heartbeats stall from the start
		a.Start(1)
		defer a.Stop(context.Background())
		<-aStarted
		b := NewRunner(db, "B", lease, quiet)
		b.poll = 20 * time.Millisecond
		bStarted := make(chan struct{})
		bFinish := make(chan struct{})
		b.Register("sync", func(ctx context.Context, j *Job) (any, error) {
			close(bStarted)
			<-bFinish
			return "b", nil
		})
		b.Start(1)
		defer b.Stop(context.Background())
		<-bStarted // B took the job over once A's lease lapsed
		a.frozen.Store(false)
		waitFor(t, "A to notice its lease is gone", func() bool { return aCheckpoint.Load() != nil })
		if c, _ := aCause.Load().(error); !errors.Is(c, ErrLeaseLost) {
			t.Fatalf("A stopped because of %v, want ErrLeaseLost", c)
		}
		if err, _ := aCheckpoint.Load().(error); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("A's late checkpoint: %v, want ErrLeaseLost", err)
		}
		j, _ := b.Get(context.Background(), "ww1", id)
		if j.Status != JobRunning || string(j.Checkpoint) == `"late"` {
			t.Fatalf("A's stale run changed the job B holds: %+v", j)
		}
		close(bFinish)
		waitFor(t, "B to finish", func() bool {
			j, _ := b.Get(context.Background(), "ww1", id)
			return j.Status == JobDone && string(j.Result) == `"b"`
		})
	})
}

func TestRunner_ClaimsOnlyKindsItKnows(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		old := NewRunner(db, "old", time.Second, quiet)
		old.poll = 20 * time.Millisecond
		old.Register("known", func(context.Context, *Job) (any, error) { return nil, nil })
		ctx := context.Background()
		newID, _ := old.Enqueue(ctx, "ww1", "added.in.v2", "", nil, 0)
		knownID, _ := old.Enqueue(ctx, "ww1", "known", "", nil, 0)
		old.Start(1)
		waitFor(t, "the known job", func() bool { j, _ := old.Get(ctx, "ww1", knownID); return j.Status == JobDone })
		old.Stop(ctx)
		if j, _ := old.Get(ctx, "ww1", newID); j.Status != JobQueued || j.Attempts != 0 {
			t.Fatalf("an instance without the kind touched the job: %+v", j)
		}
		nw := NewRunner(db, "new", time.Second, quiet)
		nw.poll = 20 * time.Millisecond
		nw.Register("added.in.v2", func(context.Context, *Job) (any, error) { return "ok", nil })
		nw.Start(1)
		defer nw.Stop(ctx)
		waitFor(t, "the newer instance to run it", func() bool { j, _ := nw.Get(ctx, "ww1", newID); return j.Status == JobDone })
	})
}

// A request for a job that is running (a rule saved while its rescore
// runs) makes it run again, from the start, once this run ends: the run
// may have read its inputs before the change. Requests while it is queued
// are the one run it will make; once it is done, a request is a new job.
func TestRunner_ARequestWhileItRunsRunsItAgain(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		r := NewRunner(db, "A", time.Minute, quiet)
		r.poll = 20 * time.Millisecond
		var runs atomic.Int32
		started, release := make(chan struct{}, 4), make(chan struct{})
		r.Register("rebuild", func(ctx context.Context, j *Job) (any, error) {
			n := runs.Add(1)
			var cp countCP
			if _, err := j.LoadCheckpoint(&cp); err != nil || cp.Next != 0 {
				return nil, fmt.Errorf("run %d began at checkpoint %d (%v), want the start", n, cp.Next, err)
			}
			if err := j.Checkpoint(ctx, countCP{Next: 1}, 1, 1); err != nil {
				return nil, err
			}
			started <- struct{}{}
			if n == 1 {
				<-release
			}
			return map[string]int32{"run": n}, nil
		})
		enqueue := func() int64 {
			t.Helper()
			id, err := r.Enqueue(ctx, "ww1", "rebuild", "rebuild:1", nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		id := enqueue()
		if again := enqueue(); again != id {
			t.Fatalf("a request while queued made job %d besides %d", again, id)
		}
		r.Start(1)
		defer r.Stop(ctx)
		<-started
		if a, b := enqueue(), enqueue(); a != id || b != id {
			t.Fatalf("requests while it runs made jobs %d and %d besides %d", a, b, id)
		}
		close(release)
		waitFor(t, "the job to be done", func() bool {
			j, err := r.Get(ctx, "ww1", id)
			return err == nil && j.Status == JobDone
		})
		j, _ := r.Get(ctx, "ww1", id)
		if runs.Load() != 2 || string(j.Result) != `{"run":2}` {
			t.Fatalf("%d runs, result %s: want a second run for the requests made while it ran", runs.Load(), j.Result)
		}
		if next := enqueue(); next == id {
			t.Fatal("a request after the job was done went to the done job")
		}
	})
}

// Two instances asking for the same unique job at the same moment get that
// one job: the one whose insert finds the other's row reads it back, though
// its transaction read the jobs table before the other committed.
func TestRunner_ConcurrentEnqueuesOfAUniqueKeyAnswerOneJob(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		runners := []*Runner{NewRunner(db, "a", time.Minute, quiet), NewRunner(sqltest.Reopen(t, db), "b", time.Minute, quiet)}
		for round := range 20 {
			key := fmt.Sprint("rescore:", round)
			const callers = 8
			ids, errs := make([]int64, callers), make([]error, callers)
			sqltest.AtOnce(callers, func(i int) {
				ids[i], errs[i] = runners[i%2].Enqueue(ctx, "ww1", "rescore", key, map[string]int{"round": round}, 0)
			})
			for i := range callers {
				if errs[i] != nil || ids[i] != ids[0] {
					t.Fatalf("round %d: caller %d got job %d (%v), caller 0 job %d", round, i, ids[i], errs[i], ids[0])
				}
			}
		}
	})
}
