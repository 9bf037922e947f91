package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

func TestFit_RulesGradeLeadsAndTheMQLBarNeedsTheGrade(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		set := settingsWith(30, 30)
		set.MQLMinGrade = "B"
		if _, err := s.SetScoringSettings(ctx, "ww1", set); err != nil {
			t.Fatal(err)
		}
		set.GradeC = 0
		if _, err := s.SetScoringSettings(ctx, "ww1", set); err == nil {
			t.Fatal("grade bounds where no points is not D were saved")
		}
		if _, err := s.CreateFitRule(ctx, FitRule{CorpID: "ww1", Name: "salary", Condition: `salary > 5`, Points: 5}); err == nil {
			t.Fatal("a fit rule over an unknown field was saved")
		} else if ae, ok := apperr.As(err); !ok || ae.Fields["condition"] == "" {
			t.Fatalf("the error does not name the condition: %v", err)
		}
		for _, r := range []FitRule{
			{CorpID: "ww1", Name: "internet", Condition: `industry == "internet"`, Points: 25},
			{CorpID: "ww1", Name: "exec", Condition: `title contains "CTO" || authority == "decision maker"`, Points: 20},
			{CorpID: "ww1", Name: "big", Condition: `company_size >= 1000`, Points: 20},
		} {
			if _, err := s.CreateFitRule(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "webinar", ActivityType: "webinar", Points: 35, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		good, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "李雷", Mobile: "13912345679", Title: "CTO", Company: "Acme", Industry: "internet"})
		if err != nil {
			t.Fatal(err)
		}
		small, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "韩梅梅", Mobile: "13912345680", Company: "Tiny"})
		if err != nil {
			t.Fatal(err)
		}
		if good.Lead.FitPoints != 45 || good.Lead.Grade != "B" || small.Lead.Grade != "D" {
			t.Fatalf("fit %d %s / %d %s", good.Lead.FitPoints, good.Lead.Grade, small.Lead.FitPoints, small.Lead.Grade)
		}
		for _, p := range []int64{good.Person.ID, small.Person.ID} {
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{PersonID: p, Type: "webinar", At: now}}); err != nil {
				t.Fatal(err)
			}
		}
		stage := func(id int64) string {
			l, err := s.read(ctx, "ww1", id)
			if err != nil {
				t.Fatal(err)
			}
			return l.Stage
		}
		if stage(good.Lead.ID) != StageMQL || stage(small.Lead.ID) != StageLead {
			t.Fatalf("engaged B is an MQL, engaged D is not: %s / %s", stage(good.Lead.ID), stage(small.Lead.ID))
		}
		// The small one's company turns out big and its contact decides: B, and an MQL now.
		if _, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Mobile: "13912345680", CompanySize: 5000, Qualification: Qualification{Authority: "decision maker"}}); err != nil {
			t.Fatal(err)
		}
		l, h, _ := s.Get(ctx, "ww1", small.Lead.ID, all)
		if l.Grade != "B" || l.FitPoints != 40 || l.Stage != StageMQL {
			t.Fatalf("after the update: %d %s %s", l.FitPoints, l.Grade, l.Stage)
		}
		var fit, promoted bool
		for _, e := range h {
			fit = fit || (e.Kind == HistoryFit && e.From == "0 D" && e.To == "40 B" && e.Reason == "+20 exec, +20 big")
			promoted = promoted || (e.Kind == HistoryStage && e.To == StageMQL && e.Reason == "engagement 35.0 reached the MQL threshold 30 with grade B (at least B)")
		}
		if !fit || !promoted {
			t.Fatalf("history does not explain the fit and the MQL: %+v", h)
		}
	})
}

