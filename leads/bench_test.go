package leads

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// benchDB is MariaDB/MySQL when QIFLOW_TEST_MYSQL_DSN is set, else SQLite.
func benchDB(b *testing.B) *qsql.DB {
	bs := sqltest.Backends()
	return bs[len(bs)-1].Open(b)
}

// BenchmarkIntake records WeCom adds in batches of 64, as the bus hands
// them over; leads/s = 64 / (ns/op) × 1e9.
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' go test -run x -bench Intake -benchtime 200x ./leads/
func BenchmarkIntake(b *testing.B) {
	s := New(benchDB(b), nil, nil, quiet)
	ctx := context.Background()
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs := make([]livecode.ContactAdded, 64)
		for j := range evs {
			n++
			evs[j] = livecode.ContactAdded{CorpID: fmt.Sprint("ww", n%40), ExternalUserID: fmt.Sprint("wm", n), UserID: "zhangsan", Source: "direct", SourceID: int64(n), AddedAt: 1}
		}
		if err := s.Intake(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "leads/s")
}

// BenchmarkClaimAndPoolPage claims leads from a pool of 100,000 and reads a
// page of the pool, one SDR after another.
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' go test -run x -bench ClaimAndPool -benchtime 500x ./leads/
func BenchmarkClaimAndPoolPage(b *testing.B) {
	db := benchDB(b)
	s := New(db, nil, nil, quiet)
	ctx := context.Background()
	const pool = 100_000
	// Seeded with multi-row inserts: the benchmark is about claims and pages.
	if err := s.Intake(ctx, []livecode.ContactAdded{{CorpID: "ww1", ExternalUserID: "seed", UserID: "u", SourceID: 1}}); err != nil {
		b.Fatal(err)
	}
	var poolID int64
	db.Get(&poolID, "SELECT id FROM lead_pools WHERE corp_id = 'ww1'")
	for start := 0; start < pool; start += 1000 {
		var rows []string
		var args []any
		for i := start; i < start+1000; i++ {
			rows = append(rows, "(?, ?, ?, 0, 'lead', 'existing', 1, 1)")
			args = append(args, "ww1", i+10, poolID)
		}
		if _, err := db.Exec(`INSERT INTO leads (corp_id, person_id, pool_id, owner_user_id, stage, source, created_at, updated_at) VALUES `+strings.Join(rows, ","), args...); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO people (corp_id, name, created_at, updated_at) SELECT corp_id, 'P', 1, 1 FROM leads WHERE id > ? AND id <= ?`, start, start+1000); err != nil {
			b.Fatal(err)
		}
	}
	var ids []int64
	db.Select(&ids, "SELECT id FROM leads ORDER BY id LIMIT ?", b.N)
	if len(ids) < b.N {
		b.Fatalf("%d leads for %d claims", len(ids), b.N)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Claim(ctx, "ww1", ids[i], int64(1+i%50)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.List(ctx, ListFilter{CorpID: "ww1", PoolID: poolID, Owner: -1, Viewer: Viewer{UserID: int64(1 + i%50)}, After: ids[i], Limit: 50}); err != nil {
			b.Fatal(err)
		}
	}
}
