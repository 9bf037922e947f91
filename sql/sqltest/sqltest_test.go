package sqltest

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// AtOnce runs every caller, each once, all at the same time (each here
// waits for all the others to have started: run one after another they
// would never return), and returns when all have.
func TestAtOnce_RunsEveryCallerTogether(t *testing.T) {
	const n = 8
	var started sync.WaitGroup
	started.Add(n)
	var calls [n]atomic.Int32
	var done atomic.Int32
	AtOnce(n, func(i int) {
		calls[i].Add(1)
		started.Done()
		started.Wait()
		done.Add(1)
	})
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("caller %d ran %d times", i, c)
		}
	}
	if done.Load() != n {
		t.Fatalf("AtOnce returned with %d of %d callers done", done.Load(), n)
	}
}

// OpenMySQLWith sets its session variables on the connections it opens.
func TestOpenMySQLWith_SetsSessionVariables(t *testing.T) {
	if os.Getenv("QIFLOW_TEST_MYSQL_DSN") == "" {
		t.Skip("QIFLOW_TEST_MYSQL_DSN is not set: the MySQL run is skipped")
	}
	db := OpenMySQLWith(t, map[string]string{"auto_increment_increment": "2"})
	var step int
	if err := db.Get(&step, "SELECT @@auto_increment_increment"); err != nil || step != 2 {
		t.Fatalf("auto_increment_increment %d (%v)", step, err)
	}
}