func TestRescore_NewRulesRegradeEveryLeadInTheBackground(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		run := jobs.NewRunner(db, "test", time.Minute, quiet)
		run.Register(JobRescore, s.RunRescore)
		s.SetJobs(run)
		var evs []livecode.ContactAdded // more than two pages
		for i := range 1200 {
			evs = append(evs, added(fmt.Sprint("wm", i), "zhangsan", int64(i+1)))
		}
		if err := s.Intake(ctx, evs); err != nil {
			t.Fatal(err)
		}
		var ids []int64
		if err := db.SelectContext(ctx, &ids, `SELECT id FROM leads ORDER BY id`); err != nil || len(ids) != 1200 {
			t.Fatalf("%d leads (%v)", len(ids), err)
		}
		if _, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "x", Mobile: "13912345679", Industry: "internet", Company: "Acme"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateFitRule(ctx, FitRule{CorpID: "ww1", Name: "direct", Condition: `source == "direct"`, Points: 45}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateFitRule(ctx, FitRule{CorpID: "ww1", Name: "internet", Condition: `industry == "internet"`, Points: 65}); err != nil {
			t.Fatal(err)
		}
		run.Start(1)
		defer run.Stop(ctx)
		var job jobs.JobRow
		waitFor(t, "the rescore job", func() bool {
			list, err := run.List(ctx, "ww1", 0, 10)
			if err != nil || len(list) != 1 {
				return false
			}
			job = list[0]
			return job.Status == jobs.JobDone
		})
		var res RescoreResult
		if err := json.Unmarshal(job.Result, &res); err != nil || res.Leads != 1201 || job.ProgressTotal != 1201 || job.ProgressDone != 1201 {
			t.Fatalf("job %+v result %+v", job, res)
		}
		for _, id := range []int64{ids[0], ids[1199]} {
			if l, _ := s.read(ctx, "ww1", id); l.Grade != "B" || l.FitPoints != 45 {
				t.Fatalf("lead %d: %d %s", id, l.FitPoints, l.Grade)
			}
		}
		ls, _ := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all, After: ids[1199], Limit: 10})
		if len(ls) != 1 || ls[0].Grade != "A" {
			t.Fatalf("the upserted lead: %+v", ls)
		}
	})
}

