package leads

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// publishedChanges are the LeadChanged events on the bus, oldest first.
func publishedChanges(t *testing.T, db *qsql.DB) []LeadChanged {
	t.Helper()
	var payloads []string
	if err := db.Select(&payloads, `SELECT payload FROM bus_events WHERE type = 'LeadChanged' ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	out := make([]LeadChanged, len(payloads))
	for i, p := range payloads {
		if err := json.Unmarshal([]byte(p), &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// An add through a live code creates its lead, grades it, records the add
// as an activity and scores it, all in the intake's transaction: one
// LeadChanged carries it all (each event is a delivery, a claim and a
// settle per subscriber on every add). A later call is a new event.
func TestLeadChanged_OnePerLeadAndTransactionWithItsActivities(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		s.Subscribe(jobs.NewBus(db, quiet))
		now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		ctx := context.Background()
		if _, err := s.CreateFitRule(ctx, FitRule{CorpID: "ww1", Name: "expo", Condition: `channel == "expo"`, Points: 30}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "expo add", ActivityType: "wecom.added", Points: 10}); err != nil {
			t.Fatal(err)
		}
		add := livecode.ContactAdded{CorpID: "ww1", ExternalUserID: "wm1", UserID: "z", Source: "code", CodeID: 7, Channel: "expo", SourceID: 1, AddedAt: now.UnixMilli()}
		other := added("wm2", "z", 2)
		if err := s.intake(ctx, []any{add, other}); err != nil {
			t.Fatal(err)
		}
		evs := publishedChanges(t, db)
		if len(evs) != 2 {
			t.Fatalf("%d LeadChanged for two new leads, want one each: %+v", len(evs), evs)
		}
		var kinds []string
		for _, c := range evs[0].Changes {
			kinds = append(kinds, c.Kind)
		}
		if !slices.Contains(kinds, HistoryCreated) || !slices.Contains(kinds, HistoryFit) || !slices.Contains(kinds, HistoryScore) {
			t.Fatalf("the code's lead's event has changes %v, want created, fit and score", kinds)
		}
		if len(evs[0].Activities) != 1 || evs[0].Activities[0].Type != "wecom.added" {
			t.Fatalf("the code's lead's event has activities %+v, want its add", evs[0].Activities)
		}
		if evs[1].LeadID == evs[0].LeadID || len(evs[1].Activities) != 1 {
			t.Fatalf("the direct lead's event: %+v", evs[1])
		}
		var old int
		if err := db.Get(&old, `SELECT COUNT(*) FROM bus_events WHERE type = 'ActivitiesRecorded'`); err != nil || old != 0 {
			t.Fatalf("%d ActivitiesRecorded published (%v), want none", old, err)
		}
		// Another transaction, another event.
		if _, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{PersonID: personOfLead(t, s, evs[1].LeadID), Type: "webinar", At: now}}); err != nil {
			t.Fatal(err)
		}
		if evs = publishedChanges(t, db); len(evs) != 3 || evs[2].LeadID != evs[1].LeadID || len(evs[2].Changes) != 0 || evs[2].Activities[0].Type != "webinar" {
			t.Fatalf("after a webinar: %+v", evs)
		}
	})
}

func personOfLead(t *testing.T, s *Service, lead int64) int64 {
	t.Helper()
	l, err := s.read(context.Background(), "ww1", lead)
	if err != nil {
		t.Fatal(err)
	}
	return l.PersonID
}
