package leads

import (
	"context"
	"sync"
	"testing"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// The home page's agenda: the user's running SLA clocks, soonest first;
// their leads going back to the pool within the horizon in working days
// (a holiday does not count); nobody else's.
func TestAgenda_SLAsSoonestFirstAndLeadsAboutToBeRecycled(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		cals, at := holidayCalendar(t) // 2026-03-03 is a holiday
		s := New(db, nil, cals, quiet)
		var mu sync.Mutex
		now := at("2026-03-02 10:00") // a Monday
		s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		ctx := context.Background()
		if _, err := s.CreateSLARule(ctx, SLARule{CorpID: "ww1", Name: "first touch", Hours: 8}); err != nil {
			t.Fatal(err)
		}
		setCaps(t, s, Pool{RecycleDays: 3, MaxOpen: 10})
		ids := seed(t, s, 4)
		claim := func(id, user int64, when string) {
			t.Helper()
			mu.Lock()
			now = at(when)
			mu.Unlock()
			if _, err := s.Claim(ctx, "ww1", id, user); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ChangeStage(ctx, "ww1", id, user, false, StageMQL, ""); err != nil {
				t.Fatal(err)
			}
		}
		claim(ids[1], 7, "2026-03-02 11:00")
		claim(ids[0], 7, "2026-03-02 10:00")
		claim(ids[2], 8, "2026-03-02 10:00") // someone else's
		a, err := s.AgendaOf(ctx, "ww1", 7, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.SLAs) != 2 || a.SLAs[0].LeadID != ids[0] || a.SLAs[1].LeadID != ids[1] || a.SLAs[0].DueAt >= a.SLAs[1].DueAt {
			t.Fatalf("SLAs: %+v", a.SLAs)
		}
		// Claimed Monday, three working days: back when Friday ends (the
		// holiday Tuesday does not count). Seen on Monday with two working
		// days ahead (to Wednesday's end): not yet; on Wednesday (to
		// Friday's end): both.
		if len(a.Recycling) != 0 {
			t.Fatalf("Monday's recycling: %+v", a.Recycling)
		}
		mu.Lock()
		now = at("2026-03-04 09:00")
		mu.Unlock()
		if a, err = s.AgendaOf(ctx, "ww1", 7, 2); err != nil {
			t.Fatal(err)
		}
		if len(a.Recycling) != 2 || a.Recycling[0].LeadID != ids[0] || a.Recycling[1].LeadID != ids[1] ||
			time.UnixMilli(a.Recycling[0].At).In(at("2026-03-04 09:00").Location()).Format("01-02 15:04") != "03-07 00:00" {
			t.Fatalf("Wednesday's recycling: %+v", a.Recycling)
		}
		// My leads show the same deadlines beside each lead.
		dl, err := s.DeadlinesOf(ctx, "ww1", 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl) != 2 || dl[ids[0]].SLADue != a.SLAs[0].DueAt || dl[ids[1]].RecycleAt != a.Recycling[1].At || dl[ids[2]] != (Deadline{}) {
			t.Fatalf("deadlines: %+v", dl)
		}
		// A follow-up stops the first SLA clock and moves its lead's return.
		if _, err := s.Touch(ctx, "ww1", ids[0], 7, "call", ""); err != nil {
			t.Fatal(err)
		}
		if a, err = s.AgendaOf(ctx, "ww1", 7, 2); err != nil {
			t.Fatal(err)
		}
		if len(a.SLAs) != 1 || a.SLAs[0].LeadID != ids[1] || len(a.Recycling) != 1 || a.Recycling[0].LeadID != ids[1] {
			t.Fatalf("after the call: %+v", a)
		}
	})
}