// An MQL left alone cools at the computed moment: marked cooling (kept),
// or back to nurture when the corp says so; scoring again warms it up.
func TestCooling_AnMQLThatDecaysBelowTheThresholdIsMarkedNotSilentlyDemoted(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		var mu sync.Mutex
		now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(10, 50)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 100, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		ids := seed(t, s, 2)
		if _, err := s.Claim(ctx, "ww1", ids[1], 9); err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{"wm0", "wm1"} {
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: ext, Type: "demo", At: now}}); err != nil {
				t.Fatal(err)
			}
		}
		// 100 halves to 50 in one half-life (10 days): a minute before, nothing is due.
		advance(10*24*time.Hour - time.Minute)
		if n, err := s.Cool(ctx); err != nil || n != 0 {
			t.Fatalf("cooled %d early (%v)", n, err)
		}
		advance(2 * time.Minute)
		if n, err := s.Cool(ctx); err != nil || n != 2 {
			t.Fatalf("cooled %d, want 2 (%v)", n, err)
		}
		l, h, _ := s.Get(ctx, "ww1", ids[1], all)
		if !l.Cooling || l.Stage != StageMQL || l.OwnerUserID != 9 || h[len(h)-1].Kind != HistoryCooling {
			t.Fatalf("kept and marked: %+v, last history %+v", l, h[len(h)-1])
		}
		if n, _ := s.Cool(ctx); n != 0 {
			t.Fatal("cooled twice")
		}
		// Scoring again warms it; with "nurture", the next cooling returns it to the pool.
		set := settingsWith(10, 50)
		set.Cooling = CoolingNurture
		if _, err := s.SetScoringSettings(ctx, "ww1", set); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: "wm1", Type: "demo", At: now}}); err != nil {
			t.Fatal(err)
		}
		if l, _ := s.read(ctx, "ww1", ids[1]); l.Cooling {
			t.Fatal("still cooling after scoring again")
		}
		advance(30 * 24 * time.Hour)
		if n, err := s.Cool(ctx); err != nil || n != 1 {
			t.Fatalf("cooled %d (%v)", n, err)
		}
		if l, _ := s.read(ctx, "ww1", ids[1]); l.Stage != StageNurture || l.OwnerUserID != 0 || !l.Cooling {
			t.Fatalf("nurtured: %+v", l)
		}
		// The SDR's open count was given back.
		if _, err := s.Claim(ctx, "ww1", ids[0], 9); err != nil {
			t.Fatal(err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A rule made after the activities happened (or removed) rescores every
// lead from its stored activities: caps and once-only rules hold, each
// point decays from its activity's time, and a lead that now meets the bar
// becomes an MQL.
func TestRescore_NewEngagementRulesReplayStoredActivities(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, _, now := rescoring(t, db, 0)
		ctx := context.Background()
		ids := seed(t, s, 2)
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(10, 50)); err != nil {
			t.Fatal(err)
		}
		// Ten days ago (one half-life) three webinars; today an order.
		for i, a := range []ActivityIn{
			{ExternalUserID: "wm0", Type: "webinar", At: now.Add(-240 * time.Hour)},
			{ExternalUserID: "wm0", Type: "webinar", At: now.Add(-240 * time.Hour)},
			{ExternalUserID: "wm0", Type: "webinar", At: now.Add(-240 * time.Hour)},
			{ExternalUserID: "wm0", Type: "order", At: now},
		} {
			a.Key = fmt.Sprint("k", i)
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{a}); err != nil {
				t.Fatal(err)
			}
		}
		waitRescore := func(what string) { t.Helper(); waitJobs(t, db, JobRescore, what) }
		waitRescore("the first rescore")
		// Webinars: 20 each, capped at 50 (20 + 20 + 10), halved by ten days: 25; the order, once: 30 now.
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "webinar", ActivityType: "webinar", Points: 20, MaxPoints: 50, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		order, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "order", ActivityType: "order", Points: 30})
		if err != nil {
			t.Fatal(err)
		}
		waitRescore("the rescore after the new rules")
		l, h, _ := s.Get(ctx, "ww1", ids[0], all)
		if l.Engagement != 55 || l.Stage != StageMQL {
			t.Fatalf("after the replay: engagement %v, stage %s; want 55, mql", l.Engagement, l.Stage)
		}
		// One rescore, or two when the job ran between the two rules (0 →
		// 25 by the webinar rule, then 25 → 55): either way the history
		// ends at 55 with its reason.
		var rescored bool
		for _, e := range h {
			rescored = rescored || (e.Kind == HistoryScore && e.To == "55.0" && strings.HasPrefix(e.Reason, "rescored by the current rules: ") && strings.HasSuffix(e.Reason, "→ 55.0"))
		}
		if !rescored {
			t.Fatalf("history %+v", h)
		}
		if other, _ := s.read(ctx, "ww1", ids[1]); other.Engagement != 0 {
			t.Fatalf("a lead without activities scored %v", other.Engagement)
		}
		// The order rule goes: what it gave goes too.
		if err := s.DeleteRule(ctx, "ww1", order.ID); err != nil {
			t.Fatal(err)
		}
		waitRescore("the rescore after the deletion")
		if l, _ := s.read(ctx, "ww1", ids[0]); l.Engagement != 25 {
			t.Fatalf("after deleting the order rule: %v", l.Engagement)
		}
	})
}

// A rescore that changes a lead's fit and engagement explains both in one
// history entry; one that changes either says which.
func TestRescoreEntry_OneEntryPerLeadForFitAndEngagement(t *testing.T) {
	was, is := leadScore{FitPoints: 0, Grade: "D"}, leadScore{FitPoints: 55, Grade: "B"}
	both := rescoreEntry(was, is, true, true, 0, 62, []string{"+55 exec"}, 1)
	if both.Kind != HistoryScore || both.From != "0.0" || both.To != "62.0" ||
		both.Reason != "rescored by the current rules: fit 0 D → 55 B (+55 exec); engagement 0.0 → 62.0" {
		t.Fatalf("fit and engagement: %+v", both)
	}
	if fit := rescoreEntry(was, is, true, false, 3, 3, nil, 1); fit.Kind != HistoryFit || fit.From != "0 D" || fit.To != "55 B" || fit.Reason != "no fit rule holds" {
		t.Fatalf("fit only: %+v", fit)
	}
	if eng := rescoreEntry(was, was, false, true, 1, 2, nil, 1); eng.Kind != HistoryScore || eng.Reason != "rescored by the current rules: 1.0 → 2.0" {
		t.Fatalf("engagement only: %+v", eng)
	}
}

