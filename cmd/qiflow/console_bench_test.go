package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiflow/qiflow/auth"
)

// BenchmarkConsolePages times the console's pages through the real server
// on MySQL with a big pool: QIFLOW_BENCH_LEADS leads (100,000 unless set)
// in the default pool, 300 of them an SDR's with running SLA clocks, and
// an open SLA clock on every tenth lead of the others. Each op loads every
// page once; it reports each page's p50 and p95 in ms (client-side on
// loopback: the server's time plus a local round trip).
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' QIFLOW_BENCH_LEADS=1000000 go test -run x -bench ConsolePages -benchtime 200x -timeout 1h ./cmd/qiflow/
func BenchmarkConsolePages(b *testing.B) {
	if os.Getenv("QIFLOW_TEST_MYSQL_DSN") == "" {
		b.Skip("skipped: the console's page benchmark runs on MySQL (set QIFLOW_TEST_MYSQL_DSN)")
	}
	n := 100_000
	if v := os.Getenv("QIFLOW_BENCH_LEADS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("QIFLOW_BENCH_LEADS=%q: a number of leads, 1000 or more", v)
		}
	}
	s := startStackWith(b, "mysql", nil)
	ctx := b.Context()
	sdr, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: "sdr@example.com", Password: "password sdr", CorpID: e2eCorp, Role: auth.RoleSDR})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: "rep@example.com", Password: "password rep", CorpID: e2eCorp, Role: auth.RoleSales}); err != nil {
		b.Fatal(err)
	}
	admin := login(b, s.url, "admin@example.com", "admin password")
	if st := call(b, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "first", "mobile": "13900000001"}, nil); st != http.StatusCreated {
		b.Fatalf("first lead: %d", st) // creates the default pool
	}
	var pool int64
	if err := s.app.db.Get(&pool, "SELECT id FROM lead_pools WHERE corp_id = ?", e2eCorp); err != nil {
		b.Fatal(err)
	}
	seedConsoleLeads(b, s, pool, n, sdr.ID)
	var some int64
	s.app.db.Get(&some, "SELECT MIN(id) FROM leads WHERE corp_id = ? AND owner_user_id = ?", e2eCorp, sdr.ID)

	sdrB, adminB, repB := newBrowser(b, s.url, "zh-CN"), newBrowser(b, s.url, "zh-CN"), newBrowser(b, s.url, "zh-CN")
	sdrB.signIn("sdr@example.com", "password sdr")
	adminB.signIn("admin@example.com", "admin password")
	repB.signIn("rep@example.com", "password rep")
	pages := []struct {
		name string
		who  *consoleUser
		path string
	}{
		{"home-sdr", sdrB, "/console"},
		{"home-admin", adminB, "/console"},
		{"pool-unowned", sdrB, "/console/pool?owner=none"},
		{"pool-grade-A", sdrB, "/console/pool?owner=none&grade=A"},
		{"pool-channel", sdrB, "/console/pool?owner=none&channel=expo"},
		{"my-leads", sdrB, "/console/pool?owner=me"},
		{"lead", sdrB, "/console/leads/" + itoa(some)},
		{"inbox", repB, "/console/inbox"},
		{"codes", adminB, "/console/codes"},
		{"results", adminB, "/console/results"},
		{"imports", adminB, "/console/imports"},
		{"events", adminB, "/console/events"},
		{"jobs", adminB, "/console/jobs"},
		{"people-by-name", sdrB, "/console/people?q=" + url.QueryEscape("客户12")},
		{"people-by-mobile", sdrB, "/console/people?q=13900000001"},
		{"code-form", adminB, "/console/codes/new"},
		{"stores", adminB, "/console/stores"},
		{"scoring", adminB, "/console/settings/scoring"},
		{"forms", adminB, "/console/settings/forms"},
		{"pools", adminB, "/console/settings/pools"},
		{"users", adminB, "/console/settings/users"},
		{"roles", adminB, "/console/settings/roles"},
	}
	times := make([][]time.Duration, len(pages))
	b.ResetTimer()
	for range b.N {
		for i, p := range pages {
			start := time.Now()
			if st, _, _ := p.who.do("GET", p.path, nil, false, false); st != http.StatusOK {
				b.Fatalf("%s: %d", p.path, st)
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	b.StopTimer()
	for i, p := range pages {
		ds := times[i]
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, p.name+"-p50-ms")
		b.ReportMetric(float64(ds[len(ds)*95/100].Microseconds())/1000, p.name+"-p95-ms")
	}
}

// seedConsoleLeads fills the pool with n leads and their people (multi-row
// inserts), gives 300 to the SDR with running SLA clocks, and starts a
// clock on every tenth of the rest (another user's).
func seedConsoleLeads(b *testing.B, s *stack, pool int64, n int, sdr int64) {
	var base int64
	s.app.db.Get(&base, "SELECT COALESCE(MAX(id), 0) FROM people")
	now := time.Now().UnixMilli()
	for start := 0; start < n; start += 1000 {
		var people, leadRows []string
		var pargs, largs []any
		for i := start; i < start+1000 && i < n; i++ {
			people = append(people, "(?, ?, ?, 1, 1)")
			pargs = append(pargs, e2eCorp, fmt.Sprint("客户", i), []string{"CTO", "engineer", "buyer"}[i%3])
			owner := int64(0)
			if i < 300 {
				owner = sdr
			} else if i%10 == 0 {
				owner = 999
			}
			leadRows = append(leadRows, "(?, ?, ?, ?, 'lead', 'import', ?, ?, ?, ?, ?)")
			largs = append(largs, e2eCorp, base+int64(i)+1, pool, owner, []string{"expo", "web", "poster"}[i%3], []string{"A", "B", "C", "D"}[i%4], now, now, now)
		}
		if _, err := s.app.db.Exec(`INSERT INTO people (corp_id, name, title, created_at, updated_at) VALUES `+strings.Join(people, ","), pargs...); err != nil {
			b.Fatal(err)
		}
		if _, err := s.app.db.Exec(`INSERT INTO leads (corp_id, person_id, pool_id, owner_user_id, stage, source, channel, grade, claimed_at, created_at, updated_at) VALUES `+strings.Join(leadRows, ","), largs...); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.app.db.Exec(`INSERT INTO lead_slas (corp_id, lead_id, kind, owner_user_id, rule_id, status, started_at, half_at, due_at)
		SELECT corp_id, id, 'first_touch', owner_user_id, 1, 'open', ?, ?, ? FROM leads WHERE corp_id = ? AND owner_user_id <> 0`, now, now+3600_000, now+7200_000, e2eCorp); err != nil {
		b.Fatal(err)
	}
}
