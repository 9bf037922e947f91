package journeys

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const corp = "ww1"

// fixture is the lead pool and journeys over one database, on a clock the
// test moves; with bus, the lead pool's events reach journeys as in the app.
type fixture struct {
	db    *qsql.DB
	auth  *auth.Service // publishes team changes on the bus, with one
	leads *leads.Service
	s     *Service
	run   *jobs.Runner
	now   atomic.Int64 // Unix ms
}

// start is Monday 2026-12-07 08:00 in Shanghai.
var start = time.Date(2026, 12, 7, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))

func newFixture(t testing.TB, db *qsql.DB, bus bool) *fixture {
	t.Helper()
	f := &fixture{db: db, auth: auth.New(db)}
	f.now.Store(start.UnixMilli())
	clock := func() time.Time { return time.UnixMilli(f.now.Load()) }
	cal, err := configs.CalendarConfig{WorkHours: configs.DefaultWorkHours(), Holidays: []string{"2026-12-08"}}.Compile("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	cals := configs.Calendars{corp: cal}
	f.leads = leads.New(db, nil, cals, quiet)
	f.leads.SetClock(clock)
	f.s = New(db, f.leads, cals, quiet)
	f.s.SetClock(clock)
	f.run = jobs.NewRunner(db, "test", time.Minute, quiet)
	f.run.Register(JobRebuild, f.s.RunRebuild)
	f.s.SetJobs(f.run)
	f.run.Start(1)
	t.Cleanup(func() { f.run.Stop(context.Background()) })
	if bus {
		b := jobs.NewBus(db, quiet)
		f.auth.SetBus(b)
		f.leads.Subscribe(b)
		f.s.Subscribe(b)
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		d := jobs.NewDispatcher(b, jobs.DispatcherOptions{Owner: "test", Workers: 2, FastWorkers: 1, Lease: time.Minute, MaxAttempts: 3,
			Poll: 20 * time.Millisecond, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, quiet)
		d.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d.Stop(ctx)
		})
	}
	return f
}

func (f *fixture) advance(d time.Duration) { f.now.Add(d.Milliseconds()) }

// seed makes n leads (WeCom adds by staff zhangsan) and returns their ids.
func (f *fixture) seed(t testing.TB, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	evs := make([]livecode.ContactAdded, n)
	for i := range evs {
		evs[i] = livecode.ContactAdded{CorpID: corp, ExternalUserID: fmt.Sprint("wm", i), UserID: "zhangsan", Source: "code", CodeID: 7, Channel: "poster",
			SourceID: int64(i + 1), AddedAt: f.now.Load()}
	}
	if err := f.leads.Intake(ctx, evs); err != nil {
		t.Fatal(err)
	}
	ps, err := f.leads.Profiles(ctx, corp, 0, n+1, false)
	if err != nil || len(ps) != n {
		t.Fatalf("%d leads (%v), want %d", len(ps), err, n)
	}
	ids := make([]int64, n)
	for i, p := range ps {
		ids[i] = p.LeadID
	}
	return ids
}

// activity records an activity of typ for each lead's person now.
func (f *fixture) activity(t testing.TB, typ string, ids ...int64) {
	t.Helper()
	ctx := context.Background()
	ps, err := f.leads.ProfilesOf(ctx, corp, ids)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]leads.ActivityIn, len(ps))
	for i, p := range ps {
		in[i] = leads.ActivityIn{PersonID: p.PersonID, Type: typ, At: time.UnixMilli(f.now.Load()), Key: fmt.Sprintf("%s/%d/%d", typ, p.LeadID, f.now.Load())}
	}
	res, err := f.leads.RecordActivities(ctx, corp, in)
	if err != nil || res.Recorded != len(in) {
		t.Fatalf("activities: %+v %v", res, err)
	}
}

