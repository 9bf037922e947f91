package leads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom/directory"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// all sees every lead, as a manager does.
var all = Viewer{All: true}

func added(ext, staff string, source int64) livecode.ContactAdded {
	return livecode.ContactAdded{CorpID: "ww1", ExternalUserID: ext, UserID: staff, Source: "direct", SourceID: source, AddedAt: 1}
}

// seed makes n leads in the default pool and returns their ids.
func seed(t *testing.T, s *Service, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	evs := make([]livecode.ContactAdded, n)
	for i := range evs {
		evs[i] = added(fmt.Sprint("wm", i), "zhangsan", int64(i+1))
	}
	if err := s.Intake(ctx, evs); err != nil {
		t.Fatal(err)
	}
	ls, err := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all, Owner: -1, Limit: 200})
	if err != nil || len(ls) != n {
		t.Fatalf("%d leads (%v), want %d", len(ls), err, n)
	}
	ids := make([]int64, n)
	for i, l := range ls {
		ids[i] = l.ID
	}
	return ids
}

func setCaps(t *testing.T, s *Service, p Pool) {
	t.Helper()
	pools, err := s.Pools(context.Background(), "ww1")
	if err != nil {
		t.Fatal(err)
	}
	p.ID, p.CorpID = pools[0].ID, "ww1"
	if _, err := s.UpdatePool(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func TestIntake_OnePersonAndLeadPerContactWithItsSource(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		viaCode := livecode.ContactAdded{CorpID: "ww1", ExternalUserID: "wm1", UserID: "zhangsan", Source: "code", CodeID: 7, Channel: "poster", SourceID: 11}
		if err := s.Intake(ctx, []livecode.ContactAdded{viaCode, added("wm2", "lisi", 12)}); err != nil {
			t.Fatal(err)
		}
		if err := s.intake(ctx, []any{directory.ContactSaved{CorpID: "ww1", ExternalUserID: "wm1", Name: "Li Lei", SavedAt: 1}}); err != nil {
			t.Fatal(err)
		}
		// The same customer adds a second staff member, and a delivery is retried.
		if err := s.Intake(ctx, []livecode.ContactAdded{added("wm1", "lisi", 13), viaCode}); err != nil {
			t.Fatal(err)
		}
		ls, err := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all})
		if err != nil || len(ls) != 2 {
			t.Fatalf("leads %+v %v", ls, err)
		}
		l := ls[0]
		if l.Name != "Li Lei" || l.Source != SourceCode || l.CodeID != 7 || l.Channel != "poster" || l.Stage != StageLead || l.OwnerUserID != 0 {
			t.Fatalf("lead from the code: %+v", l)
		}
		if ls[1].Source != SourceDirect {
			t.Fatalf("direct lead: %+v", ls[1])
		}
		_, h, err := s.Get(ctx, "ww1", l.ID, all)
		if err != nil || len(h) != 2 || h[0].Kind != HistoryCreated || h[1].Kind != HistoryAdded || h[1].To != "lisi" {
			t.Fatalf("history %+v %v", h, err)
		}
	})
}

// 50 SDRs on two instances claim from one pool at once: no lead is won
// twice, nobody holds more than the pool allows, and every refusal is
// already_claimed or claim_cap_reached.
func TestClaim_RacingSDRsOnTwoInstancesNeverShareALeadOrExceedACap(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		instances := []*Service{New(db, nil, nil, quiet), New(sqltest.Reopen(t, db), nil, nil, quiet)}
		ids := seed(t, instances[0], 40)
		setCaps(t, instances[0], Pool{MaxOpen: 2})
		ctx := context.Background()
		var mu sync.Mutex
		wins := map[int64][]int64{} // lead → winners
		held := map[int64]int{}     // SDR → leads won
		var wg sync.WaitGroup
		for sdr := int64(1); sdr <= 50; sdr++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := instances[sdr%2]
				for i := 0; i < 4; i++ {
					lead := ids[(int(sdr)*7+i*3)%len(ids)]
					_, err := s.Claim(ctx, "ww1", lead, sdr)
					switch {
					case err == nil:
						mu.Lock()
						wins[lead] = append(wins[lead], sdr)
						held[sdr]++
						mu.Unlock()
					case errors.Is(err, ErrAlreadyClaimed), errors.Is(err, ErrCapReached):
					default:
						t.Errorf("sdr %d claiming %d: %v", sdr, lead, err)
					}
				}
			}()
		}
		wg.Wait()
		for lead, w := range wins {
			if len(w) != 1 {
				t.Errorf("lead %d won by %v", lead, w)
			}
			l, _, err := instances[0].Get(ctx, "ww1", lead, all)
			if err != nil || l.OwnerUserID != w[0] {
				t.Errorf("lead %d owned by %d, won by %v (%v)", lead, l.OwnerUserID, w, err)
			}
		}
		for sdr, n := range held {
			if n > 2 {
				t.Errorf("sdr %d holds %d leads, cap 2", sdr, n)
			}
		}
		if len(wins) == 0 {
			t.Fatal("nobody won anything")
		}
	})
}

