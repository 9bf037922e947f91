package leads

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qiflow/qiflow/jobs"

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

// benchPool is the pool size of the pool benchmarks: QIFLOW_BENCH_LEADS
// (100,000 unless set; the figure is 1,000,000).
func benchPool(b *testing.B) int {
	if v := os.Getenv("QIFLOW_BENCH_LEADS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("QIFLOW_BENCH_LEADS=%q: a number of leads, 1000 or more", v)
		}
		return n / 1000 * 1000
	}
	return 100_000
}

// seedPool fills corp ww1's default pool with n unowned leads and their
// people (with a title, a region and a company, for fit rules), with
// multi-row inserts: the benchmarks are about what comes after.
func seedPool(b *testing.B, db *qsql.DB, s *Service, n int) int64 {
	ctx := context.Background()
	if err := s.Intake(ctx, []livecode.ContactAdded{{CorpID: "ww1", ExternalUserID: "seed", UserID: "u", SourceID: 1}}); err != nil {
		b.Fatal(err)
	}
	var poolID int64
	if err := db.Get(&poolID, "SELECT id FROM lead_pools WHERE corp_id = 'ww1'"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO companies (corp_id, name, norm_name, industry, size, created_at, updated_at) VALUES
		('ww1', 'Big', 'big', 'internet', 5000, 1, 1), ('ww1', 'Small', 'small', 'retail', 20, 1, 1)`); err != nil {
		b.Fatal(err)
	}
	var base int64
	db.Get(&base, "SELECT COALESCE(MAX(id), 0) FROM people")
	titles := []string{"CTO", "engineer", "buyer", "CEO"}
	for start := 0; start < n; start += 1000 {
		var people, leads []string
		var pargs, largs []any
		for i := start; i < start+1000; i++ {
			people = append(people, "(?, ?, ?, ?, ?, 1, 1)")
			pargs = append(pargs, "ww1", fmt.Sprint("P", i), titles[i%4], []string{"north", "south"}[i%2], 1+i%2)
			leads = append(leads, "(?, ?, ?, 0, 'lead', 'existing', ?, 1, 1)")
			largs = append(largs, "ww1", base+int64(i)+1, poolID, []string{"expo", "web", "poster"}[i%3])
		}
		if _, err := db.Exec(`INSERT INTO people (corp_id, name, title, region, company_id, created_at, updated_at) VALUES `+strings.Join(people, ","), pargs...); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO leads (corp_id, person_id, pool_id, owner_user_id, stage, source, channel, created_at, updated_at) VALUES `+strings.Join(leads, ","), largs...); err != nil {
			b.Fatal(err)
		}
	}
	return poolID
}

// percentiles reports p50 and p99 of durations as metrics.
func percentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, name+"-p99-ms")
}

// BenchmarkClaimAndPoolPage claims leads from a pool (QIFLOW_BENCH_LEADS)
// and searches the pool (one channel's unowned leads, the next page of 50
// as the SDR sees them), one SDR after another; it reports each's p50 and
// p99.
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' QIFLOW_BENCH_LEADS=1000000 go test -run x -bench ClaimAndPool -benchtime 2000x -timeout 1h ./leads/
func BenchmarkClaimAndPoolPage(b *testing.B) {
	db := benchDB(b)
	s := New(db, nil, nil, quiet)
	ctx := context.Background()
	poolID := seedPool(b, db, s, benchPool(b))
	if err := db.Optimize(ctx); err != nil { // as the cron has done in ten minutes (SQLite; nothing on MySQL)
		b.Fatal(err)
	}
	var ids []int64
	db.Select(&ids, "SELECT id FROM leads ORDER BY id LIMIT ?", b.N)
	if len(ids) < b.N {
		b.Fatalf("%d leads for %d claims", len(ids), b.N)
	}
	claims, pages := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := s.Claim(ctx, "ww1", ids[i], int64(1+i%50)); err != nil {
			b.Fatal(err)
		}
		claims = append(claims, time.Since(start))
		start = time.Now()
		// A search of the pool: one channel's unowned leads (a third of them), as the SDR may see them.
		if _, err := s.List(ctx, ListFilter{CorpID: "ww1", PoolID: poolID, Owner: -1, Channel: "expo", Viewer: Viewer{UserID: int64(1 + i%50)}, After: ids[i], Limit: 50}); err != nil {
			b.Fatal(err)
		}
		pages = append(pages, time.Since(start))
	}
	b.StopTimer()
	percentiles(b, "claim", claims)
	percentiles(b, "page", pages)
}