func (f *fixture) rebuild(t testing.TB, g *Segment) *Segment {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "the segment's rebuild", func() bool {
		got, err := f.s.Segment(ctx, g.CorpID, g.ID)
		return err == nil && got.BuiltVersion == got.Version
	})
	got, err := f.s.Segment(ctx, g.CorpID, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (f *fixture) members(t *testing.T, seg int64) []int64 {
	t.Helper()
	ms, err := f.s.Members(context.Background(), corp, seg, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Lead
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fieldsOf(err error) map[string]string {
	if ae, ok := apperr.As(err); ok {
		return ae.Fields
	}
	return nil
}

func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func intp(n int) *int { return &n }

func TestFilter_ChecksEveryPartWhenSaved(t *testing.T) {
	_, err := compileFilter("filter", Filter{All: []Filter{
		{Field: "grade", Op: "in", Value: raw([]string{"A", "B"})},
		{Any: []Filter{{Field: "shoe_size", Op: "eq", Value: raw(42)}, {Field: "stage", Op: "almost", Value: raw("mql")}}},
		{Activity: "webinar.attended", Days: -1},
		{Expr: "score >="},
	}})
	fs := fieldsOf(err)
	for _, want := range []string{"filter.all[1].any[0].field", "filter.all[1].any[1].op", "filter.all[2].days"} {
		if fs[want] == "" {
			t.Errorf("no complaint about %s in %v", want, fs)
		}
	}
	// A well-formed tree compiles to one expression and knows what it reads.
	c, err := compileFilter("filter", Filter{All: []Filter{
		{Field: "grade", Op: "in", Value: raw([]string{"A", "B"})},
		{Activity: "webinar.attended", Days: 30, Min: 2},
		{Not: &Filter{Activity: "*", Days: 7, Max: intp(0)}},
		{Field: "tags", Op: "has", Value: raw("VIP")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !c.fields["grade"] || !c.fields["tags"] || c.fields["stage"] || len(c.queries) != 2 {
		t.Fatalf("reads %v and %v", c.fields, c.queries)
	}
	if c.touchedBy([]string{"stage"}, nil) || !c.touchedBy([]string{"grade"}, nil) || !c.touchedBy(nil, []string{"anything"}) {
		t.Fatal("touchedBy does not follow what the condition reads")
	}
	// A raw expression naming an unknown field is refused too.
	if _, err := compileFilter("filter", Filter{Expr: `shoe_size > 40`}); fieldsOf(err)["filter"] == "" {
		t.Fatalf("unknown field in an expression: %v", err)
	}
}

// A rebuild applies only the difference; windowed conditions are checked
// again when their truth can flip; each kind keeps its rules, and what was
// done by hand sticks.
func TestSegments_KindsRebuildWindowsAndPins(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		ids := f.seed(t, 30)
		f.activity(t, "webinar.attended", ids[:10]...)
		filter := Filter{Activity: "webinar.attended", Days: 30, Min: 1}
		dyn, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "webinar, last 30 days", Kind: KindDynamic, Filter: filter})
		if err != nil {
			t.Fatal(err)
		}
		add, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "ever at a webinar", Kind: KindAddOnly, Filter: filter})
		if err != nil {
			t.Fatal(err)
		}
		if dyn = f.rebuild(t, dyn); dyn.Members != 10 || len(f.members(t, dyn.ID)) != 10 {
			t.Fatalf("dynamic: %d members, want 10", dyn.Members)
		}
		if add = f.rebuild(t, add); add.Members != 10 {
			t.Fatalf("add-only: %d members, want 10", add.Members)
		}
		p, err := f.s.PreviewFilter(ctx, corp, filter)
		if err != nil || p.Matched != 10 || p.Scanned != 30 || !p.Complete {
			t.Fatalf("preview %+v %v", p, err)
		}

		// By hand: one lead out of the dynamic segment, another in.
		if _, err := f.s.Pin(ctx, corp, dyn.ID, []int64{ids[0]}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Pin(ctx, corp, dyn.ID, []int64{ids[20]}, true); err != nil {
			t.Fatal(err)
		}

		// 31 days on, the webinar left the window: due checks take the
		// dynamic segment's members out; the add-only one keeps them.
		f.advance(31 * 24 * time.Hour)
		n, err := f.s.CheckDue(ctx)
		// ids[0] was pinned out of the dynamic segment, and the add-only
		// segment's members never leave: nothing to check for them.
		if err != nil || n != 9 {
			t.Fatalf("%d checks (%v), want 9", n, err)
		}
		if n, _ := f.s.CheckDue(ctx); n != 0 {
			t.Fatalf("checked %d twice", n)
		}
		dyn, _ = f.s.Segment(ctx, corp, dyn.ID)
		add, _ = f.s.Segment(ctx, corp, add.ID)
		if got := f.members(t, dyn.ID); dyn.Members != 1 || len(got) != 1 || got[0] != ids[20] {
			t.Fatalf("dynamic after the window: %d members %v, want only the one added by hand", dyn.Members, got)
		}
		if add.Members != 10 {
			t.Fatalf("add-only after the window: %d members, want 10", add.Members)
		}

		// A new filter is a new version, rebuilt; the pins hold through it.
		if _, err := f.s.UpdateSegment(ctx, Segment{ID: dyn.ID, CorpID: corp, Name: dyn.Name, Filter: Filter{Field: "source", Op: "eq", Value: raw("code")}}); err != nil {
			t.Fatal(err)
		}
		dyn = f.rebuild(t, dyn)
		if dyn.Version != 2 || dyn.Members != 29 {
			t.Fatalf("version %d, %d members: want 2 and every lead but the one taken out by hand", dyn.Version, dyn.Members)
		}
		var rows int64
		if err := db.GetContext(ctx, &rows, `SELECT COUNT(*) FROM segment_members WHERE segment_id = ? AND member = 1`, dyn.ID); err != nil || rows != dyn.Members {
			t.Fatalf("the count %d is not what is stored (%d)", dyn.Members, rows)
		}
	})
}

// As leads change, only the segments whose conditions name what changed
// are re-evaluated, and membership follows within moments.
func TestSegments_FollowLeadsThroughTheBus(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		ids := f.seed(t, 3)
		byStage, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "nurture", Kind: KindDynamic, Filter: Filter{Field: "stage", Op: "eq", Value: raw("nurture")}})
		if err != nil {
			t.Fatal(err)
		}
		byForm, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "filled a form", Kind: KindDynamic, Filter: Filter{Activity: "form.submitted", Min: 1}})
		if err != nil {
			t.Fatal(err)
		}
		f.rebuild(t, byStage)
		f.rebuild(t, byForm)
		if _, err := f.leads.ChangeStage(ctx, corp, ids[0], 0, true, "nurture", "not ready"); err != nil {
			t.Fatal(err)
		}
		f.activity(t, "form.submitted", ids[1])
		waitFor(t, "membership to follow", func() bool {
			a, b := f.members(t, byStage.ID), f.members(t, byForm.ID)
			return len(a) == 1 && a[0] == ids[0] && len(b) == 1 && b[0] == ids[1]
		})
		if _, err := f.leads.ChangeStage(ctx, corp, ids[0], 0, true, "lead", "back"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the lead to leave", func() bool { return len(f.members(t, byStage.ID)) == 0 })
		g, _ := f.s.Segment(ctx, corp, byStage.ID)
		if g.Members != 0 {
			t.Fatalf("count %d after leaving", g.Members)
		}
	})
}