func TestClaim_ReleaseCooldownAndDailyCap(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		var mu sync.Mutex
		now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		ids := seed(t, s, 4)
		setCaps(t, s, Pool{MaxClaimsDay: 2, CooldownHours: 24})
		ctx := context.Background()
		if _, err := s.Claim(ctx, "ww1", ids[0], 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "ww1", ids[0], 2); !errors.Is(err, ErrAlreadyClaimed) {
			t.Fatalf("second claim: %v", err)
		}
		if _, err := s.Release(ctx, "ww1", ids[0], 2, "not mine"); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("release by another: %v", err)
		}
		if _, err := s.Release(ctx, "ww1", ids[0], 1, ""); err == nil {
			t.Fatal("release without a reason")
		}
		l, err := s.Release(ctx, "ww1", ids[0], 1, "wrong number")
		if err != nil || l.OwnerUserID != 0 {
			t.Fatalf("release: %+v %v", l, err)
		}
		// The releaser waits out the cool-down; a colleague need not.
		if _, err := s.Claim(ctx, "ww1", ids[0], 1); !errors.Is(err, ErrCooldown) {
			t.Fatalf("re-claim in the cool-down: %v", err)
		}
		if _, err := s.Claim(ctx, "ww1", ids[1], 1); err != nil {
			t.Fatal(err)
		}
		// Two claims today: the third is refused, and nothing changed.
		if _, err := s.Claim(ctx, "ww1", ids[2], 1); !errors.Is(err, ErrCapReached) {
			t.Fatalf("third claim of the day: %v", err)
		}
		if l, _, _ := s.Get(ctx, "ww1", ids[2], all); l.OwnerUserID != 0 {
			t.Fatalf("a refused claim left an owner: %+v", l)
		}
		mu.Lock()
		now = now.Add(25 * time.Hour)
		mu.Unlock()
		for _, id := range []int64{ids[0], ids[2]} {
			if _, err := s.Claim(ctx, "ww1", id, 1); err != nil {
				t.Fatalf("next day, claim %d: %v", id, err)
			}
		}
		_, h, _ := s.Get(ctx, "ww1", ids[0], all)
		kinds := ""
		for _, e := range h {
			kinds += e.Kind + " "
		}
		if kinds != "created claimed released claimed " || h[2].Reason != "wrong number" || h[2].ActorUserID != 1 {
			t.Fatalf("history: %s %+v", kinds, h)
		}
	})
}

