package leads

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/configs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// holidayCalendar is Monday to Friday, 09:00-18:00 in Shanghai, with
// Tuesday 2026-03-03 a holiday.
func holidayCalendar(t *testing.T) (configs.Calendars, func(string) time.Time) {
	t.Helper()
	cal, err := configs.CalendarConfig{Holidays: []string{"2026-03-03"}}.Compile("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, cal.Location())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return configs.Calendars{"ww1": cal}, at
}

func TestSLA_FirstTouchInWorkingHoursHalfTimeNoticeAndBreachToTheManager(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		cals, at := holidayCalendar(t)
		s := New(db, nil, cals, quiet)
		var mu sync.Mutex
		now := at("2026-03-02 14:00") // a Monday
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		set := func(v string) { mu.Lock(); now = at(v); mu.Unlock() }
		sent := &sentMessages{}
		s.SetNotifier(sent, staffOfUser)
		s.SetManagers(func(_ context.Context, _ string, user int64) (int64, error) { return 99, nil })
		ctx := context.Background()
		if _, err := s.CreateSLARule(ctx, SLARule{CorpID: "ww1", Name: "first touch", Hours: 8}); err != nil {
			t.Fatal(err)
		}
		ids := seed(t, s, 2)
		for _, id := range ids {
			if _, err := s.Claim(ctx, "ww1", id, 7); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ChangeStage(ctx, "ww1", id, 7, false, StageMQL, ""); err != nil {
				t.Fatal(err)
			}
		}
		check := func(when string, want int) {
			t.Helper()
			set(when)
			if n, err := s.CheckSLAs(ctx); err != nil || n != want {
				t.Fatalf("at %s: %d SLAs acted on (%v), want %d", when, n, err, want)
			}
		}
		// 8 working hours from Monday 14:00: 4 on Monday, none on the holiday, 4 on Wednesday.
		check("2026-03-02 17:59", 0)
		check("2026-03-02 18:00", 2) // half time, both leads
		if _, err := s.SendNotices(ctx); err != nil {
			t.Fatal(err)
		}
		if msgs := sent.take(); len(msgs) != 1 || !strings.Contains(msgs[0], "2 new notices") || !strings.Contains(msgs[0], "03-04 13:00") {
			t.Fatalf("half-time notices %q", msgs)
		}
		// The first lead gets its first touch in time; the second does not.
		set("2026-03-04 10:00")
		if _, err := s.Touch(ctx, "ww1", ids[0], 7, "call", "intro call"); err != nil {
			t.Fatal(err)
		}
		check("2026-03-04 12:59", 0)
		check("2026-03-04 13:00", 1)
		if _, err := s.SendNotices(ctx); err != nil {
			t.Fatal(err)
		}
		msgs := sent.take()
		if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "u7: SLA 已超时") || !strings.HasPrefix(msgs[1], "u99: SLA 已超时") {
			t.Fatalf("breach notices %q", msgs)
		}
		rows, err := s.SLAReport(ctx, "ww1", "2026-03-01", "2026-03-04")
		if err != nil || len(rows) != 1 || rows[0].UserID != 7 || rows[0].Met != 1 || rows[0].Breached != 1 {
			t.Fatalf("report %+v %v", rows, err)
		}
		if _, err := s.SLAReport(ctx, "ww1", "2026-03-04", "2026-03-01"); err == nil {
			t.Fatal("a report ending before it starts")
		}
	})
}

func TestEscalation_LadderStepsBeforeTheLeadReturnsAndATouchRestartsIt(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		cals, at := holidayCalendar(t)
		s := New(db, nil, cals, quiet)
		var mu sync.Mutex
		now := at("2026-03-02 10:00")
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		set := func(v string) { mu.Lock(); now = at(v); mu.Unlock() }
		s.SetManagers(func(_ context.Context, _ string, user int64) (int64, error) { return 99, nil })
		ctx := context.Background()
		ids := seed(t, s, 1)
		if _, err := s.UpdatePool(ctx, Pool{CorpID: "ww1", ID: mustDefaultPool(t, s), RecycleDays: 3,
			Escalations: []Escalation{{AfterDays: 3, Notify: NotifyOwner}}}); err == nil {
			t.Fatal("a step on the day the lead returns was accepted")
		}
		if _, err := s.UpdatePool(ctx, Pool{CorpID: "ww1", ID: mustDefaultPool(t, s), RecycleDays: 7,
			Escalations: []Escalation{{AfterDays: 2, Notify: NotifyOwner}, {AfterDays: 4, Notify: NotifyManager}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "ww1", ids[0], 7); err != nil {
			t.Fatal(err)
		}
		escalate := func(when string, want int) {
			t.Helper()
			set(when)
			if n, err := s.Escalate(ctx); err != nil || n != want {
				t.Fatalf("at %s: %d steps (%v), want %d", when, n, err, want)
			}
		}
		// Claimed Monday; Tuesday is a holiday: two working days end with Thursday.
		escalate("2026-03-05 23:59", 0)
		escalate("2026-03-06 00:00", 1)
		escalate("2026-03-06 09:00", 0) // once per step
		escalate("2026-03-10 00:00", 1) // four working days: Wed, Thu, Fri, Mon
		var notices []struct {
			User int64 `db:"user_id"`
		}
		if err := db.SelectContext(ctx, &notices, `SELECT user_id FROM lead_notices ORDER BY id`); err != nil || len(notices) != 3 || notices[2].User != 99 {
			t.Fatalf("notices %+v %v", notices, err)
		}
		// A follow-up starts the ladder again.
		set("2026-03-10 10:00")
		if _, err := s.Touch(ctx, "ww1", ids[0], 7, "note", "left a message"); err != nil {
			t.Fatal(err)
		}
		escalate("2026-03-12 23:00", 0)
		escalate("2026-03-13 00:00", 1)
	})
}