func TestGraph_ValidationRefusesBrokenJourneys(t *testing.T) {
	g := Graph{Nodes: []Node{
		{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "check"}},
		{ID: "check", Type: NodeCondition, Condition: &Filter{Field: "grade", Op: "eq", Value: raw("A")}, Exits: map[string]string{"yes": "again"}},
		{ID: "again", Type: NodeJump, To: "check"},
		{ID: "lost", Type: NodeExit},
	}}
	fs := fieldsOf(g.Validate())
	if fs["nodes.check.exits.no"] == "" {
		t.Fatalf("an open exit passed: %v", fs)
	}
	g.Nodes[1].Exits["no"] = "lost"
	fs = fieldsOf(g.Validate())
	if fs["nodes.lost"] != "" || len(fs) != 1 {
		t.Fatalf("want only the loop refused: %v", fs)
	}
	for k, v := range fs {
		if v != "is on a loop without a wait" {
			t.Fatalf("%s: %s", k, v)
		}
	}
	// With a wait on the loop and a node nobody reaches.
	g.Nodes[2] = Node{ID: "again", Type: NodeWait, Wait: &Wait{For: "duration", Minutes: 60}, Exits: map[string]string{"next": "check"}}
	g.Nodes = append(g.Nodes, Node{ID: "island", Type: NodeExit})
	fs = fieldsOf(g.Validate())
	if len(fs) != 1 || fs["nodes.island"] == "" {
		t.Fatalf("want only the unreachable node refused: %v", fs)
	}
}

// welcome is the welcome series: a WeCom add through code 7 →
// wait for the next workday at 10:00 → a tag-free condition on grade → an
// A/B split → each branch records an activity (scored by a rule) → wait
// for a form fill (3 days) → exit. The goal: the lead becomes an MQL.
func welcome() Graph {
	return Graph{
		Goal: &Filter{Field: "stage", Op: "eq", Value: raw("mql")},
		Nodes: []Node{
			{ID: "scan", Type: NodeEntry, Entry: &Entry{On: "activity", Activity: "wecom.added", Properties: map[string]string{"code_id": "7"}}, Exits: map[string]string{"next": "morning"}},
			{ID: "morning", Type: NodeWait, Wait: &Wait{For: "workday", At: "10:00"}, Exits: map[string]string{"next": "fit"}},
			{ID: "fit", Type: NodeCondition, Condition: &Filter{Field: "grade", Op: "in", Value: raw([]string{"A", "B", "C", "D"})}, Exits: map[string]string{"yes": "ab", "no": "bye"}},
			{ID: "ab", Type: NodeSplit, Branches: []Branch{{Name: "a", Percent: 50}, {Name: "b", Percent: 50}}, Exits: map[string]string{"a": "touchA", "b": "touchB"}},
			{ID: "touchA", Type: NodeAction, Action: &Action{Kind: ActionActivity, Activity: "nurture.a"}, Exits: map[string]string{"next": "form"}},
			{ID: "touchB", Type: NodeAction, Action: &Action{Kind: ActionActivity, Activity: "nurture.b"}, Exits: map[string]string{"next": "form"}},
			{ID: "form", Type: NodeWait, Wait: &Wait{For: "activity", Activity: "form.submitted", TimeoutMinutes: 3 * 24 * 60}, Exits: map[string]string{"happened": "bye", "timeout": "bye"}},
			{ID: "bye", Type: NodeExit},
		},
	}
}

func (f *fixture) publish(t testing.TB, name string, g Graph) *Journey {
	t.Helper()
	ctx := context.Background()
	j, err := f.s.SaveJourney(ctx, Journey{CorpID: corp, Name: name, Draft: g})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Problems) > 0 {
		t.Fatalf("problems: %v", j.Problems)
	}
	if j, err = f.s.Publish(ctx, corp, j.ID, PublishIn{}); err != nil {
		t.Fatal(err)
	}
	return j
}