func TestStage_MovesFollowTheFunnelWithReasonsAndNurtureReturnsToThePool(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ids := seed(t, s, 1)
		setCaps(t, s, Pool{MaxOpen: 1})
		ctx := context.Background()
		id := ids[0]
		if _, err := s.ChangeStage(ctx, "ww1", id, 1, false, StageMQL, ""); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("move by a non-owner: %v", err)
		}
		if _, err := s.Claim(ctx, "ww1", id, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ChangeStage(ctx, "ww1", id, 1, false, StageCustomer, ""); err == nil {
			t.Fatal("lead → customer accepted")
		}
		for _, to := range []string{StageMQL, StageSAL} {
			if l, err := s.ChangeStage(ctx, "ww1", id, 1, false, to, ""); err != nil || l.Stage != to {
				t.Fatalf("to %s: %+v %v", to, l, err)
			}
		}
		if _, err := s.ChangeStage(ctx, "ww1", id, 1, false, StageSQL, ""); err == nil {
			t.Fatal("an SQL without qualifying (BANT, handoff)")
		}
		if _, err := s.ChangeStage(ctx, "ww1", id, 1, false, StageNurture, " "); err == nil {
			t.Fatal("nurture without a reason")
		}
		l, err := s.ChangeStage(ctx, "ww1", id, 1, false, StageNurture, "budget next year")
		if err != nil || l.Stage != StageNurture || l.OwnerUserID != 0 {
			t.Fatalf("nurture: %+v %v", l, err)
		}
		// Back in the pool, the open-lead count is free again: another claim fits the cap of one.
		ids2 := seed(t, s, 2)
		if _, err := s.Claim(ctx, "ww1", ids2[1], 1); err != nil {
			t.Fatalf("claim after nurture freed the slot: %v", err)
		}
		// A disqualified lead is not claimed until a manager reopens it.
		if _, err := s.ChangeStage(ctx, "ww1", id, 9, true, StageDisqualified, "duplicate of another lead"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "ww1", id, 2); !errors.Is(err, ErrDisqualified) {
			t.Fatalf("claim of a disqualified lead: %v", err)
		}
		if _, err := s.ChangeStage(ctx, "ww1", id, 9, true, StageNurture, "reopened"); err != nil {
			t.Fatal(err)
		}
		// A manager moves a lead they do not own.
		if l, err := s.ChangeStage(ctx, "ww1", id, 9, true, StageMQL, ""); err != nil || l.Stage != StageMQL {
			t.Fatalf("manager move: %+v %v", l, err)
		}
		_, h, _ := s.Get(ctx, "ww1", id, all)
		if last := h[len(h)-1]; last.Kind != HistoryStage || last.From != StageNurture || last.To != StageMQL || last.ActorUserID != 9 {
			t.Fatalf("history: %+v", h)
		}
	})
}

// The mirror's save of a contact names its person, whether it comes before
// the add (the person is made then, and the add finds them) or after.
func TestIntake_SavedContactNamesThePersonInEitherOrder(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		saved := func(ext, name string) directory.ContactSaved {
			return directory.ContactSaved{CorpID: "ww1", ExternalUserID: ext, Name: name, SavedAt: 5}
		}
		if err := s.intake(ctx, []any{saved("wm1", "First Saved"), added("wm2", "lisi", 2)}); err != nil {
			t.Fatal(err)
		}
		if err := s.intake(ctx, []any{added("wm1", "lisi", 1), saved("wm2", "Added First")}); err != nil {
			t.Fatal(err)
		}
		ls, err := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all})
		if err != nil || len(ls) != 2 {
			t.Fatalf("%+v %v", ls, err)
		}
		got := map[string]bool{}
		for _, l := range ls {
			got[l.Name] = true
		}
		if !got["First Saved"] || !got["Added First"] {
			t.Fatalf("names %v", got)
		}
		var people int
		db.Get(&people, "SELECT COUNT(*) FROM people")
		if people != 2 {
			t.Fatalf("%d people for two contacts", people)
		}
	})
}

// The backfill makes a lead for every contact without one, keeps those
// intake made, and changes nothing when run again.
func TestBackfill_ExistingContactsBecomeLeadsOnce(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		if err := s.Intake(ctx, []livecode.ContactAdded{added("wm1", "lisi", 1)}); err != nil {
			t.Fatal(err)
		}
		page := []directory.Contact{{ExternalUserID: "wm1", Name: "One"}, {ExternalUserID: "wm2", Name: "Two"}, {ExternalUserID: "wm3", Name: "Three"}}
		for run, want := range []int{2, 0} {
			n, err := s.backfill(ctx, "ww1", page)
			if err != nil || n != want {
				t.Fatalf("run %d created %d (%v), want %d", run, n, err, want)
			}
		}
		ls, _ := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all})
		sources := map[string]string{}
		for _, l := range ls {
			sources[l.Name] = l.Source
		}
		if len(ls) != 3 || sources["Two"] != SourceExisting || sources["Three"] != SourceExisting || sources[""] != SourceDirect {
			t.Fatalf("leads %v", sources)
		}
	})
}

