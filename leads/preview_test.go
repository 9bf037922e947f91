package leads

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// A rule being written shows how many of the newest leads (fit) or
// activities of its type (engagement) its condition holds for; a condition
// that does not compile says why.
func TestPreview_FitAndEngagementConditionsOnASample(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		var people []int64
		for i, title := range []string{"CTO", "engineer", "CTO"} {
			r, err := s.Upsert(ctx, "ww1", 1, "", PersonIn{Name: "P", Mobile: "1391234000" + string(rune('0'+i)), Title: title})
			if err != nil {
				t.Fatal(err)
			}
			people = append(people, r.Person.ID)
		}
		if p, err := s.PreviewFitRule(ctx, "ww1", `title == "CTO"`); err != nil || p != (Preview{Matched: 2, Sampled: 3}) {
			t.Fatalf("fit preview: %+v %v", p, err)
		}
		if _, err := s.PreviewFitRule(ctx, "ww1", `title ==`); err == nil {
			t.Fatal("a broken condition previewed")
		}
		var acts []ActivityIn
		for i, minutes := range []int{40, 10} {
			props, _ := json.Marshal(map[string]int{"minutes": minutes})
			acts = append(acts, ActivityIn{PersonID: people[i], Type: "webinar", At: time.Now(), Properties: props})
		}
		acts = append(acts, ActivityIn{PersonID: people[2], Type: "visit", At: time.Now(), Properties: json.RawMessage(`{}`)})
		if _, err := s.RecordActivities(ctx, "ww1", acts); err != nil {
			t.Fatal(err)
		}
		if p, err := s.PreviewRule(ctx, "ww1", "webinar", "properties.minutes >= 30"); err != nil || p != (Preview{Matched: 1, Sampled: 2}) {
			t.Fatalf("engagement preview: %+v %v", p, err)
		}
		if p, err := s.PreviewRule(ctx, "ww1", "webinar", ""); err != nil || p != (Preview{Matched: 2, Sampled: 2}) {
			t.Fatalf("a rule without a condition: %+v %v", p, err)
		}
	})
}