// tickAll ticks until nothing is due.
func (f *fixture) tickAll(t testing.TB) {
	t.Helper()
	for {
		n, err := f.s.Tick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func (f *fixture) runsOf(t *testing.T, journey int64) map[int64]Run {
	t.Helper()
	rs, err := f.s.Runs(context.Background(), corp, journey, "", 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]Run{}
	for _, r := range rs {
		out[r.LeadID] = r
	}
	return out
}

// The welcome series end to end inside the package: entry by the add's
// event, the holiday skipped by the workday wait, the condition, a stable
// split, actions taken once, the event wait's two exits, and the goal.
func TestJourney_WelcomeSeriesRunsDurably(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		if _, err := f.leads.CreateRule(ctx, leads.Rule{CorpID: corp, Name: "nurture a", ActivityType: "nurture.a", Points: 60}); err != nil {
			t.Fatal(err)
		}
		j := f.publish(t, "welcome", welcome())
		ids := f.seed(t, 8) // Monday 08:00: the adds enter the journey
		waitFor(t, "the adds to enter", func() bool { return len(f.runsOf(t, j.ID)) == 8 })
		f.tickAll(t)
		runs := f.runsOf(t, j.ID)
		// Tuesday 2026-12-08 is a holiday: the next workday at 10:00 is
		// Monday's 10:00, two hours on.
		for _, r := range runs {
			if r.Node != "morning" || r.State != StateWaiting || *r.DueAt != start.Add(2*time.Hour).UnixMilli() {
				t.Fatalf("run %+v: want waiting at morning until 10:00 today", r)
			}
		}
		f.advance(2 * time.Hour)
		f.tickAll(t)
		// Both branches were taken, each by the same people on a re-read;
		// branch a's activity scores 60 (MQL at 50): those runs reach the goal.
		runs = f.runsOf(t, j.ID)
		var a, b int
		for _, r := range runs {
			acts, err := f.s.RunActions(ctx, corp, j.ID, r.ID)
			if err != nil || len(acts) != 1 {
				t.Fatalf("run %d: %d actions (%v)", r.ID, len(acts), err)
			}
			switch acts[0].Node {
			case "touchA":
				a++
			case "touchB":
				b++
				if r.Node != "form" || r.State != StateEvent {
					t.Fatalf("branch b run %+v: want waiting for the form", r)
				}
			}
		}
		if a == 0 || b == 0 || a+b != 8 {
			t.Fatalf("split %d/%d", a, b)
		}
		waitFor(t, "branch a to reach the goal", func() bool {
			n := 0
			for _, r := range f.runsOf(t, j.ID) {
				if r.State == StateGoal {
					n++
				}
			}
			return n == a
		})
		// One b person fills the form: the wait's happened exit; the rest time out.
		var filler int64
		for _, r := range f.runsOf(t, j.ID) {
			if r.State == StateEvent {
				filler = r.LeadID
				break
			}
		}
		f.activity(t, "form.submitted", filler)
		waitFor(t, "the form to wake its run", func() bool {
			f.tickAll(t)
			return f.runsOf(t, j.ID)[filler].State == StateDone
		})
		f.advance(3*24*time.Hour + time.Minute)
		f.tickAll(t)
		st, err := f.s.JourneyStats(ctx, corp, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Journey.Enrolled != 8 || st.Journey.Active != 0 || st.Journey.Goals != int64(a) {
			t.Fatalf("journey counters %+v", st.Journey)
		}
		for _, n := range st.Nodes {
			if n.Waiting != 0 {
				t.Fatalf("node %s still counts %d waiting", n.Node, n.Waiting)
			}
			if n.Node == "bye" && n.Entered != int64(b) {
				t.Fatalf("exit entered by %d, want %d", n.Entered, b)
			}
		}
		// Results per branch: a's people all converted (and are MQLs), b's none.
		res, err := f.s.SplitResults(ctx, corp, j.ID)
		if err != nil || len(res) != 2 {
			t.Fatalf("split results %+v %v", res, err)
		}
		if ra, rb := res[0], res[1]; ra.Branch != "a" || ra.Runs != int64(a) || ra.Goals != int64(a) || ra.MQLOrBetter != int64(a) ||
			rb.Runs != int64(b) || rb.Goals != 0 || ra.PValue != 1 || (a >= 3 && b >= 3 && !rb.Significant) {
			t.Fatalf("split results %+v", res)
		}
		// Nobody enters twice (re-entry: never), even on another add.
		f.activity(t, "wecom.added", ids[0])
		if n, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil || n != 0 {
			t.Fatalf("re-entered %d (%v)", n, err)
		}
	})
}

// Two engines tick the same runs at once: each run's action is taken once
// (the claim is exclusive), and a run whose engine died mid-step (its claim
// never written back) is taken over when the lease ends, without taking
// the action again.
func TestEngine_ExclusiveClaimsAndTakeoverAfterACrash(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		other := New(db, f.leads, nil, quiet)
		other.SetClock(func() time.Time { return time.UnixMilli(f.now.Load()) })
		j := f.publish(t, "touch", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "touch"}},
			{ID: "touch", Type: NodeAction, Action: &Action{Kind: ActionActivity, Activity: "journey.touch"}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		ids := f.seed(t, 300)
		if n, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil || n != 300 {
			t.Fatalf("enrolled %d (%v)", n, err)
		}
		var wg sync.WaitGroup
		for _, eng := range []*Service{f.s, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n, err := eng.Tick(ctx)
					if err != nil && !qsql.IsDeadlock(err) {
						t.Error(err)
						return
					}
					if n == 0 && err == nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		var acts, touches int
		if err := db.GetContext(ctx, &acts, `SELECT COUNT(*) FROM journey_actions`); err != nil {
			t.Fatal(err)
		}
		if err := db.GetContext(ctx, &touches, `SELECT COUNT(*) FROM activities WHERE type = 'journey.touch'`); err != nil {
			t.Fatal(err)
		}
		if acts != 300 || touches != 300 {
			t.Fatalf("%d actions recorded, %d activities: want 300 of each", acts, touches)
		}

		// A crash: the engine claimed runs and took the action, then died
		// before writing the runs back.
		more := f.seed(t, 310)[300:]
		if _, err := f.s.Enrol(ctx, corp, j.ID, more); err != nil {
			t.Fatal(err)
		}
		now := f.now.Load()
		claimed, err := claimDue(ctx, db, newToken(), now, now+leaseFor.Milliseconds(), claimBatch)
		if err != nil || len(claimed) != 10 {
			t.Fatalf("claimed %d (%v)", len(claimed), err)
		}
		g, _ := f.s.graph(ctx, j.ID, 1)
		profiles, _ := f.s.profilesFor(ctx, claimed)
		for i := range claimed {
			f.s.advance(ctx, g, &claimed[i], profiles[claimed[i].LeadID], newStats(), time.UnixMilli(now))
		}
		// Until the lease ends nobody else takes them…
		if n, err := other.Tick(ctx); err != nil || n != 0 {
			t.Fatalf("took %d runs under a live lease (%v)", n, err)
		}
		// …then another engine does, and the activity is not recorded twice.
		f.advance(leaseFor + time.Second)
		if n, err := other.Tick(ctx); err != nil || n != 10 {
			t.Fatalf("took over %d runs (%v), want 10", n, err)
		}
		if err := db.GetContext(ctx, &touches, `SELECT COUNT(*) FROM activities WHERE type = 'journey.touch'`); err != nil || touches != 310 {
			t.Fatalf("%d activities after the takeover, want 310", touches)
		}
		st, _ := f.s.JourneyStats(ctx, corp, j.ID)
		if st.Journey.Active != 0 || st.Journey.Enrolled != 310 {
			t.Fatalf("counters %+v", st.Journey)
		}
	})
}