// An SDR sees and claims the leads of open pools and of pools they are a
// member of, and keeps seeing the leads they own; others' members-only
// pools are not found for them.
func TestScope_SDRsWorkTheirPools(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		ids := seed(t, s, 3)
		north, err := s.CreatePool(ctx, Pool{CorpID: "ww1", Name: "north"})
		if err != nil {
			t.Fatal(err)
		}
		// SDR 2 claims ids[2] while it is still in the open default pool.
		if _, err := s.Claim(ctx, "ww1", ids[2], 2); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{ids[1], ids[2]} {
			if _, err := s.MoveToPool(ctx, "ww1", id, north.ID, 9, "northern region"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddMember(ctx, "ww1", north.ID, 1); err != nil {
			t.Fatal(err)
		}
		sees := func(user int64) map[int64]bool {
			ls, err := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: Viewer{UserID: user}})
			if err != nil {
				t.Fatal(err)
			}
			out := map[int64]bool{}
			for _, l := range ls {
				out[l.ID] = true
			}
			return out
		}
		if v := sees(1); len(v) != 3 {
			t.Fatalf("member of north sees %v, want all three", v)
		}
		if v := sees(2); len(v) != 2 || !v[ids[0]] || !v[ids[2]] || v[ids[1]] {
			t.Fatalf("sdr 2 sees %v: want the open pool's lead and the one they own", v)
		}
		if _, _, err := s.Get(ctx, "ww1", ids[1], Viewer{UserID: 2}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get outside one's pools: %v", err)
		}
		if _, err := s.Claim(ctx, "ww1", ids[1], 2); !errors.Is(err, ErrNotFound) {
			t.Fatalf("claim outside one's pools: %v", err)
		}
		if _, err := s.Claim(ctx, "ww1", ids[1], 1); err != nil {
			t.Fatalf("member's claim: %v", err)
		}
		if v := sees(0); len(v) != 0 {
			t.Fatalf("a viewer without a user sees %v", v)
		}
		// SDR 3 manages a team with member 1: they see 1's lead in north, not north's others.
		ls, err := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: Viewer{UserID: 3, Team: []int64{1}}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]bool{}
		for _, l := range ls {
			got[l.ID] = true
		}
		if len(got) != 2 || !got[ids[0]] || !got[ids[1]] {
			t.Fatalf("team manager sees %v: want the open pool's lead and the member's", got)
		}
	})
}

// A claimed lead without a follow-up for the pool's working days returns to
// the pool; a follow-up resets the clock; holidays don't count.
func TestRecycle_AfterWorkingDaysWithoutFollowUp(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		cal, err := configs.CalendarConfig{Holidays: []string{"2026-11-30"}}.Compile("Asia/Shanghai")
		if err != nil {
			t.Fatal(err)
		}
		s := New(db, nil, configs.Calendars{"ww1": cal}, quiet)
		sh, _ := time.LoadLocation("Asia/Shanghai")
		var mu sync.Mutex
		now := time.Date(2026, 11, 27, 10, 0, 0, 0, sh) // a Friday
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
		ids := seed(t, s, 1)
		setCaps(t, s, Pool{RecycleDays: 2, MaxOpen: 1})
		ctx := context.Background()
		if _, err := s.Claim(ctx, "ww1", ids[0], 1); err != nil {
			t.Fatal(err)
		}
		recycle := func(want int) {
			t.Helper()
			if n, err := s.Recycle(ctx); err != nil || n != want {
				t.Fatalf("at %s recycled %d (%v), want %d", now.Format(time.DateTime), n, err, want)
			}
		}
		// Monday is a holiday: two working days after Friday end on Wednesday night.
		set(time.Date(2026, 12, 2, 12, 0, 0, 0, sh))
		recycle(0)
		if _, err := s.Touch(ctx, "ww1", ids[0], 2, "call", ""); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("touch by another: %v", err)
		}
		if _, err := s.Touch(ctx, "ww1", ids[0], 1, "call", "left a voicemail"); err != nil {
			t.Fatal(err)
		}
		set(time.Date(2026, 12, 4, 23, 0, 0, 0, sh)) // Friday night: two days after Wednesday's call not yet over
		recycle(0)
		set(time.Date(2026, 12, 5, 0, 30, 0, 0, sh))
		recycle(1)
		l, h, _ := s.Get(ctx, "ww1", ids[0], all)
		if l.OwnerUserID != 0 || h[len(h)-1].Kind != HistoryRecycled || h[len(h)-2].Kind != HistoryTouch || h[len(h)-2].Reason != "left a voicemail" {
			t.Fatalf("after recycling: %+v %+v", l, h)
		}
		// The open-lead slot came back: the SDR may claim again.
		if _, err := s.Claim(ctx, "ww1", ids[0], 1); err != nil {
			t.Fatalf("claim after recycling: %v", err)
		}
		recycle(0)
	})
}