// rescoring is a lead pool with a fixed clock and a running job runner
// that rescores pages of page leads (0: as in production); the runner
// stops when the test ends.
func rescoring(t *testing.T, db *qsql.DB, page int) (*Service, *jobs.Runner, time.Time) {
	s := New(db, nil, nil, quiet)
	if page > 0 {
		s.rescorePage = page
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	run := jobs.NewRunner(db, "test", time.Minute, quiet)
	run.Register(JobRescore, s.RunRescore)
	s.SetJobs(run)
	run.Start(1)
	t.Cleanup(func() { run.Stop(context.Background()) })
	return s, run, now
}

// waitJobs waits until no job of a kind is queued or running.
func waitJobs(t *testing.T, db *qsql.DB, kind, what string) {
	t.Helper()
	waitFor(t, what, func() bool {
		var busy int
		db.Get(&busy, `SELECT COUNT(*) FROM jobs WHERE kind = ? AND status IN ('queued', 'running')`, kind)
		return busy == 0
	})
}

// A rescore that lifts leads over the MQL bar promotes them through the
// corp's assignment rules; a person merged into another scores for the
// survivor's lead; and a new threshold moves each lead's cooling moment.
func TestRescore_PromotesThroughAssignmentCountsMergedPeopleAndMovesCooling(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, _, now := rescoring(t, db, 0)
		ctx := context.Background()
		ids := seed(t, s, 3)
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(10, 50)); err != nil {
			t.Fatal(err)
		}
		for i, ext := range []string{"wm0", "wm2"} {
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: ext, Type: "demo", At: now, Key: fmt.Sprint("d", i)}}); err != nil {
				t.Fatal(err)
			}
		}
		survivor, _ := s.read(ctx, "ww1", ids[1])
		folded, _ := s.read(ctx, "ww1", ids[2])
		if _, err := s.Merge(ctx, "ww1", survivor.PersonID, folded.PersonID, 7, "same customer"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Name: "everyone", Users: []int64{11}}, isAnyUser); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the rescores before the rule")
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 60, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the rescore after the rule")
		for _, id := range []int64{ids[0], ids[1]} {
			l, _ := s.read(ctx, "ww1", id)
			if l.Engagement != 60 || l.Stage != StageMQL || l.OwnerUserID != 11 {
				t.Fatalf("lead %d after the rescore: engagement %v, stage %s, owner %d; want 60, mql, 11", id, l.Engagement, l.Stage, l.OwnerUserID)
			}
		}
		coolsAt := func(id int64) time.Duration {
			var at int64
			if err := db.Get(&at, `SELECT cools_at FROM leads WHERE id = ?`, id); err != nil {
				t.Fatal(err)
			}
			return qsql.FromMillis(at).Sub(now)
		}
		// 60 halves to 50 in 10·log2(1.2) days, to 40 in 10·log2(1.5).
		near := func(got time.Duration, days float64) bool {
			want := time.Duration(days * 24 * float64(time.Hour))
			return got > want-time.Second && got < want+2*time.Second
		}
		if got := coolsAt(ids[0]); !near(got, 10*math.Log2(1.2)) {
			t.Fatalf("cools in %v", got)
		}
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(10, 40)); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the rescore after the new threshold")
		if got := coolsAt(ids[0]); !near(got, 10*math.Log2(1.5)) {
			t.Fatalf("after the new threshold, cools in %v", got)
		}
	})
}