// BenchmarkRescore rescores a pool of QIFLOW_BENCH_LEADS leads, each with
// QIFLOW_BENCH_ACTIVITIES activities (10 unless set), with three fit rules
// and two engagement rules, as the rescore job does after a rule changes:
// fit and grade, and engagement replayed from the activities (replay-s,
// the first round); later rounds (-benchtime 2x or more) move the grade
// bounds, which cannot change engagement (regrade-s, their mean). It
// reports leads/s over all rounds (one op is the whole pool).
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' QIFLOW_BENCH_LEADS=1000000 go test -run x -bench Rescore -benchtime 1x -timeout 1h ./leads/
func BenchmarkRescore(b *testing.B) {
	db := benchDB(b)
	s := New(db, nil, nil, quiet)
	ctx := context.Background()
	n := benchPool(b)
	seedPool(b, db, s, n)
	acts := 10
	if v := os.Getenv("QIFLOW_BENCH_ACTIVITIES"); v != "" {
		acts, _ = strconv.Atoi(v)
	}
	// In slices of 50,000 leads: one statement for a million rows outlasts
	// the connection's read timeout on a small buffer pool.
	var maxID int64
	if err := db.Get(&maxID, `SELECT COALESCE(MAX(id), 0) FROM leads WHERE corp_id = 'ww1'`); err != nil {
		b.Fatal(err)
	}
	for i := range acts {
		typ := []string{"webinar", "visit"}[i%2]
		for from := int64(0); from < maxID; from += 50_000 {
			if _, err := db.Exec(`INSERT INTO activities (corp_id, person_id, type, at, properties, created_at)
				SELECT corp_id, person_id, ?, ?, '{"minutes": 40}', 1 FROM leads WHERE corp_id = 'ww1' AND id > ? AND id <= ?`,
				typ, time.Now().Add(-time.Duration(i)*24*time.Hour).UnixMilli(), from, from+50_000); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, r := range []Rule{{CorpID: "ww1", Name: "webinar", ActivityType: "webinar", Condition: "properties.minutes >= 30", Points: 15, MaxPoints: 60, Repeatable: true},
		{CorpID: "ww1", Name: "visit", ActivityType: "visit", Points: 2, Repeatable: true}} {
		if err := s.store.createRule(ctx, &r); err != nil { // no rescore queued: the benchmark runs it
			b.Fatal(err)
		}
	}
	for _, r := range []FitRule{{CorpID: "ww1", Name: "exec", Condition: `title in ["CTO", "CEO"]`, Points: 30},
		{CorpID: "ww1", Name: "internet", Condition: `industry == "internet" && company_size >= 1000`, Points: 25},
		{CorpID: "ww1", Name: "expo", Condition: `channel == "expo"`, Points: 10}} {
		if _, err := s.CreateFitRule(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, db)
	if err := db.Optimize(ctx); err != nil { // as the cron has done in ten minutes (SQLite; nothing on MySQL)
		b.Fatal(err)
	}
	// Where the CPU went: the database server's (when it runs here) and this process's.
	db0, go0 := -1.0, processCPU()
	if db.Dialect == qsql.MySQL {
		db0 = serverCPU()
	}
	defer func() {
		if db0 >= 0 {
			b.ReportMetric(serverCPU()-db0, "db-cpu-s")
		}
		b.ReportMetric(processCPU()-go0, "go-cpu-s")
	}()
	var rounds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		run := jobs.NewRunner(db, "bench", time.Minute, quiet)
		run.Register(JobRescore, s.RunRescore)
		id, err := run.Enqueue(ctx, "ww1", JobRescore, "", nil, 0)
		if err != nil {
			b.Fatal(err)
		}
		run.Start(1)
		for {
			j, err := run.Get(ctx, "ww1", id)
			if err != nil {
				b.Fatal(err)
			}
			if j.Status == jobs.JobDone {
				break
			}
			if j.Status != jobs.JobQueued && j.Status != jobs.JobRunning {
				b.Fatalf("rescore %s: %v", j.Status, j.Error)
			}
			time.Sleep(50 * time.Millisecond)
		}
		run.Stop(ctx)
		rounds = append(rounds, time.Since(start))
		// The next round moves the grade bounds (every lead's grade changes,
		// engagement cannot): back and forth.
		set := defaultSettings
		if i%2 == 0 {
			set.GradeA, set.GradeB, set.GradeC = 40, 30, 20
		}
		b.StopTimer()
		if _, err := s.SetScoringSettings(ctx, "ww1", set); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(rounds[0].Seconds(), "replay-s")
	if len(rounds) > 1 {
		var regrade time.Duration
		for _, d := range rounds[1:] {
			regrade += d
		}
		b.ReportMetric(regrade.Seconds()/float64(len(rounds)-1), "regrade-s")
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "leads/s")
}

// serverCPU is the CPU seconds used so far by a MariaDB or MySQL server
// running on this machine, or -1 when there is none.
func serverCPU() float64 {
	out, err := exec.Command("pidof", "mariadbd", "mysqld").Output()
	pids := strings.Fields(string(out))
	if err != nil || len(pids) == 0 {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + pids[0] + "/stat")
	if err != nil {
		return -1
	}
	// The fields after the command's name, which is in parentheses: utime and stime are the 12th and 13th.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	user, _ := strconv.Atoi(f[11])
	sys, _ := strconv.Atoi(f[12])
	return float64(user+sys) / 100 // in clock ticks of 1/100 s
}

// processCPU is the CPU seconds this process has used so far.
func processCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// settle waits (up to ten minutes) for MySQL to write out the pages the
// seeding left dirty, so a benchmark measures its own work rather than
// the flushing of millions of rows inserted just before it.
func settle(b *testing.B, db *qsql.DB) {
	if db.Dialect != qsql.MySQL {
		return
	}
	var pct string
	if err := db.Get(&pct, "SELECT @@GLOBAL.innodb_max_dirty_pages_pct"); err != nil {
		b.Fatal(err)
	}
	defer db.Exec("SET GLOBAL innodb_max_dirty_pages_pct = " + pct)
	if _, err := db.Exec("SET GLOBAL innodb_max_dirty_pages_pct = 0"); err != nil {
		b.Logf("not waiting for dirty pages: %v", err)
		return
	}
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		var name string
		var dirty int
		if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").Scan(&name, &dirty); err != nil || dirty < 1000 {
			return
		}
	}
}

// BenchmarkImport imports a CSV of QIFLOW_BENCH_IMPORT lines (100,000 unless
// set), 5% without a mobile and 10% repeating a mobile, generated as it is
// read (the upload is streamed); it reports lines/s of the whole import
// (upload and job) and the process's peak RSS.
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' go test -run x -bench Import -benchtime 1x -timeout 1h ./leads/
func BenchmarkImport(b *testing.B) {
	db := benchDB(b)
	s := New(db, nil, nil, quiet)
	ctx := context.Background()
	n := 100_000
	if v := os.Getenv("QIFLOW_BENCH_IMPORT"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	run := jobs.NewRunner(db, "bench", time.Minute, quiet)
	run.Register(JobImport, s.RunImport)
	s.SetJobs(run)
	run.Start(1)
	defer run.Stop(ctx)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pr, pw := io.Pipe()
		go func() {
			w := bufio.NewWriter(pw)
			fmt.Fprintln(w, "姓名,手机,公司,职位")
			for j := range n {
				mobile := fmt.Sprintf("13%d%08d", 5+i%5, j)
				switch {
				case j%20 == 0:
					mobile = ""
				case j%10 == 5:
					mobile = fmt.Sprintf("13%d%08d", 5+i%5, j-1)
				}
				fmt.Fprintf(w, "客户%d,%s,公司%d 有限公司,经理\n", j, mobile, j%500)
			}
			w.Flush()
			pw.Close()
		}()
		im, err := s.CreateImport(ctx, "ww1", 1, "bench.csv", pr, map[string]string{"姓名": "name", "手机": "mobile", "公司": "company", "职位": "title"}, "auto")
		if err != nil {
			b.Fatal(err)
		}
		for {
			j, err := run.Get(ctx, "ww1", im.JobID)
			if err != nil {
				b.Fatal(err)
			}
			if j.Status == jobs.JobDone {
				break
			}
			if j.Status != jobs.JobQueued && j.Status != jobs.JobRunning {
				b.Fatalf("import %s: %v", j.Status, j.Error)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	}
}