// Activities are recorded per item: bad ones are listed with their field,
// good ones kept, a resent key is a duplicate; the timeline merges them with
// the lead's history, newest first.
func TestActivities_BatchPerItemAndTimeline(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		ids := seed(t, s, 1)
		ctx := context.Background()
		l, _, _ := s.Get(ctx, "ww1", ids[0], all)
		batch := []ActivityIn{
			{ExternalUserID: "wm0", Type: "webinar.attended", At: now.Add(-2 * time.Hour), Properties: json.RawMessage(`{"title":"Spring launch"}`), Key: "w-1"},
			{PersonID: l.PersonID, Type: "order", At: now.Add(-time.Hour), Key: "o-1"},
			{ExternalUserID: "wm0", Type: "Bad Type", At: now},
			{ExternalUserID: "wm-nobody", Type: "order", At: now},
			{PersonID: l.PersonID, Type: "order", At: now.Add(48 * time.Hour)},
			{PersonID: 999999, Type: "order", At: now},
		}
		res, err := s.RecordActivities(ctx, "ww1", batch)
		if err != nil {
			t.Fatal(err)
		}
		fields := map[int]string{}
		for _, r := range res.Rejected {
			fields[r.Index] = r.Field
		}
		if res.Recorded != 2 || res.Duplicates != 0 || fields[2] != "type" || fields[3] != "external_userid" || fields[4] != "at" || fields[5] != "external_userid" {
			t.Fatalf("result %+v", res)
		}
		if res, err = s.RecordActivities(ctx, "ww1", batch[:2]); err != nil || res.Recorded != 0 || res.Duplicates != 2 {
			t.Fatalf("resent: %+v %v", res, err)
		}
		if _, err := s.RecordActivities(ctx, "ww1", nil); err == nil {
			t.Fatal("an empty call was accepted")
		}
		// The add itself is an activity too (at the add's time, the oldest here).
		tl, err := s.Timeline(ctx, "ww1", ids[0], all, 50)
		if err != nil || len(tl) != 4 {
			t.Fatalf("timeline %+v %v", tl, err)
		}
		if tl[0].Type != HistoryCreated || tl[1].Type != "order" || tl[2].Type != "webinar.attended" || !strings.Contains(string(tl[2].Properties), "Spring launch") || tl[3].Type != "wecom.added" {
			t.Fatalf("timeline order %+v", tl)
		}
	})
}

// Rules give points for activities when their condition holds, within their
// caps, once or repeatedly; engagement decays with the half-life; reaching
// the threshold makes the lead an MQL; every point is in the history.
func TestScoring_RulesCapsDecayAndMQL(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		var mu sync.Mutex
		now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		ctx := context.Background()
		ids := seed(t, s, 1)
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "typo", ActivityType: "webinar", Condition: "propertys.minutes > 1", Points: 5}); err == nil {
			t.Fatal("a condition over an unknown name was saved")
		} else if ae, ok := apperr.As(err); !ok || ae.Fields["condition"] == "" {
			t.Fatalf("error %v does not name the condition", err)
		}
		for _, r := range []Rule{
			{CorpID: "ww1", Name: "long webinar", ActivityType: "webinar", Condition: "properties.minutes >= 30", Points: 20, MaxPoints: 30, Repeatable: true},
			{CorpID: "ww1", Name: "first order", ActivityType: "order", Points: 25},
		} {
			if _, err := s.CreateRule(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(10, 60)); err != nil {
			t.Fatal(err)
		}
		act := func(typ, props string) ActivityIn {
			return ActivityIn{ExternalUserID: "wm0", Type: typ, At: now, Properties: json.RawMessage(props)}
		}
		engagement := func() (float64, string) {
			l, _, err := s.Get(ctx, "ww1", ids[0], all)
			if err != nil {
				t.Fatal(err)
			}
			return l.Engagement, l.Stage
		}
		// 20 + 10 (capped at 30) + 0 (short) + 25 (order) + 0 (second order: once only) = 55.
		if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{act("webinar", `{"minutes":45}`), act("webinar", `{"minutes":60}`),
			act("webinar", `{"minutes":5}`), act("order", `{}`), act("order", `{}`)}); err != nil {
			t.Fatal(err)
		}
		if e, stage := engagement(); e != 55 || stage != StageLead {
			t.Fatalf("engagement %v, stage %s; want 55, lead", e, stage)
		}
		// Ten days later (one half-life) it reads 27.5; nothing was rewritten.
		mu.Lock()
		now = now.Add(10 * 24 * time.Hour)
		mu.Unlock()
		if e, _ := engagement(); e != 27.5 {
			t.Fatalf("after a half-life: %v", e)
		}
		// A new rule's points on top cross the threshold: the lead becomes an MQL.
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo.requested", Points: 40}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{act("demo.requested", `{}`)}); err != nil {
			t.Fatal(err)
		}
		if e, stage := engagement(); e != 67.5 || stage != StageMQL {
			t.Fatalf("engagement %v, stage %s; want 67.5, mql", e, stage)
		}
		_, h, _ := s.Get(ctx, "ww1", ids[0], all)
		// Each award says the engagement before and after, and its points.
		var scores, reasons []string
		for _, e := range h {
			if e.Kind == HistoryScore {
				scores = append(scores, e.From+"→"+e.To)
				reasons = append(reasons, e.Reason)
			}
		}
		if strings.Join(scores, " ") != "0.0→20.0 20.0→30.0 30.0→55.0 27.5→67.5" || reasons[0] != "+20 webinar (rule long webinar)" ||
			h[len(h)-1].Kind != HistoryStage || h[len(h)-1].To != StageMQL {
			t.Fatalf("history: %v %v %+v", scores, reasons, h[len(h)-1])
		}
	})
}

