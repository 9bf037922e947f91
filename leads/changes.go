package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
)

// LeadChanged is published in the transaction of every change of a lead
// (one event per lead and transaction, with each history entry it made),
// so other packages (segments, journeys) learn of it without reading the
// lead pool's tables and exactly when the change commits.
type LeadChanged struct {
	CorpID  string       `json:"corp_id"`
	LeadID  int64        `json:"lead_id"`
	Changes []LeadChange `json:"changes"`
	At      int64        `json:"at"` // Unix ms
	Key     string       `json:"key"`
}

// LeadChange is one history entry of a LeadChanged: its kind (stage, score,
// fit, claimed…) and values (for score, the engagement before and after).
type LeadChange struct {
	Kind string `json:"kind"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

func (e LeadChanged) EventType() string    { return "LeadChanged" }
func (e LeadChanged) EventSubject() string { return LeadSubject(e.LeadID) }
func (e LeadChanged) EventKey() string     { return e.Key }
func (e LeadChanged) EventTime() time.Time { return time.UnixMilli(e.At) }

// Kinds are the kinds of the changes, each once.
func (e LeadChanged) Kinds() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range e.Changes {
		if !seen[c.Kind] {
			seen[c.Kind] = true
			out = append(out, c.Kind)
		}
	}
	return out
}

// ActivitiesRecorded is published in the transaction that records a lead's
// person's activities (WeCom adds and losses, form fills, activities from
// other systems), one event per lead and transaction.
type ActivitiesRecorded struct {
	CorpID     string             `json:"corp_id"`
	LeadID     int64              `json:"lead_id"`
	PersonID   int64              `json:"person_id"`
	Activities []RecordedActivity `json:"activities"`
	At         int64              `json:"at"` // Unix ms
	Key        string             `json:"key"`
}

// RecordedActivity is one activity of an ActivitiesRecorded.
type RecordedActivity struct {
	Type       string          `json:"type"`
	At         int64           `json:"at"`
	Properties json.RawMessage `json:"properties,omitempty"`
}

func (e ActivitiesRecorded) EventType() string    { return "ActivitiesRecorded" }
func (e ActivitiesRecorded) EventSubject() string { return LeadSubject(e.LeadID) }
func (e ActivitiesRecorded) EventKey() string     { return e.Key }
func (e ActivitiesRecorded) EventTime() time.Time { return time.UnixMilli(e.At) }

// LeadSubject is the bus subject of a lead's events: a subscriber sees one
// lead's changes one at a time, in order.
func LeadSubject(lead int64) string { return fmt.Sprintf("lead:%d", lead) }

// publishChanges publishes one LeadChanged per lead of hs in tx. A retried
// transaction was rolled back with its events, so a fresh key per call is
// right: each committed change is published exactly once.
func (st *store) publishChanges(ctx context.Context, tx *qsql.Tx, hs []historyRow) error {
	if st.bus == nil || len(hs) == 0 || isBulk(ctx) {
		return nil
	}
	batch := newBatchToken()
	type key struct {
		corp string
		lead int64
	}
	byLead := map[key]*LeadChanged{}
	var order []key
	for _, h := range hs {
		k := key{h.Corp, h.Lead}
		ev := byLead[k]
		if ev == nil {
			ev = &LeadChanged{CorpID: h.Corp, LeadID: h.Lead, Key: fmt.Sprintf("%s/%d", batch, h.Lead)}
			byLead[k] = ev
			order = append(order, k)
		}
		ev.At = max(ev.At, h.At)
		ev.Changes = append(ev.Changes, LeadChange{Kind: h.Kind, From: h.From, To: h.To})
	}
	evs := make([]jobs.Published, len(order))
	for i, k := range order {
		evs[i] = jobs.Published{CorpID: k.corp, Event: *byLead[k]}
	}
	return st.bus.PublishAll(ctx, tx, evs)
}

// publishActivities publishes one ActivitiesRecorded per lead of acts in tx.
func (st *store) publishActivities(ctx context.Context, tx *qsql.Tx, acts []scoredActivity, now int64) error {
	if st.bus == nil || len(acts) == 0 {
		return nil
	}
	batch := newBatchToken()
	byLead := map[int64]*ActivitiesRecorded{}
	var order []int64
	for _, a := range acts {
		ev := byLead[a.Lead]
		if ev == nil {
			ev = &ActivitiesRecorded{CorpID: a.Corp, LeadID: a.Lead, PersonID: a.Person, At: now, Key: fmt.Sprintf("%s/%d", batch, a.Lead)}
			byLead[a.Lead] = ev
			order = append(order, a.Lead)
		}
		ra := RecordedActivity{Type: a.Type, At: a.At}
		if json.Valid([]byte(a.Props)) {
			ra.Properties = json.RawMessage(a.Props)
		}
		ev.Activities = append(ev.Activities, ra)
	}
	evs := make([]jobs.Published, len(order))
	for i, l := range order {
		evs[i] = jobs.Published{CorpID: byLead[l].CorpID, Event: *byLead[l]}
	}
	return st.bus.PublishAll(ctx, tx, evs)
}

// LeadsRescored is published once a rescore job has been through every
// lead of a corp. The job changes leads in bulk (a million at once) without
// a LeadChanged each: subscribers re-read what they keep (segments on
// score, fit, grade or stage are rebuilt).
type LeadsRescored struct {
	CorpID string `json:"corp_id"`
	At     int64  `json:"at"`
	Key    string `json:"key"` // the job and its rules' version: a rerun publishes nothing new
}

func (e LeadsRescored) EventType() string    { return "LeadsRescored" }
func (e LeadsRescored) EventSubject() string { return "" }
func (e LeadsRescored) EventKey() string     { return e.Key }
func (e LeadsRescored) EventTime() time.Time { return time.UnixMilli(e.At) }

// RescoredFields are the profile fields a rescore may change.
var RescoredFields = []string{"fit", "grade", "score", "stage", "status", "cooling", "owner", "pool_id"}

type bulkKey struct{}

// bulk marks a context whose lead changes are many at once (a rescore):
// no LeadChanged is published for them; LeadsRescored is, at the end.
func bulk(ctx context.Context) context.Context { return context.WithValue(ctx, bulkKey{}, true) }

func isBulk(ctx context.Context) bool { b, _ := ctx.Value(bulkKey{}).(bool); return b }
