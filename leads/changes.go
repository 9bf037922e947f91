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
// and every activity recorded for its person: one event per lead and
// transaction, with each history entry it made and each activity it
// recorded, so other packages (segments, journeys) learn of it without
// reading the lead pool's tables and exactly when the change commits. An
// add through a live code creates the lead, records the add as an activity
// and may grade and promote it: one event, one delivery per subscriber.
type LeadChanged struct {
	CorpID     string             `json:"corp_id"`
	LeadID     int64              `json:"lead_id"`
	Changes    []LeadChange       `json:"changes,omitempty"`
	Activities []RecordedActivity `json:"activities,omitempty"`
	At         int64              `json:"at"` // Unix ms
	Key        string             `json:"key"`
}

// LeadChange is one history entry of a LeadChanged: its kind (stage, score,
// fit, claimed…) and values (for score, the engagement before and after).
type LeadChange struct {
	Kind string `json:"kind"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// RecordedActivity is one activity of a LeadChanged.
type RecordedActivity struct {
	Type       string          `json:"type"`
	At         int64           `json:"at"`
	Properties json.RawMessage `json:"properties,omitempty"`
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

// ActivitiesRecorded was published for a lead's new activities before they
// became part of LeadChanged. It is still decoded, as the LeadChanged it
// now is, so deliveries queued before an upgrade are handled after it.
type ActivitiesRecorded struct {
	CorpID     string             `json:"corp_id"`
	LeadID     int64              `json:"lead_id"`
	Activities []RecordedActivity `json:"activities"`
	At         int64              `json:"at"` // Unix ms
	Key        string             `json:"key"`
}

func (e ActivitiesRecorded) EventType() string    { return "ActivitiesRecorded" }
func (e ActivitiesRecorded) EventSubject() string { return LeadSubject(e.LeadID) }
func (e ActivitiesRecorded) EventKey() string     { return e.Key }
func (e ActivitiesRecorded) EventTime() time.Time { return time.UnixMilli(e.At) }

// AsLeadChanged is the event as it is published now.
func (e ActivitiesRecorded) AsLeadChanged() LeadChanged {
	return LeadChanged{CorpID: e.CorpID, LeadID: e.LeadID, Activities: e.Activities, At: e.At, Key: e.Key}
}

// LeadSubject is the bus subject of a lead's events: a subscriber sees one
// lead's changes one at a time, in order.
func LeadSubject(lead int64) string { return fmt.Sprintf("lead:%d", lead) }

// txChanges gathers a transaction's lead changes and activities, and
// publishes them, one LeadChanged per lead, just before it commits. A
// retried transaction starts a new one (a fresh key): each committed
// change is published exactly once.
type txChanges struct {
	batch  string
	byLead map[leadKey]*LeadChanged
	order  []leadKey
}

type leadKey struct {
	corp string
	lead int64
}

type txChangesKey struct{}

// changesOf is tx's gatherer, made (and its publishing hooked to the
// commit) on first use.
func (st *store) changesOf(ctx context.Context, tx *qsql.Tx) *txChanges {
	if c, ok := tx.Value(txChangesKey{}).(*txChanges); ok {
		return c
	}
	c := &txChanges{batch: newBatchToken(), byLead: map[leadKey]*LeadChanged{}}
	tx.SetValue(txChangesKey{}, c)
	tx.BeforeCommit(func() error {
		evs := make([]jobs.Published, len(c.order))
		for i, k := range c.order {
			evs[i] = jobs.Published{CorpID: k.corp, Event: *c.byLead[k]}
		}
		return st.bus.PublishAll(ctx, tx, evs)
	})
	return c
}

// of is the lead's event, made on first use.
func (c *txChanges) of(corp string, lead int64) *LeadChanged {
	k := leadKey{corp, lead}
	ev := c.byLead[k]
	if ev == nil {
		ev = &LeadChanged{CorpID: corp, LeadID: lead, Key: fmt.Sprintf("%s/%d", c.batch, lead)}
		c.byLead[k] = ev
		c.order = append(c.order, k)
	}
	return ev
}

// publishChanges adds the history entries hs to their leads' LeadChanged
// of tx (none for a change in bulk: a rescore publishes LeadsRescored).
func (st *store) publishChanges(ctx context.Context, tx *qsql.Tx, hs []historyRow) error {
	if st.bus == nil || len(hs) == 0 || isBulk(ctx) {
		return nil
	}
	c := st.changesOf(ctx, tx)
	for _, h := range hs {
		ev := c.of(h.Corp, h.Lead)
		ev.At = max(ev.At, h.At)
		ev.Changes = append(ev.Changes, LeadChange{Kind: h.Kind, From: h.From, To: h.To})
	}
	return nil
}

// publishActivities adds the activities acts to their leads' LeadChanged
// of tx.
func (st *store) publishActivities(ctx context.Context, tx *qsql.Tx, acts []scoredActivity, now int64) error {
	if st.bus == nil || len(acts) == 0 {
		return nil
	}
	c := st.changesOf(ctx, tx)
	for _, a := range acts {
		ev := c.of(a.Corp, a.Lead)
		ev.At = max(ev.At, now)
		ra := RecordedActivity{Type: a.Type, At: a.At}
		if json.Valid([]byte(a.Props)) {
			ra.Properties = json.RawMessage(a.Props)
		}
		ev.Activities = append(ev.Activities, ra)
	}
	return nil
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