func TestTwoProportionP(t *testing.T) {
	// 50 of 100 against 65 of 100: z ≈ 2.15, p ≈ 0.032.
	if p := twoProportionP(50, 100, 65, 100); p < 0.030 || p > 0.034 {
		t.Fatalf("p = %.4f", p)
	}
	if p := twoProportionP(5, 10, 5, 10); p != 1 {
		t.Fatalf("equal rates: p = %.4f", p)
	}
	if p := twoProportionP(0, 0, 1, 2); p != 1 {
		t.Fatalf("no runs: p = %.4f", p)
	}
}

// A journey entered on a score: the person whose engagement reaches 50
// enters (once); one below stays out.
func TestJourney_EntersWhenTheScoreIsReached(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		if _, err := f.leads.CreateRule(ctx, leads.Rule{CorpID: corp, Name: "webinar", ActivityType: "webinar", Points: 30, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		j := f.publish(t, "hot", Graph{Nodes: []Node{
			{ID: "hot", Type: NodeEntry, Entry: &Entry{On: "score", Above: 50}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		ids := f.seed(t, 2)
		f.activity(t, "webinar", ids[0], ids[1])
		f.advance(time.Minute)
		f.activity(t, "webinar", ids[0]) // 60 points: reached
		waitFor(t, "the hot lead to enter", func() bool { return len(f.runsOf(t, j.ID)) == 1 })
		f.advance(time.Minute)
		f.activity(t, "webinar", ids[0]) // still above: no second run
		waitFor(t, "the event handled", func() bool {
			var n int
			db.Get(&n, `SELECT COUNT(*) FROM bus_deliveries WHERE status = 'queued'`)
			return n == 0
		})
		if rs := f.runsOf(t, j.ID); len(rs) != 1 || rs[ids[0]].LeadID != ids[0] {
			t.Fatalf("runs %+v: want only the lead that reached 50", rs)
		}
	})
}

// A multi-way condition sends each person down the first case that holds,
// else its else exit; the dry run says which and why.
func TestJourney_MultiWayCondition(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		ids := f.seed(t, 2)
		if _, err := f.leads.ChangeStage(ctx, corp, ids[1], 0, true, "nurture", "later"); err != nil {
			t.Fatal(err)
		}
		j := f.publish(t, "ways", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "which"}},
			{ID: "which", Type: NodeCondition, Cases: []Case{
				{Name: "top", Condition: Filter{Field: "grade", Op: "eq", Value: raw("A")}},
				{Name: "later", Condition: Filter{Field: "stage", Op: "eq", Value: raw("nurture")}},
			}, Exits: map[string]string{"top": "a", "later": "b", "else": "c"}},
			{ID: "a", Type: NodeExit}, {ID: "b", Type: NodeExit}, {ID: "c", Type: NodeExit},
		}})
		steps, err := f.s.DryRun(ctx, corp, j.ID, ids[1])
		if err != nil || len(steps) != 3 || steps[1].Exit != "later" {
			t.Fatalf("dry run %+v %v", steps, err)
		}
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		rs := f.runsOf(t, j.ID)
		if rs[ids[0]].Node != "c" || rs[ids[1]].Node != "b" || rs[ids[0]].State != StateDone {
			t.Fatalf("runs %+v", rs)
		}
		// Two-way and multi-way at once is refused, and so is a case named else.
		bad := welcome()
		bad.Nodes[2].Cases = []Case{{Name: "else", Condition: Filter{Expr: "true"}}}
		fs := fieldsOf(bad.Validate())
		if fs["nodes.tagged.cases"] == "" && fs["nodes.fit.cases"] == "" {
			t.Fatalf("both kinds accepted: %v", fs)
		}
	})
}