// A rescore of many pages (three at once on MySQL, writing side by side)
// while activities keep arriving loses none of them: afterwards every lead's engagement and
// rule points are those of all its activities.
func TestRescore_PagesAtOnceWhileActivitiesArriveLoseNothing(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, _, now := rescoring(t, db, 40)
		ctx := context.Background()
		const leads = 400
		evs := make([]livecode.ContactAdded, leads)
		for i := range evs {
			evs[i] = added(fmt.Sprint("wm", i), "zhangsan", int64(i+1))
		}
		if err := s.Intake(ctx, evs); err != nil {
			t.Fatal(err)
		}
		visit, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "visit", ActivityType: "visit", Points: 1, Repeatable: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range leads { // one visit each before the rescore
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: fmt.Sprint("wm", i), Type: "visit", At: now, Key: fmt.Sprint("before", i)}}); err != nil {
				t.Fatal(err)
			}
		}
		waitJobs(t, db, JobRescore, "the rescore after the rule")
		if _, err := s.CreateFitRule(ctx, FitRule{CorpID: "ww1", Name: "direct", Condition: `source == "direct"`, Points: 45}); err != nil {
			t.Fatal(err)
		}
		// Visits to every fifth lead while the rescore runs, and a little after.
		var recorded int
		for round := 0; ; round++ {
			for i := 0; i < leads; i += 5 {
				if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: fmt.Sprint("wm", i), Type: "visit", At: now, Key: fmt.Sprint("during", round, "-", i)}}); err != nil {
					t.Fatal(err)
				}
			}
			recorded++
			var busy int
			db.Get(&busy, `SELECT COUNT(*) FROM jobs WHERE kind = ? AND status IN ('queued', 'running')`, JobRescore)
			if busy == 0 {
				break
			}
		}
		var rows []struct {
			ID       int64  `db:"id"`
			External string `db:"value"`
		}
		if err := db.Select(&rows, `SELECT l.id, i.value FROM leads l JOIN person_identities i ON i.person_id = l.person_id AND i.kind = ?`, IdentityWeCom); err != nil || len(rows) != leads {
			t.Fatalf("%d leads (%v)", len(rows), err)
		}
		given := storedGiven(t, db)
		for _, r := range rows {
			var i int
			fmt.Sscanf(r.External, "wm%d", &i)
			want := 1.0
			if i%5 == 0 {
				want += float64(recorded)
			}
			l, err := s.read(ctx, "ww1", r.ID)
			if err != nil {
				t.Fatal(err)
			}
			times := given[[2]int64{l.ID, visit.ID}].Times
			if l.Engagement != want || times != int(want) || l.FitPoints != 45 {
				t.Fatalf("lead %d (%s): engagement %v, the visit rule counted %d times, fit %d; want %v, %v, 45", l.ID, r.External, l.Engagement, times, l.FitPoints, want, want)
			}
		}
	})
}

// A rescore of many pages that promotes every lead through a round-robin
// rule hands them to the SDRs in turn and fails no page. (Pages that assign
// take turns to write; the rotation's row lock would keep it even anyway,
// so this guards the outcome, not the turns.)
func TestRescore_ManyPagesAssignEveryPromotedLeadInTurn(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, _, now := rescoring(t, db, 8)
		ctx := context.Background()
		const leads = 80
		ids := seed(t, s, leads)
		for i := range leads { // before any rule gives points for them
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: fmt.Sprint("wm", i), Type: "demo", At: now, Key: fmt.Sprint("d", i)}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(10, 50)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Name: "in turn", Strategy: "round_robin", Users: []int64{11, 12}}, isAnyUser); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the rescores before the rule")
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 60}); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the replay that promotes every lead")
		var failed int
		db.Get(&failed, `SELECT COUNT(*) FROM jobs WHERE kind = ? AND status <> 'done'`, JobRescore)
		owners := map[int64]int{}
		for _, id := range ids {
			l, err := s.read(ctx, "ww1", id)
			if err != nil {
				t.Fatal(err)
			}
			if l.Stage != StageMQL {
				t.Fatalf("lead %d: stage %s after the replay, want mql", id, l.Stage)
			}
			owners[l.OwnerUserID]++
		}
		if failed != 0 || len(owners) != 2 || owners[11] != leads/2 || owners[12] != leads/2 {
			t.Fatalf("owners %v (%d rescores not done), want %d leads each to 11 and 12", owners, failed, leads/2)
		}
	})
}

