package leads

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// Activities of one person recorded at once by several callers (the API and
// the intake, say) each add their points: none is lost to another's write
// of the engagement, and a capped rule gives no more than its cap.
func TestScore_ConcurrentActivitiesOfOnePersonAllCount(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		now := time.Now()
		s.SetClock(func() time.Time { return now })
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "visit", ActivityType: "visit", Points: 1, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "demo", ActivityType: "demo", Points: 10, MaxPoints: 30, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		p, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "Ann", Mobile: "13912345679"})
		if err != nil {
			t.Fatal(err)
		}
		const callers, each = 8, 10
		var wg sync.WaitGroup
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					in := []ActivityIn{{PersonID: p.Person.ID, Type: "visit", At: now, Key: fmt.Sprintf("v%d-%d", c, i)},
						{PersonID: p.Person.ID, Type: "demo", At: now, Key: fmt.Sprintf("d%d-%d", c, i)}}
					if _, err := s.RecordActivities(ctx, "ww1", in); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		l, err := s.read(ctx, "ww1", p.Lead.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := float64(callers*each) + 30; l.Engagement < want-0.5 || l.Engagement > want+0.5 {
			t.Fatalf("engagement %.1f after %d visits (1 each) and %d demos (capped at 30), want %.0f", l.Engagement, callers*each, callers*each, want)
		}
	})
}