// A rescore regrades every lead in bulk without an event a lead; its one
// LeadsRescored rebuilds the segments on grade and ends the runs whose
// goal (grade A) the rescore made true.
func TestSegments_RebuiltAfterARescore(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		f.run.Register(leads.JobRescore, f.leads.RunRescore)
		f.leads.SetJobs(f.run)
		for i, title := range []string{"CTO", "engineer", "CTO"} {
			if _, err := f.leads.Upsert(ctx, corp, 0, "", leads.PersonIn{Name: fmt.Sprint("P", i), Mobile: fmt.Sprint("1391234560", i), Title: title}); err != nil {
				t.Fatal(err)
			}
		}
		g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "grade A", Kind: KindDynamic, Filter: Filter{Field: "grade", Op: "eq", Value: raw("A")}})
		if err != nil {
			t.Fatal(err)
		}
		f.rebuild(t, g)
		// A journey whose goal is grade A, with everyone waiting in it.
		j := f.publish(t, "to grade A", Graph{Goal: &Filter{Field: "grade", Op: "eq", Value: raw("A")}, Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "wait"}},
			{ID: "wait", Type: NodeWait, Wait: &Wait{For: "duration", Minutes: 7 * 24 * 60}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		ps, _ := f.leads.Profiles(ctx, corp, 0, 10, false)
		ids := []int64{ps[0].LeadID, ps[1].LeadID, ps[2].LeadID}
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		var before int
		db.Get(&before, `SELECT COUNT(*) FROM bus_events WHERE type = 'LeadChanged'`)
		if _, err := f.leads.CreateFitRule(ctx, leads.FitRule{CorpID: corp, Name: "CTO", Condition: `title == "CTO"`, Points: 65}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the rescore and the rebuild after it", func() bool {
			got, err := f.s.Segment(ctx, corp, g.ID)
			return err == nil && got.Members == 2
		})
		var after int
		db.Get(&after, `SELECT COUNT(*) FROM bus_events WHERE type = 'LeadChanged'`)
		if after != before {
			t.Fatalf("the rescore published %d LeadChanged events, want none", after-before)
		}
		// The runs of the two who are grade A now reach the goal at once,
		// not at the end of their week's wait.
		waitFor(t, "the goals reached after the rescore", func() bool {
			rs := f.runsOf(t, j.ID)
			return rs[ids[0]].State == StateGoal && rs[ids[2]].State == StateGoal
		})
		if r := f.runsOf(t, j.ID)[ids[1]]; r.State != StateWaiting {
			t.Fatalf("the engineer's run %+v, want still waiting", r)
		}
	})
}

// A paused journey's runs hold (their timers kept) and go on when it is
// resumed; an archived one's runs end.
func TestJourney_PauseHoldsRunsAndResumeKeepsTheirTimers(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		j := f.publish(t, "hold", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "hour"}},
			{ID: "hour", Type: NodeWait, Wait: &Wait{For: "duration", Minutes: 60}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		ids := f.seed(t, 3)
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		due := f.runsOf(t, j.ID)[ids[0]].DueAt
		if _, err := f.s.SetStatus(ctx, corp, j.ID, StatusPaused); err != nil {
			t.Fatal(err)
		}
		f.advance(2 * time.Hour)
		f.tickAll(t)
		for _, r := range f.runsOf(t, j.ID) {
			if r.State != StateWaiting {
				t.Fatalf("run %+v moved while paused", r)
			}
		}
		if _, err := f.s.SetStatus(ctx, corp, j.ID, StatusPublished); err != nil {
			t.Fatal(err)
		}
		if got := f.runsOf(t, j.ID)[ids[0]].DueAt; *got != *due {
			t.Fatalf("timer %d after resume, want %d", *got, *due)
		}
		f.tickAll(t)
		for _, r := range f.runsOf(t, j.ID) {
			if r.State != StateDone {
				t.Fatalf("run %+v not done after resume", r)
			}
		}
		// Nobody enters twice; archiving ends what is still running.
		if n, err := f.s.Enrol(ctx, corp, j.ID, ids[:1]); err != nil || n != 0 {
			t.Fatalf("re-entered a never-re-entry journey: %d %v", n, err)
		}
		more := f.seed(t, 4)[3:]
		if n, err := f.s.Enrol(ctx, corp, j.ID, more); err != nil || n != 1 {
			t.Fatalf("enrolled %d (%v)", n, err)
		}
		f.tickAll(t)
		if _, err := f.s.SetStatus(ctx, corp, j.ID, StatusArchived); err != nil {
			t.Fatal(err)
		}
		st, _ := f.s.JourneyStats(ctx, corp, j.ID)
		if r := f.runsOf(t, j.ID)[more[0]]; r.State != StateExited || st.Journey.Active != 0 || st.Journey.Exited != 1 {
			t.Fatalf("after archiving: run %+v, counters %+v", r, st.Journey)
		}
	})
}

// Entering a segment starts the journey; leaving it ends the run when the
// journey says so.
func TestJourney_SegmentEntryAndExitOnLeave(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "nurture", Kind: KindDynamic, Filter: Filter{Field: "stage", Op: "eq", Value: raw("nurture")}})
		if err != nil {
			t.Fatal(err)
		}
		f.rebuild(t, g)
		j := f.publish(t, "nurture series", Graph{Settings: Settings{ExitOnSegmentLeave: true}, Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "segment", Segment: g.ID}, Exits: map[string]string{"next": "day"}},
			{ID: "day", Type: NodeWait, Wait: &Wait{For: "duration", Minutes: 24 * 60}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		ids := f.seed(t, 1)
		if _, err := f.leads.ChangeStage(ctx, corp, ids[0], 0, true, "nurture", "not now"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the run to start", func() bool {
			f.tickAll(t)
			return f.runsOf(t, j.ID)[ids[0]].State == StateWaiting
		})
		if _, err := f.leads.ChangeStage(ctx, corp, ids[0], 0, true, "lead", "back"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the run to exit", func() bool { return f.runsOf(t, j.ID)[ids[0]].State == StateExited })
		st, _ := f.s.JourneyStats(ctx, corp, j.ID)
		if st.Journey.Active != 0 || st.Journey.Exited != 1 {
			t.Fatalf("counters %+v", st.Journey)
		}
		for _, n := range st.Nodes {
			if n.Waiting != 0 {
				t.Fatalf("node %s still counts %d waiting", n.Node, n.Waiting)
			}
		}
	})
}