// After a replay a lead's rule points are exactly what today's rules give
// it: the points of a rule that gives it nothing now, or of a rule that no
// longer exists, are gone (SQLite may hand a deleted rule's id to the next
// rule), and those it gives again are counted anew.
func TestRescore_ReplayLeavesOnlyTheRulePointsTodaysRulesGive(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, _, now := rescoring(t, db, 0)
		ctx := context.Background()
		ids := seed(t, s, 3)
		visit, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "visit", ActivityType: "visit", Points: 1, Repeatable: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range []int{2, 1, 0} {
			for k := range n {
				if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: fmt.Sprint("wm", i), Type: "visit", At: now, Key: fmt.Sprint(i, "-", k)}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitJobs(t, db, JobRescore, "the rescore after the visit rule")
		// What an earlier state left: points of the visit rule the third lead has no visit for, and of a rule since deleted.
		stale := storedGiven(t, db)
		stale[[2]int64{ids[2], visit.ID}] = given{7, 7}
		stale[[2]int64{ids[0], visit.ID + 1000}] = given{3, 1}
		for lead, rs := range givenByLead(stale) {
			if _, err := db.Exec(db.Rebind(`UPDATE leads SET rule_points = ? WHERE id = ?`), encodeGiven(rs), lead); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "call", ActivityType: "call", Points: 5}); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the replay after the call rule")
		got := storedGiven(t, db)
		want := map[[2]int64]given{{ids[0], visit.ID}: {2, 2}, {ids[1], visit.ID}: {1, 1}}
		if !maps.Equal(got, want) {
			t.Fatalf("rule points %v, want %v", got, want)
		}
	})
}

// A rescore after a change that cannot touch engagement (a fit rule, the
// MQL threshold) leaves engagement as it is and reads no activities; one
// after the engagement rules change replays them.
func TestRescore_ReplaysEngagementOnlyWhenItsRulesChanged(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, _, now := rescoring(t, db, 0)
		ctx := context.Background()
		id := seed(t, s, 1)[0]
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "visit", ActivityType: "visit", Points: 10, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: "wm0", Type: "visit", At: now, Key: "v1"}}); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the rescore after the rule")
		// A visit stored behind the lead pool's back: only a replay sees it.
		l, _ := s.read(ctx, "ww1", id)
		if _, err := db.Exec(`INSERT INTO activities (corp_id, person_id, type, at, properties, created_at) VALUES ('ww1', ?, 'visit', ?, '{}', 1)`,
			l.PersonID, qsql.Millis(now)); err != nil {
			t.Fatal(err)
		}
		engagement := func(what string, want float64) {
			t.Helper()
			waitJobs(t, db, JobRescore, what)
			if l, _ := s.read(ctx, "ww1", id); l.Engagement != want {
				t.Fatalf("after %s: engagement %v, want %v", what, l.Engagement, want)
			}
		}
		if _, err := s.CreateFitRule(ctx, FitRule{CorpID: "ww1", Name: "direct", Condition: `source == "direct"`, Points: 45}); err != nil {
			t.Fatal(err)
		}
		engagement("a new fit rule", 10)
		if l, _ := s.read(ctx, "ww1", id); l.FitPoints != 45 {
			t.Fatalf("fit %d after the fit rule's rescore", l.FitPoints)
		}
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(30, 40)); err != nil {
			t.Fatal(err)
		}
		engagement("a new MQL threshold", 10)
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 5}); err != nil {
			t.Fatal(err)
		}
		engagement("a new engagement rule", 20)
		if _, err := db.Exec(`INSERT INTO activities (corp_id, person_id, type, at, properties, created_at) VALUES ('ww1', ?, 'visit', ?, '{}', 1)`,
			l.PersonID, qsql.Millis(now)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(10, 40)); err != nil { // a new half-life replays too
			t.Fatal(err)
		}
		engagement("a new half-life", 30)
	})
}