// New MQLs are given to SDRs by the first matching rule, in turn, passing
// over those at the pool's cap; with no match the lead stays in the pool.
func TestAssignment_MQLsRotateThroughTheMatchingRulesUsers(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		now := time.Now()
		s.SetClock(func() time.Time { return now })
		evs := []livecode.ContactAdded{
			{CorpID: "ww1", ExternalUserID: "wm1", UserID: "z", Source: "code", CodeID: 7, Channel: "expo", SourceID: 1},
			{CorpID: "ww1", ExternalUserID: "wm2", UserID: "z", Source: "code", CodeID: 7, Channel: "expo", SourceID: 2},
			{CorpID: "ww1", ExternalUserID: "wm3", UserID: "z", Source: "code", CodeID: 7, Channel: "expo", SourceID: 3},
			{CorpID: "ww1", ExternalUserID: "wm4", UserID: "z", Source: "direct", SourceID: 4},
		}
		if err := s.Intake(ctx, evs); err != nil {
			t.Fatal(err)
		}
		setCaps(t, s, Pool{MaxOpen: 1})
		yes := func(int64) (bool, error) { return true, nil }
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Name: "typo", Condition: "chanel == 'expo'", Users: []int64{1}}, yes); err == nil {
			t.Fatal("a condition over an unknown name was saved")
		}
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Position: 1, Name: "expo", Condition: "channel == 'expo'", Users: []int64{11, 12}}, yes); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 60}); err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{"wm1", "wm2", "wm3", "wm4"} {
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: ext, Type: "demo", At: now}}); err != nil {
				t.Fatal(err)
			}
		}
		ls, _ := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all})
		owners := map[int64]int{}
		unowned := 0
		for _, l := range ls {
			if l.Stage != StageMQL {
				t.Fatalf("lead %d is %s, want mql", l.ID, l.Stage)
			}
			if l.OwnerUserID == 0 {
				unowned++
			}
			owners[l.OwnerUserID]++
		}
		// wm1 → 11, wm2 → 12, wm3: both at their cap of one; wm4: no rule matches.
		if owners[11] != 1 || owners[12] != 1 || unowned != 2 {
			t.Fatalf("owners %v", owners)
		}
		_, h, _ := s.Get(ctx, "ww1", ls[0].ID, all)
		if last := h[len(h)-1]; last.Kind != HistoryAssigned || last.Reason != "rule expo (round_robin)" {
			t.Fatalf("history %+v", h)
		}
	})
}