// A condition on the decaying score is checked again when the score passes
// its mark, not by rescanning: 60 points with a 30-day half-life fall
// below 50 after 30·log2(1.2) ≈ 7.9 days.
func TestSegments_ScoreDecayIsScheduled(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		if _, err := f.leads.CreateRule(ctx, leads.Rule{CorpID: corp, Name: "webinar", ActivityType: "webinar", Points: 60}); err != nil {
			t.Fatal(err)
		}
		ids := f.seed(t, 2)
		f.activity(t, "webinar", ids[0])
		g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "hot", Kind: KindDynamic, Filter: Filter{Field: "score", Op: "gte", Value: raw(50)}})
		if err != nil {
			t.Fatal(err)
		}
		if g = f.rebuild(t, g); g.Members != 1 {
			t.Fatalf("%d members, want 1", g.Members)
		}
		var checkAt int64
		db.Get(&checkAt, `SELECT check_at FROM segment_members WHERE segment_id = ? AND lead_id = ?`, g.ID, ids[0])
		want := start.Add(time.Duration(30 * math.Log2(1.2) * float64(24*time.Hour))).UnixMilli()
		if checkAt < want-1000 || checkAt > want+1000 {
			t.Fatalf("check at %d, want about %d", checkAt, want)
		}
		f.advance(7 * 24 * time.Hour)
		if n, _ := f.s.CheckDue(ctx); n != 0 {
			t.Fatalf("checked %d before the score passed 50", n)
		}
		f.advance(24 * time.Hour)
		if n, err := f.s.CheckDue(ctx); err != nil || n != 1 {
			t.Fatalf("checked %d (%v), want 1", n, err)
		}
		if g, _ = f.s.Segment(ctx, corp, g.ID); g.Members != 0 {
			t.Fatalf("%d members after the score decayed below 50", g.Members)
		}
	})
}

// A condition on the owner's teams (by name: member or manager) follows
// claims as they happen.
func TestSegments_OwnersTeams(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		au := f.auth
		f.s.SetTeams(au.TeamNamesByUser)
		users := map[string]int64{}
		for _, name := range []string{"lead", "sdr", "other"} {
			u, err := au.CreateUser(ctx, auth.NewUser{Email: name + "@example.com", Password: "password 1234", CorpID: corp, Role: auth.RoleSDR})
			if err != nil {
				t.Fatal(err)
			}
			users[name] = u.ID
		}
		team, err := au.CreateTeam(ctx, corp, "华东组", users["lead"])
		if err != nil {
			t.Fatal(err)
		}
		if err := au.AddTeamMember(ctx, corp, team.ID, users["sdr"]); err != nil {
			t.Fatal(err)
		}
		g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "east", Kind: KindDynamic, Filter: Filter{Field: "teams", Op: "has", Value: raw("华东组")}})
		if err != nil {
			t.Fatal(err)
		}
		f.rebuild(t, g)
		ids := f.seed(t, 3)
		for i, who := range []string{"lead", "sdr", "other"} {
			if _, err := f.leads.Claim(ctx, corp, ids[i], users[who]); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the team's leads in the segment", func() bool {
			ms := f.members(t, g.ID)
			return len(ms) == 2 && ms[0] == ids[0] && ms[1] == ids[1]
		})
		// The owner of the third lead joins the team: their lead follows,
		// though nothing happened to the lead itself.
		if err := au.AddTeamMember(ctx, corp, team.ID, users["other"]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the new member's lead in the segment", func() bool { return len(f.members(t, g.ID)) == 3 })
	})
}

