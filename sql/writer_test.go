package sql_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// A writer that commits and begins again at once (an import's batches)
// must not starve another (a callback's inbox row): on SQLite the other
// gets its turn after a transaction or two of the busy one. Under SQLite's
// own polling busy handler it waited out its 10 s timeout and failed with
// SQLITE_BUSY (CI, stop 16).
func TestWriteTx_ABusyWriterDoesNotStarveAnother(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, `CREATE TABLE hog (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO hog (id, n) VALUES (1, 0), (2, 0)`); err != nil {
			t.Fatal(err)
		}
		var commits atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
					for range 20 {
						if _, err := tx.ExecContext(ctx, `UPDATE hog SET n = n + 1 WHERE id = 1`); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				commits.Add(1)
			}
		}()
		defer func() { close(stop); wg.Wait() }()
		for commits.Load() < 3 { // the hog is running
			runtime.Gosched()
		}
		for i := range 50 {
			before := commits.Load()
			if _, err := db.ExecContext(ctx, `UPDATE hog SET n = n + 1 WHERE id = 2`); err != nil {
				t.Fatalf("write %d beside a busy writer: %v", i, err)
			}
			// In turn it waits for one or two; the bound leaves room for this
			// goroutine being descheduled before it queues (a loaded CI
			// machine under -race). SQLite's polling made it 618.
			if waited := commits.Load() - before; db.SingleWriter() && waited > 50 {
				t.Fatalf("write %d waited for %d of the busy writer's transactions, want ≤ 50", i, waited)
			}
			if err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
				_, err := tx.ExecContext(ctx, `UPDATE hog SET n = n + 1 WHERE id = 2`)
				return err
			}); err != nil {
				t.Fatalf("transaction %d beside a busy writer: %v", i, err)
			}
		}
		var n int64
		if err := db.GetContext(ctx, &n, `SELECT n FROM hog WHERE id = 2`); err != nil || n != 100 {
			t.Fatalf("the other writer's rows: %d, %v", n, err)
		}
	})
}

// A write that waits its turn gives up when its context ends.
func TestWriteTx_WaitEndsWithTheContext(t *testing.T) {
	db := sqltest.OpenSQLite(t)
	held := make(chan struct{})
	done := make(chan struct{})
	go db.WriteTx(context.Background(), func(tx *qsql.Tx) error {
		close(held)
		<-done
		return nil
	})
	<-held
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, `UPDATE corps SET name = name`)
		errs <- err
	}()
	cancel()
	if err := <-errs; err != context.Canceled {
		t.Fatalf("a cancelled wait: %v, want context.Canceled", err)
	}
}

// What a transaction gathers as it goes is written by its BeforeCommit
// hooks, inside it: committed with its work, rolled back with it when a
// hook fails, and never written by a transaction whose work failed.
func TestWriteTx_BeforeCommitWritesInTheTransaction(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		insert := func(tx *qsql.Tx, id string) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO corps (id, name, time_zone, created_at, updated_at) VALUES (?, '', 'UTC', 1, 1)`, id)
			return err
		}
		type key struct{}
		err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
			if err := insert(tx, "wwWork"); err != nil {
				return err
			}
			tx.SetValue(key{}, "wwHook")
			tx.BeforeCommit(func() error { return insert(tx, tx.Value(key{}).(string)) })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		failed := errors.New("the hook failed")
		if err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
			tx.BeforeCommit(func() error { return insert(tx, "wwHookFailed") })
			tx.BeforeCommit(func() error { return failed })
			return insert(tx, "wwWorkOfAFailedHook")
		}); !errors.Is(err, failed) {
			t.Fatalf("a failing hook's transaction: %v", err)
		}
		if err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
			tx.BeforeCommit(func() error { return insert(tx, "wwHookOfFailedWork") })
			return failed
		}); !errors.Is(err, failed) {
			t.Fatalf("failed work: %v", err)
		}
		var ids []string
		if err := db.Select(&ids, `SELECT id FROM corps ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, []string{"wwHook", "wwWork"}) {
			t.Fatalf("corps %v, want the committed transaction's work and hook only", ids)
		}
	})
}