// WeCom adds and losses are activities of their people: on the timeline,
// and scored like any other (a loss can cost points).
func TestIntake_AddsAndLossesAreScoredActivities(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		ctx := context.Background()
		for _, r := range []Rule{
			{CorpID: "ww1", Name: "expo add", ActivityType: "wecom.added", Condition: "properties.channel == 'expo'", Points: 10},
			{CorpID: "ww1", Name: "lost", ActivityType: "wecom.lost", Condition: "properties.by == 'customer'", Points: -8, Repeatable: true},
		} {
			if _, err := s.CreateRule(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		add := livecode.ContactAdded{CorpID: "ww1", ExternalUserID: "wm1", UserID: "z", Source: "code", CodeID: 7, Channel: "expo", SourceID: 1, AddedAt: now.UnixMilli()}
		lost := livecode.ContactLost{CorpID: "ww1", ExternalUserID: "wm1", UserID: "z", By: "customer", Channel: "expo", CodeID: 7, SourceID: 1, LostAt: now.UnixMilli()}
		for i := 0; i < 2; i++ { // a retried delivery scores nothing twice
			if err := s.intake(ctx, []any{add}); err != nil {
				t.Fatal(err)
			}
			if err := s.intake(ctx, []any{lost}); err != nil {
				t.Fatal(err)
			}
		}
		ls, _ := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all})
		if len(ls) != 1 || ls[0].Engagement != 2 {
			t.Fatalf("leads %+v: want engagement 10 - 8 = 2", ls)
		}
		tl, err := s.Timeline(ctx, "ww1", ls[0].ID, all, 50)
		if err != nil {
			t.Fatal(err)
		}
		var acts []string
		for _, e := range tl {
			if e.Kind == "activity" {
				acts = append(acts, e.Type)
			}
		}
		if len(acts) != 2 || !strings.Contains(strings.Join(acts, " "), "wecom.lost") || !strings.Contains(strings.Join(acts, " "), "wecom.added") {
			t.Fatalf("activities %v", acts)
		}
	})
}

// settingsWith is the default settings with a half-life and a threshold.
func settingsWith(halfLife, threshold int) Settings {
	s := defaultSettings
	s.HalfLifeDays, s.MQLThreshold = halfLife, threshold
	return s
}

func TestStatus_WithinAStageWithAReasonForUnqualifiedAndNewAgainOnAStageChange(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		id := seed(t, s, 1)[0]
		if _, err := s.SetStatus(ctx, "ww1", id, 7, false, StatusAttempting, ""); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("status of a lead not one's own: %v", err)
		}
		if _, err := s.Claim(ctx, "ww1", id, 7); err != nil {
			t.Fatal(err)
		}
		if l, err := s.SetStatus(ctx, "ww1", id, 7, false, StatusConnected, ""); err != nil || l.Status != StatusConnected {
			t.Fatalf("connected: %+v %v", l, err)
		}
		if _, err := s.SetStatus(ctx, "ww1", id, 7, false, StatusUnqualified, " "); err == nil {
			t.Fatal("unqualified without a reason")
		}
		if _, err := s.SetStatus(ctx, "ww1", id, 7, false, "sleeping", ""); err == nil {
			t.Fatal("an unknown status")
		}
		if l, err := s.SetStatus(ctx, "ww1", id, 7, false, StatusUnqualified, "no budget"); err != nil || l.StatusReason != "no budget" {
			t.Fatalf("unqualified: %+v %v", l, err)
		}
		l, err := s.ChangeStage(ctx, "ww1", id, 7, false, StageMQL, "")
		if err != nil || l.Status != StatusNew || l.StatusReason != "" {
			t.Fatalf("after a stage change: %+v %v", l, err)
		}
	})
}

func TestList_FiltersByGradeSourceChannelAndCode(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		if err := s.Intake(ctx, []livecode.ContactAdded{
			{CorpID: "ww1", ExternalUserID: "wm1", UserID: "z", Source: "code", CodeID: 7, Channel: "expo", SourceID: 1},
			{CorpID: "ww1", ExternalUserID: "wm2", UserID: "z", Source: "direct", SourceID: 2},
		}); err != nil {
			t.Fatal(err)
		}
		count := func(f ListFilter) int {
			f.CorpID, f.Viewer = "ww1", all
			ls, err := s.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return len(ls)
		}
		if count(ListFilter{Source: SourceCode}) != 1 || count(ListFilter{Channel: "expo", CodeID: 7}) != 1 || count(ListFilter{CodeID: 8}) != 0 ||
			count(ListFilter{Grade: "D", Status: StatusNew}) != 2 || count(ListFilter{Grade: "A"}) != 0 {
			t.Fatal("filters narrow wrongly")
		}
	})
}

