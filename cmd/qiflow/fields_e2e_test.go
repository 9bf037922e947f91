package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/journeys"
	"github.com/qiflow/qiflow/leads"
)

// A corp's own lead fields through the real server: an admin defines a
// renewal date in the console, the API fills it (bad values refused by
// field), the lead page shows and edits it, a segment compares it, and a
// journey entering 30 days before the renewal enrols the lead at 10:00 on
// its day when the cron's job runs. A task on the lead reaches its owner's
// home page and is done there.
func TestE2E_LeadFieldsTasksAndAJourneyOnTheRenewalDate(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		ctx := context.Background()
		sh, _ := time.LoadLocation("Asia/Shanghai")
		var mu sync.Mutex
		now := time.Date(2027, 2, 28, 9, 0, 0, 0, sh) // 30 days before March 30
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		s.app.leads.SetClock(clock)
		s.app.journeys.SetClock(clock)
		admin := login(t, s.url, "admin@example.com", "admin password")
		b := newBrowser(t, s.url, "zh-CN")
		b.signIn("admin@example.com", "admin password")

		// Defined in the console: a bad key is refused on the page, a good one listed.
		st, body, _ := b.do("POST", "/console/settings/fields", url.Values{"key": {"Renewal"}, "label": {"续约日期"}, "kind": {"date"}, "_csrf": {b.csrf}}, false, false)
		if st != http.StatusUnprocessableEntity || !strings.Contains(body, "key") {
			t.Fatalf("a bad key: %d", st)
		}
		if st, _, _ := b.do("POST", "/console/settings/fields", url.Values{"key": {"renewal_date"}, "label": {"续约日期"}, "kind": {"date"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("define a field: %d", st)
		}
		var defs struct{ Fields []leads.FieldDef }
		if st := call(t, "GET", s.url+"/api/v1/lead-fields", admin, nil, &defs); st != 200 || len(defs.Fields) != 1 || defs.Fields[0].Kind != leads.FieldDate {
			t.Fatalf("fields %d %+v", st, defs)
		}
		var bad struct {
			Error struct{ Fields map[string]string }
		}
		if st := call(t, "PUT", s.url+"/api/v1/lead-fields/seats", admin, map[string]any{"label": "席位", "kind": "integer"}, &bad); st != 422 || bad.Error.Fields["kind"] == "" {
			t.Fatalf("a bad kind: %d %+v", st, bad)
		}

		// The API fills it; a bad value is named and stores nothing.
		var created struct{ Lead leads.Lead }
		if st := call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "李雷", "mobile": "13912345678", "fields": map[string]any{"renewal_date": "2027-03-31"}}, &created); st != http.StatusCreated {
			t.Fatalf("upsert: %d", st)
		}
		lead := created.Lead.ID
		if created.Lead.Fields["renewal_date"] != "2027-03-31" {
			t.Fatalf("fields %+v", created.Lead.Fields)
		}
		if st := call(t, "PATCH", s.url+"/api/v1/leads/"+itoa(lead)+"/fields", admin, map[string]any{"fields": map[string]any{"renewal_date": "March", "colour": "red"}}, &bad); st != 422 ||
			bad.Error.Fields["fields.renewal_date"] == "" || bad.Error.Fields["fields.colour"] == "" {
			t.Fatalf("bad values: %d %+v", st, bad)
		}

		// The lead page shows it in a form, and the form changes it.
		if _, body, _ := b.do("GET", "/console/leads/"+itoa(lead), nil, false, false); !strings.Contains(body, `name="f_renewal_date" type="date" value="2027-03-31"`) {
			t.Fatal("the lead page does not show the field")
		}
		if st, _, _ := b.do("POST", "/console/leads/"+itoa(lead)+"/fields", url.Values{"f_renewal_date": {"2027-03-30"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("change on the page: %d", st)
		}

		// A segment compares it.
		var prev journeys.Preview
		if st := call(t, "POST", s.url+"/api/v1/segments/preview", admin, map[string]any{"filter": map[string]any{"field": "fields.renewal_date", "op": "lte", "value": "2027-03-31"}}, &prev); st != 200 || prev.Matched != 1 {
			t.Fatalf("preview %d %+v", st, prev)
		}
		var fields struct{ Fields []string }
		if call(t, "GET", s.url+"/api/v1/segments/fields", admin, nil, &fields); !strings.Contains(strings.Join(fields.Fields, " "), "fields.renewal_date") {
			t.Fatalf("the builder's fields %v", fields.Fields)
		}

		// A journey 30 days before the renewal, at 10:00.
		var j journeys.Journey
		if st := call(t, "POST", s.url+"/api/v1/journeys", admin, map[string]any{"name": "续约提醒", "draft": map[string]any{"nodes": []map[string]any{
			{"id": "renewal", "type": "entry", "entry": map[string]any{"on": "date", "field": "renewal_date", "offset_days": -30, "at": "10:00"}, "exits": map[string]string{"next": "out"}},
			{"id": "out", "type": "exit"},
		}}}, &j); st != http.StatusCreated || len(j.Problems) > 0 {
			t.Fatalf("journey %d %+v", st, j.Problems)
		}
		if st := call(t, "POST", s.url+"/api/v1/journeys/"+itoa(j.ID)+"/publish", admin, map[string]any{}, nil); st != 200 {
			t.Fatalf("publish: %d", st)
		}
		enter := func(want int) {
			t.Helper()
			if n, err := s.app.journeys.EnterOnDates(ctx); err != nil || n != want {
				t.Fatalf("at %s: %d entered (%v), want %d", clock(), n, err, want)
			}
		}
		enter(0) // 09:00: not yet
		mu.Lock()
		now = now.Add(time.Hour)
		mu.Unlock()
		enter(1)
		// A task on the lead: refused while it has no owner, then for its owner,
		// on their home page, done there.
		if st := call(t, "POST", s.url+"/api/v1/leads/"+itoa(lead)+"/tasks", admin, map[string]any{"title": "续约电话", "due_at": "2027-03-01T10:00:00+08:00"}, &bad); st != http.StatusConflict {
			t.Fatalf("a task without an owner: %d", st)
		}
		if st := call(t, "POST", s.url+"/api/v1/leads/"+itoa(lead)+"/claim", admin, nil, nil); st != 200 {
			t.Fatalf("claim: %d", st)
		}
		var task leads.Task
		if st := call(t, "POST", s.url+"/api/v1/leads/"+itoa(lead)+"/tasks", admin, map[string]any{"title": "续约电话", "due_at": "2027-03-01T10:00:00+08:00"}, &task); st != http.StatusCreated || task.ID == 0 {
			t.Fatalf("a task: %d %+v", st, task)
		}
		if _, body, _ := b.do("GET", "/console", nil, false, false); !strings.Contains(body, "续约电话") || !strings.Contains(body, "/console/tasks/"+itoa(task.ID)+"/done") {
			t.Fatal("the home page does not show the task")
		}
		if st, _, h := b.do("POST", "/console/tasks/"+itoa(task.ID)+"/done", url.Values{"_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther || h.Get("Location") != "/console" {
			t.Fatalf("done on the page: %d %q", st, h.Get("Location"))
		}
		var done struct{ Tasks []leads.Task }
		if call(t, "GET", s.url+"/api/v1/tasks?status=done", admin, nil, &done); len(done.Tasks) != 1 || done.Tasks[0].DoneAt == nil {
			t.Fatalf("done tasks %+v", done)
		}

		var runs struct{ Runs []journeys.Run }
		if st := call(t, "GET", s.url+"/api/v1/journeys/"+itoa(j.ID)+"/runs", admin, nil, &runs); st != 200 || len(runs.Runs) != 1 || runs.Runs[0].LeadID != lead {
			t.Fatalf("runs %d %+v", st, runs)
		}
	})
}