// A changed filter is built while the old one keeps serving (members,
// count, incremental updates), then swapped in; a lead that changed during
// the build is judged again at the swap rather than trusted from it.
func TestSegments_RedefinitionServesTheOldVersionUntilSwapped(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		ids := f.seed(t, 4)
		g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "leads", Kind: KindDynamic, Filter: Filter{Field: "stage", Op: "eq", Value: raw("lead")}})
		if err != nil {
			t.Fatal(err)
		}
		f.rebuild(t, g)
		f.s.SetJobs(nil) // the phases are run by hand below
		stage := func(lead int64, to string) {
			t.Helper()
			if _, err := f.leads.ChangeStage(ctx, corp, lead, 0, true, to, "test"); err != nil {
				t.Fatal(err)
			}
			if err := f.s.UpdateMembership(ctx, []any{leads.LeadChanged{CorpID: corp, LeadID: lead, Changes: []leads.LeadChange{{Kind: leads.HistoryStage, To: to}}}}); err != nil {
				t.Fatal(err)
			}
		}
		stage(ids[3], "nurture")
		if _, err := f.s.UpdateSegment(ctx, Segment{ID: g.ID, CorpID: corp, Name: "nurture", Filter: Filter{Field: "stage", Op: "eq", Value: raw("nurture")}}); err != nil {
			t.Fatal(err)
		}
		got, _ := f.s.Segment(ctx, corp, g.ID)
		if got.Version != 2 || got.BuiltVersion != 1 || got.Building == nil || got.Members != 3 || got.Filter.Value == nil || string(got.Filter.Value) != `"lead"` {
			t.Fatalf("after the change: %+v", got)
		}
		cp := rebuildCheckpoint{Version: got.Version}
		res := &RebuildResult{}
		if err := f.s.buildVersion(ctx, got, &cp, nil, res); err != nil {
			t.Fatal(err)
		}
		// During the build the old filter still decides: ids[0] going to
		// nurture leaves the segment of leads.
		stage(ids[0], "nurture")
		if ms := f.members(t, g.ID); len(ms) != 2 || ms[0] != ids[1] || ms[1] != ids[2] {
			ps, _ := f.leads.ProfilesOf(ctx, corp, ids)
			var rows []Member
			db.Select(&rows, `SELECT `+memberCols+` FROM segment_members`)
			t.Fatalf("members while building %v, want the old filter's; ids %v; profiles %+v; rows %+v", ms, ids, ps, rows)
		}
		if err := f.s.swapVersion(ctx, got, &cp, nil, res); err != nil {
			t.Fatal(err)
		}
		got, _ = f.s.Segment(ctx, corp, g.ID)
		if ms := f.members(t, g.ID); len(ms) != 2 || ms[0] != ids[0] || ms[1] != ids[3] || got.Members != 2 {
			t.Fatalf("members after the swap %v (count %d), want the two in nurture", ms, got.Members)
		}
		if got.BuiltVersion != 2 || got.Building != nil || string(got.Filter.Value) != `"nurture"` {
			t.Fatalf("after the swap: %+v", got)
		}
		var left int
		db.Get(&left, `SELECT (SELECT COUNT(*) FROM segment_builds) + (SELECT COUNT(*) FROM segment_dirty)`)
		if left != 0 {
			t.Fatalf("%d build rows left", left)
		}
	})
}

// A score action adds points once per step (a retried step changes
// nothing) and makes an MQL when the bar is met.
func TestJourney_ScoreActionOncePerStep(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		j := f.publish(t, "boost", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "boost"}},
			{ID: "boost", Type: NodeAction, Action: &Action{Kind: ActionScore, Points: 60}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		ids := f.seed(t, 1)
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		r := f.runsOf(t, j.ID)[ids[0]]
		// The same step again (a retry after a crash): no second 60 points.
		if applied, err := f.leads.AdjustScore(ctx, corp, ids[0], 60, "again", ActionKey(r.ID, 1)); err != nil || applied {
			t.Fatalf("a repeated key applied (%v, %v)", applied, err)
		}
		ps, _ := f.leads.ProfilesOf(ctx, corp, ids)
		if ps[0].Score < 59.9 || ps[0].Score > 60.1 || ps[0].Stage != "mql" {
			t.Fatalf("after the journey: score %.1f, stage %s; want 60 and mql", ps[0].Score, ps[0].Stage)
		}
	})
}

// A rebuild asked for by hand recomputes a segment whose people changed
// around Qiflow (a restored backup, an upgrade that missed events): only
// the difference moves, and a static segment has nothing to rebuild by.
func TestSegments_RebuildOnRequest(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		ids := f.seed(t, 6)
		g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "CTOs", Kind: KindDynamic,
			Filter: Filter{Field: "title", Op: "eq", Value: json.RawMessage(`"CTO"`)}})
		if err != nil {
			t.Fatal(err)
		}
		if g = f.rebuild(t, g); g.Members != 0 {
			t.Fatalf("%d members before anyone is a CTO", g.Members)
		}
		// The creation's job is over (a request while a rebuild runs is that
		// rebuild, whose pass may be past the change).
		waitFor(t, "the creation's rebuild job to end", func() bool {
			var busy int
			err := db.Get(&busy, `SELECT COUNT(*) FROM jobs WHERE kind = ? AND status IN ('queued', 'running')`, JobRebuild)
			return err == nil && busy == 0
		})
		// Two people become CTOs behind Qiflow's back: no event, no change.
		if _, err := db.Exec(`UPDATE people SET title = 'CTO' WHERE id IN (SELECT person_id FROM leads WHERE id IN (?, ?))`, ids[1], ids[4]); err != nil {
			t.Fatal(err)
		}
		job, err := f.s.QueueRebuild(ctx, corp, g.ID)
		if err != nil || job == 0 {
			t.Fatalf("rebuild queued as job %d (%v)", job, err)
		}
		waitFor(t, "the rebuild job", func() bool {
			j, err := f.run.Get(ctx, corp, job)
			return err == nil && j.Status == jobs.JobDone
		})
		if got := f.members(t, g.ID); len(got) != 2 || got[0] != ids[1] || got[1] != ids[4] {
			t.Fatalf("members after the rebuild %v, want %v", got, []int64{ids[1], ids[4]})
		}
		if g, _ = f.s.Segment(ctx, corp, g.ID); g.Members != 2 {
			t.Fatalf("count %d after the rebuild, want 2", g.Members)
		}
		static, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "picked", Kind: KindStatic})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.QueueRebuild(ctx, corp, static.ID); err != ErrStaticRebuild {
			t.Fatalf("a static segment's rebuild: %v", err)
		}
		if _, err := f.s.QueueRebuild(ctx, corp, 999999); err != ErrSegmentNotFound {
			t.Fatalf("a missing segment's rebuild: %v", err)
		}
	})
}