// A pool's days by grade: a D lead returns sooner than the pool's days, an
// A lead is kept longer.
func TestRecycle_DaysByGrade(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		cal, err := configs.CalendarConfig{}.Compile("Asia/Shanghai")
		if err != nil {
			t.Fatal(err)
		}
		s := New(db, nil, configs.Calendars{"ww1": cal}, quiet)
		sh, _ := time.LoadLocation("Asia/Shanghai")
		var mu sync.Mutex
		now := time.Date(2026, 11, 23, 10, 0, 0, 0, sh) // a Monday
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		ctx := context.Background()
		ids := seed(t, s, 2)
		if _, err := db.Exec(`UPDATE leads SET grade = 'A' WHERE id = ?`, ids[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdatePool(ctx, Pool{CorpID: "ww1", ID: mustDefaultPool(t, s), RecycleByGrade: map[string]int{"Z": 1}}); err == nil {
			t.Fatal("an unknown grade was saved")
		}
		setCaps(t, s, Pool{RecycleDays: 3, RecycleByGrade: map[string]int{"D": 1, "A": 5}})
		for _, id := range ids {
			if _, err := s.Claim(ctx, "ww1", id, 1); err != nil {
				t.Fatal(err)
			}
		}
		at := func(day int) {
			mu.Lock()
			now = time.Date(2026, 11, 23+day, 0, 30, 0, 0, sh)
			mu.Unlock()
		}
		at(2) // Wednesday 00:30: Tuesday, one working day, is over
		if n, err := s.Recycle(ctx); err != nil || n != 1 {
			t.Fatalf("recycled %d (%v), want the D lead", n, err)
		}
		at(7) // next Monday: four working days
		if n, _ := s.Recycle(ctx); n != 0 {
			t.Fatal("the A lead returned before its five days")
		}
		at(8) // Tuesday 00:30: Monday made five
		if n, _ := s.Recycle(ctx); n != 1 {
			t.Fatal("the A lead did not return after five working days")
		}
	})
}

// A pool is renamed by an update that names it (an empty name keeps it);
// another pool's name is refused on the name, and the caps still change.
func TestPools_UpdateRenamesAndRefusesATakenName(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		north, err := s.CreatePool(ctx, Pool{CorpID: "ww1", Name: "north"})
		if err != nil {
			t.Fatal(err)
		}
		south, err := s.CreatePool(ctx, Pool{CorpID: "ww1", Name: "south"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdatePool(ctx, Pool{CorpID: "ww1", ID: south.ID, Name: "north"}); err == nil {
			t.Fatal("a second pool named north")
		} else if ae, ok := apperr.As(err); !ok || ae.Fields["name"] == "" {
			t.Fatalf("error %v does not name the name", err)
		}
		got, err := s.UpdatePool(ctx, Pool{CorpID: "ww1", ID: south.ID, Name: " 华南 ", MaxOpen: 20})
		if err != nil || got.Name != "华南" || got.MaxOpen != 20 {
			t.Fatalf("renamed pool %+v (%v)", got, err)
		}
		got, err = s.UpdatePool(ctx, Pool{CorpID: "ww1", ID: north.ID, MaxOpen: 5})
		if err != nil || got.Name != "north" || got.MaxOpen != 5 {
			t.Fatalf("pool without a name in the update %+v (%v)", got, err)
		}
	})
}

// A lead moved to another pool takes its owner's count along: the owner
// is at the new pool's cap, and below the old one's again.
func TestMoveToPool_TheOwnersCountMovesWithTheLead(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		ids := seed(t, s, 4)
		setCaps(t, s, Pool{MaxOpen: 1})
		north, err := s.CreatePool(ctx, Pool{CorpID: "ww1", Name: "north", MaxOpen: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.MoveToPool(ctx, "ww1", ids[3], north.ID, 9, "northern region"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "ww1", ids[0], 21); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MoveToPool(ctx, "ww1", ids[0], north.ID, 9, "northern region"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "ww1", ids[3], 21); !errors.Is(err, ErrCapReached) {
			t.Fatalf("a claim in the pool the held lead moved to: %v, want %v", err, ErrCapReached)
		}
		if _, err := s.Claim(ctx, "ww1", ids[1], 21); err != nil {
			t.Fatalf("a claim in the pool the held lead left: %v", err)
		}
	})
}