func mustDefaultPool(t *testing.T, s *Service) int64 {
	t.Helper()
	pools, err := s.Pools(context.Background(), "ww1")
	if err != nil || len(pools) == 0 {
		t.Fatal(err)
	}
	return pools[0].ID
}

func TestAssignment_WeightedLeastLoadedAndWorkingHours(t *testing.T) {
	if got := fmt.Sprint(weightedSequence([]int64{1, 2, 3}, map[int64]int{1: 3, 2: 1})); got != "[1 2 1 3 1]" {
		t.Fatalf("weighted sequence %s", got)
	}
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		cals, at := holidayCalendar(t)
		s := New(db, nil, cals, quiet)
		var mu sync.Mutex
		now := at("2026-03-02 20:00") // Monday evening: after hours
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		ctx := context.Background()
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 60}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Name: "bad", Users: []int64{1}, Strategy: "random"}, isAnyUser); err == nil {
			t.Fatal("an unknown strategy was saved")
		}
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Name: "office hours", Users: []int64{21, 22}, Strategy: StrategyLeastLoaded,
			WorkingHours: true}, isAnyUser); err != nil {
			t.Fatal(err)
		}
		ids := seed(t, s, 4)
		// User 21 already holds two leads (claimed by hand).
		for _, id := range ids[:2] {
			if _, err := s.Claim(ctx, "ww1", id, 21); err != nil {
				t.Fatal(err)
			}
		}
		for _, ext := range []string{"wm2", "wm3"} {
			if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: ext, Type: "demo", At: now}}); err != nil {
				t.Fatal(err)
			}
		}
		owner := func(id int64) int64 { l, _ := s.read(ctx, "ww1", id); return l.OwnerUserID }
		if owner(ids[2]) != 0 || owner(ids[3]) != 0 {
			t.Fatal("assigned after hours")
		}
		// Tuesday is a holiday: still waiting. Wednesday 09:00: given out, to the least loaded first.
		mu.Lock()
		now = at("2026-03-03 10:00")
		mu.Unlock()
		if n, _ := s.AssignWaiting(ctx); n != 0 {
			t.Fatal("assigned on a holiday")
		}
		mu.Lock()
		now = at("2026-03-04 09:00")
		mu.Unlock()
		if n, err := s.AssignWaiting(ctx); err != nil || n != 2 {
			t.Fatalf("assigned %d (%v)", n, err)
		}
		if owner(ids[2]) != 22 || owner(ids[3]) != 22 {
			t.Fatalf("least loaded: %d, %d; want 22 for both (21 holds 2)", owner(ids[2]), owner(ids[3]))
		}
	})
}

// Leads promoted at the same moment on two instances through a
// least-loaded rule each count the leads the others just assigned: the
// SDRs end up level, not the one least loaded at the start holding them all.
func TestAssign_LeastLoadedAtOnceCountsEachOthersLeads(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		services := []*Service{New(db, nil, nil, quiet), New(sqltest.Reopen(t, db), nil, nil, quiet)}
		s := services[0]
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 60}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Name: "level", Users: []int64{21, 22}, Strategy: StrategyLeastLoaded}, isAnyUser); err != nil {
			t.Fatal(err)
		}
		const held, callers = 8, 16
		ids := seed(t, s, held+callers)
		for _, id := range ids[:held] { // user 21 already holds eight
			if _, err := s.Claim(ctx, "ww1", id, 21); err != nil {
				t.Fatal(err)
			}
		}
		errs := make([]error, callers)
		sqltest.AtOnce(callers, func(i int) {
			_, errs[i] = services[i%2].RecordActivities(ctx, "ww1", []ActivityIn{{ExternalUserID: fmt.Sprint("wm", held+i), Type: "demo", At: time.Now(), Key: fmt.Sprint("d", i)}})
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("caller %d: %v", i, err)
			}
		}
		owned := map[int64]int{}
		for _, id := range ids {
			l, err := s.read(ctx, "ww1", id)
			if err != nil {
				t.Fatal(err)
			}
			owned[l.OwnerUserID]++
		}
		if owned[21]+owned[22] != held+callers || owned[21]-owned[22] > 1 || owned[22]-owned[21] > 1 {
			t.Fatalf("leads held: 21 → %d, 22 → %d, unowned %d; want %d each", owned[21], owned[22], owned[0], (held+callers)/2)
		}
	})
}
