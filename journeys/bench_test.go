package journeys

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// The benchmarks run on MariaDB/MySQL when QIFLOW_TEST_MYSQL_DSN is set
// (else SQLite); sizes come from QIFLOW_BENCH_PEOPLE (100,000 unless set;
// the figure is 1,000,000). Commands and results: docs/benchmarks.md.

func benchDB(b *testing.B) *qsql.DB {
	bs := sqltest.Backends()
	return bs[len(bs)-1].Open(b)
}

func benchPeople(b *testing.B) int {
	if v := os.Getenv("QIFLOW_BENCH_PEOPLE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("QIFLOW_BENCH_PEOPLE=%q: 1000 or more", v)
		}
		return n / 1000 * 1000
	}
	return 100_000
}

// seedLeads makes n people and their leads in corp, with multi-row inserts
// (the benchmarks are about what comes after); grades cycle A–D, stages
// lead and nurture. It returns the first lead id.
func seedLeads(b *testing.B, db *qsql.DB, n int) int64 {
	b.Helper()
	var base, firstLead int64
	db.Get(&base, "SELECT COALESCE(MAX(id), 0) FROM people")
	db.Get(&firstLead, "SELECT COALESCE(MAX(id), 0) FROM leads")
	const chunk = 2000
	for start := 0; start < n; start += chunk {
		var people, ls []string
		var pargs, largs []any
		for i := start; i < start+chunk && i < n; i++ {
			people = append(people, "(?, ?, ?, ?, 1, 1)")
			pargs = append(pargs, corp, fmt.Sprint("P", i), []string{"CTO", "engineer", "buyer", "CEO"}[i%4], []string{"north", "south"}[i%2])
			ls = append(ls, "(?, ?, 1, 0, ?, 'code', ?, ?, 'zhangsan', ?, 1, 1)")
			largs = append(largs, corp, base+int64(i)+1, []string{"lead", "nurture"}[i%2], []string{"expo", "web", "poster"}[i%3], 1+i%5, "ABCD"[i%4:i%4+1])
		}
		if _, err := db.Exec(`INSERT INTO people (corp_id, name, title, region, created_at, updated_at) VALUES `+strings.Join(people, ","), pargs...); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO leads (corp_id, person_id, pool_id, owner_user_id, stage, source, channel, code_id, staff_userid, grade, created_at, updated_at) VALUES `+
			strings.Join(ls, ","), largs...); err != nil {
			b.Fatal(err)
		}
	}
	return firstLead + 1
}

// peakRSS is the process's peak resident set (VmHWM), in MiB.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func percentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, name+"-p99-ms")
}

// BenchmarkSegmentRebuild rebuilds a dynamic segment (grade A or B, and
// not in nurture: a quarter of the people) over QIFLOW_BENCH_PEOPLE people
// from empty, then again with nothing changed (the difference is empty).
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' QIFLOW_BENCH_PEOPLE=1000000 go test -run x -bench SegmentRebuild -benchtime 1x -timeout 1h ./journeys/
func BenchmarkSegmentRebuild(b *testing.B) {
	db := benchDB(b)
	n := benchPeople(b)
	seedLeads(b, db, n)
	f := &fixture{db: db}
	f.leads = leads.New(db, nil, nil, quiet)
	f.s = New(db, f.leads, nil, quiet)
	ctx := context.Background()
	g := Segment{CorpID: corp, Name: "good fit", Kind: KindDynamic, Filter: Filter{All: []Filter{
		{Field: "grade", Op: "in", Value: raw([]string{"A", "B"})}, {Field: "stage", Op: "ne", Value: raw("nurture")}}}}
	if err := g.check(); err != nil {
		b.Fatal(err)
	}
	var id int64
	if err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
		var err error
		id, err = insertSegment(ctx, tx, g, 1)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for pass, name := range []string{"first", "unchanged"} {
			start := time.Now()
			if err := f.s.rebuildNow(ctx, corp, id); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds(), name+"-s")
			_ = pass
		}
	}
	got, _ := f.s.Segment(ctx, corp, id)
	if got.Members != int64(n/4) {
		b.Fatalf("%d members, want %d", got.Members, n/4)
	}
	// A changed definition (grade A or C, not in nurture: half the people):
	// built beside the old one, then swapped in as a difference.
	g.Filter = Filter{All: []Filter{{Field: "grade", Op: "in", Value: raw([]string{"A", "C"})}, {Field: "stage", Op: "ne", Value: raw("nurture")}}}
	g.ID = id
	if _, err := f.s.UpdateSegment(ctx, g); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := f.s.rebuildNow(ctx, corp, id); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "redefined-s")
	if got, _ = f.s.Segment(ctx, corp, id); got.Members != int64(n/2) || got.BuiltVersion != got.Version {
		b.Fatalf("after the redefinition: %d members (want %d), built %d of %d", got.Members, n/2, got.BuiltVersion, got.Version)
	}
	b.ReportMetric(float64(n), "people")
	b.ReportMetric(peakRSS(), "peak-rss-MiB")
}

// BenchmarkEngineLocalSteps moves runs through local steps (a condition, a
// split, a status check and an exit: four node executions each) while
// QIFLOW_BENCH_PEOPLE runs wait on a timer that does not come due; it
// reports node executions a second.
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' QIFLOW_BENCH_PEOPLE=1000000 go test -run x -bench EngineLocalSteps -benchtime 1x -timeout 1h ./journeys/
func BenchmarkEngineLocalSteps(b *testing.B) {
	db := benchDB(b)
	n := benchPeople(b)
	const moving = 50_000
	first := seedLeads(b, db, moving)
	l := leads.New(db, nil, nil, quiet)
	s := New(db, l, nil, quiet)
	ctx := context.Background()
	g := Graph{Nodes: []Node{
		{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "fit"}},
		{ID: "fit", Type: NodeCondition, Condition: &Filter{Field: "grade", Op: "in", Value: raw([]string{"A", "B"})}, Exits: map[string]string{"yes": "ab", "no": "out"}},
		{ID: "ab", Type: NodeSplit, Branches: []Branch{{Name: "a", Percent: 50}, {Name: "b", Percent: 50}}, Exits: map[string]string{"a": "out", "b": "out"}},
		{ID: "hold", Type: NodeWait, Wait: &Wait{For: "duration", Minutes: 60 * 24 * 300}, Exits: map[string]string{"next": "out"}},
		{ID: "out", Type: NodeExit},
	}}
	// "hold" is reached by nobody here; the waiting runs are put on it.
	g.Nodes[0].Exits["next"] = "fit"
	g.Nodes = append(g.Nodes, Node{ID: "in2", Type: NodeEntry, Entry: &Entry{On: "segment", Segment: 1}, Exits: map[string]string{"next": "hold"}})
	j, err := s.SaveJourney(ctx, Journey{CorpID: corp, Name: "bench", Draft: g})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Publish(ctx, corp, j.ID, PublishIn{}); err != nil {
		b.Fatal(err)
	}
	// The waiting runs: their leads need not exist (they are never due).
	far := time.Now().Add(300 * 24 * time.Hour).UnixMilli()
	for start := 0; start < n; start += 5000 {
		var rows []string
		var args []any
		for i := start; i < start+5000 && i < n; i++ {
			rows = append(rows, "(?, ?, 1, ?, 'hold', 'waiting', ?, 1, 1, 1)")
			args = append(args, corp, j.ID, int64(10_000_000+i), far)
		}
		if _, err := db.Exec(`INSERT INTO journey_runs (corp_id, journey_id, version, lead_id, node, state, due_at, active_guard, entered_at, updated_at) VALUES `+
			strings.Join(rows, ","), args...); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]int64, moving)
	for i := range ids {
		ids[i] = first + int64(i)
	}
	b.ResetTimer()
	var steps int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := db.Exec(`DELETE FROM journey_runs WHERE journey_id = ? AND node <> 'hold'`, j.ID); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < len(ids); k += 1000 {
			if _, err := s.Enrol(ctx, corp, j.ID, ids[k:min(k+1000, len(ids))]); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for {
			moved, err := s.Tick(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if moved == 0 {
				break
			}
		}
		var done int64
		db.Get(&done, `SELECT COUNT(*) FROM journey_runs WHERE journey_id = ? AND state = 'done'`, j.ID)
		if done != moving {
			b.Fatalf("%d runs done, want %d", done, moving)
		}
		// entry, condition, (split for A and B), exit
		steps += int64(moving*3 + moving/2)
	}
	b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "nodes/s")
	b.ReportMetric(float64(n), "waiting")
	b.ReportMetric(peakRSS(), "peak-rss-MiB")
}

// BenchmarkEventToNextStep measures, with the bus and an engine running as
// in the app, the time from an activity being recorded to the run waiting
// for it having moved on (its next step taken), one event at a time, while
// QIFLOW_BENCH_PEOPLE other runs wait on timers.
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' QIFLOW_BENCH_PEOPLE=1000000 go test -run x -bench EventToNextStep -benchtime 200x -timeout 1h ./journeys/
func BenchmarkEventToNextStep(b *testing.B) {
	db := benchDB(b)
	f := newFixture(b, db, true)
	ctx := context.Background()
	j := f.publish(b, "wait for a form", Graph{Nodes: []Node{
		{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "form"}},
		{ID: "form", Type: NodeWait, Wait: &Wait{For: "activity", Activity: "form.submitted", TimeoutMinutes: 60 * 24}, Exits: map[string]string{"happened": "out", "timeout": "out"}},
		{ID: "out", Type: NodeExit},
	}})
	waitingBehind(b, db, j.ID, benchPeople(b))
	ids := f.seed(b, b.N)
	for k := 0; k < len(ids); k += 1000 {
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids[k:min(k+1000, len(ids))]); err != nil {
			b.Fatal(err)
		}
	}
	f.tickAll(b)
	engineCtx, stop := context.WithCancel(ctx)
	defer stop()
	go f.s.Engine().Run(engineCtx)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		f.activity(b, "form.submitted", ids[i])
		for {
			var state string
			if err := db.GetContext(ctx, &state, `SELECT state FROM journey_runs WHERE journey_id = ? AND lead_id = ?`, j.ID, ids[i]); err != nil {
				b.Fatal(err)
			}
			if state == StateDone {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	percentiles(b, "event-to-step", lat)
	b.ReportMetric(peakRSS(), "peak-rss-MiB")
}

// BenchmarkIncrementalMembership measures the time from a lead's change
// (its stage, through the lead pool's service) to its membership of a
// dynamic segment following, with the bus as in the app, over
// QIFLOW_BENCH_PEOPLE people.
//
//	QIFLOW_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' QIFLOW_BENCH_PEOPLE=1000000 go test -run x -bench IncrementalMembership -benchtime 200x -timeout 1h ./journeys/
func BenchmarkIncrementalMembership(b *testing.B) {
	db := benchDB(b)
	first := seedLeads(b, db, benchPeople(b))
	f := newFixture(b, db, true)
	ctx := context.Background()
	g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "disqualified", Kind: KindDynamic, Filter: Filter{Field: "stage", Op: "eq", Value: raw("disqualified")}})
	if err != nil {
		b.Fatal(err)
	}
	f.rebuild(b, g)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lead := first + int64(i)*2 // stage "lead": may move to disqualified
		start := time.Now()
		if _, err := f.leads.ChangeStage(ctx, corp, lead, 0, true, "disqualified", "bench"); err != nil {
			b.Fatal(err)
		}
		for {
			in, err := f.s.InSegment(ctx, g.ID, lead)
			if err != nil {
				b.Fatal(err)
			}
			if in {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	percentiles(b, "membership", lat)
	b.ReportMetric(peakRSS(), "peak-rss-MiB")
}

// waitingBehind adds n runs of journey waiting on timers that never come due.
func waitingBehind(b *testing.B, db *qsql.DB, journey int64, n int) {
	b.Helper()
	far := time.Now().Add(300 * 24 * time.Hour).UnixMilli()
	for start := 0; start < n; start += 5000 {
		var rows []string
		var args []any
		for i := start; i < start+5000 && i < n; i++ {
			rows = append(rows, "(?, ?, 1, ?, 'form', 'waiting', ?, 1, 1, 1)")
			args = append(args, corp, journey, int64(10_000_000+i), far)
		}
		if _, err := db.Exec(`INSERT INTO journey_runs (corp_id, journey_id, version, lead_id, node, state, due_at, active_guard, entered_at, updated_at) VALUES `+
			strings.Join(rows, ","), args...); err != nil {
			b.Fatal(err)
		}
	}
}