// A rescore cancelled while two pages are under way stops: the page
// writing finishes or rolls back, the next one is abandoned, no page starts
// after, and the job ends cancelled.
func TestRescore_CancelledWhilePagesAreUnderWayStops(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		if db.SingleWriter() {
			t.Skip("SQLite rescores one page at a time: there is no page beside it to abandon")
		}
		s, run, now := rescoring(t, db, 10)
		ctx := context.Background()
		ids := seed(t, s, 200)
		// The second page's clock waits until the job is cancelled.
		gate := make(chan struct{})
		var calls atomic.Int32
		s.SetClock(func() time.Time {
			if calls.Add(1) == 3 { // 1: the rule's creation, 2: the first page, 3: the second
				<-gate
			}
			return now
		})
		if _, err := s.CreateFitRule(ctx, FitRule{CorpID: "ww1", Name: "direct", Condition: `source == "direct"`, Points: 45}); err != nil {
			t.Fatal(err)
		}
		var job jobs.JobRow
		waitFor(t, "the first page's checkpoint", func() bool {
			list, err := run.List(ctx, "ww1", 1<<62, 1)
			if err != nil || len(list) == 0 {
				return false
			}
			job = list[0]
			return job.Kind == JobRescore && job.ProgressDone >= 10
		})
		if _, err := run.Cancel(ctx, "ww1", job.ID); err != nil {
			t.Fatal(err)
		}
		close(gate)
		waitFor(t, "the job to end", func() bool {
			j, err := run.Get(ctx, "ww1", job.ID)
			job = j
			return err == nil && j.Status != jobs.JobRunning
		})
		first, _ := s.read(ctx, "ww1", ids[0])
		last, _ := s.read(ctx, "ww1", ids[len(ids)-1])
		if job.Status != jobs.JobCancelled || first.FitPoints != 45 || last.FitPoints != 0 {
			t.Fatalf("job %s after %d leads; the first lead's fit %d, the last's %d: want cancelled, 45, 0", job.Status, job.ProgressDone, first.FitPoints, last.FitPoints)
		}
	})
}

// A replay judges a rule's condition by each activity's own properties:
// the same properties are judged once, different ones each on their own.
func TestRescore_ReplayJudgesConditionsByEachActivitysProperties(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, _, now := rescoring(t, db, 0)
		ctx := context.Background()
		ids := seed(t, s, 3)
		slices.Sort(ids) // wm0, wm1, wm2: the intake stores them in order
		// wm0: 40 minutes, 10, 40 again; wm1: 10 minutes; wm2: 45 and no minutes at all.
		var acts []ActivityIn
		for i, a := range []struct {
			who     string
			minutes string
		}{{"wm0", `{"minutes": 40}`}, {"wm0", `{"minutes": 10}`}, {"wm0", `{"minutes": 40}`}, {"wm1", `{"minutes": 10}`}, {"wm2", `{"minutes": 45}`}, {"wm2", `{}`}} {
			acts = append(acts, ActivityIn{ExternalUserID: a.who, Type: "webinar", At: now, Key: fmt.Sprint("w", i), Properties: json.RawMessage(a.minutes)})
		}
		if _, err := s.RecordActivities(ctx, "ww1", acts); err != nil { // no rule yet: nothing scored
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "webinar", ActivityType: "webinar", Condition: "properties.minutes >= 30", Points: 10, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		waitJobs(t, db, JobRescore, "the rescore after the rule")
		for i, want := range []float64{20, 0, 10} {
			if l, _ := s.read(ctx, "ww1", ids[i]); l.Engagement != want {
				t.Errorf("wm%d: engagement %v, want %v", i, l.Engagement, want)
			}
		}
	})
}

// storedGiven reads what the rules have given every lead, as their rows
// keep it, by [lead, rule].
func storedGiven(t *testing.T, db *qsql.DB) map[[2]int64]given {
	t.Helper()
	var rows []struct {
		ID    int64   `db:"id"`
		Given *string `db:"rule_points"`
	}
	if err := db.Select(&rows, `SELECT id, rule_points FROM leads`); err != nil {
		t.Fatal(err)
	}
	out := map[[2]int64]given{}
	for _, r := range rows {
		if err := decodeGiven(r.ID, r.Given, out); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
