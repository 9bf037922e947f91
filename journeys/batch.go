package journeys

import (
	"context"

	"github.com/jmoiron/sqlx"

	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// batchView is what a batch of lead events is judged against, read once
// for the whole batch with a statement each, however many corps it spans:
// the corps' segments and published journeys, and the leads of the
// contacts it saved. A claim brings a few events of each of many corps;
// read corp by corp, these reads were a third of the statements an add
// cost (issue 7).
type batchView struct {
	segments map[string][]Segment
	journeys map[string][]livejourney
	leadOf   map[leads.Contact]int64
}

// viewOf reads the view of a batch of events.
func (s *Service) viewOf(ctx context.Context, evs []any) (*batchView, error) {
	v := &batchView{segments: map[string][]Segment{}, journeys: map[string][]livejourney{}, leadOf: map[leads.Contact]int64{}}
	var corps []string
	seen := map[string]bool{}
	var contacts []leads.Contact
	for _, ev := range evs {
		var corp string
		switch e := ev.(type) {
		case leads.LeadChanged:
			corp = e.CorpID
		case directory.ContactSaved:
			corp = e.CorpID
			contacts = append(contacts, leads.Contact{CorpID: e.CorpID, ExternalUserID: e.ExternalUserID})
		default:
			continue
		}
		if !seen[corp] {
			seen[corp] = true
			corps = append(corps, corp)
		}
	}
	if len(corps) == 0 {
		return v, nil
	}
	segs, err := readSegmentsOf(ctx, s.db, corps)
	if err != nil {
		return nil, err
	}
	for i := range segs {
		if err := segs[i].decode(); err != nil {
			return nil, err
		}
		v.segments[segs[i].CorpID] = append(v.segments[segs[i].CorpID], segs[i])
	}
	rows, err := publishedJourneysOf(ctx, s.db, corps)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		g, err := s.graph(ctx, r.ID, r.Version)
		if err != nil {
			return nil, err
		}
		v.journeys[r.CorpID] = append(v.journeys[r.CorpID], livejourney{id: r.ID, version: r.Version, g: g})
	}
	if len(contacts) > 0 {
		if v.leadOf, err = s.leads.LeadsOfContacts(ctx, contacts); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// readSegmentsOf reads the segments of corps, by corp and id.
func readSegmentsOf(ctx context.Context, db *qsql.DB, corps []string) ([]Segment, error) {
	q, args, err := sqlx.In(`SELECT `+segmentCols+` FROM segments WHERE corp_id IN (?) ORDER BY corp_id, id`, corps)
	if err != nil {
		return nil, err
	}
	out := []Segment{}
	err = db.SelectContext(ctx, &out, q, args...)
	return out, err
}

// publishedJourneysOf reads the published journeys of corps, by corp and id.
func publishedJourneysOf(ctx context.Context, db *qsql.DB, corps []string) ([]publishedRow, error) {
	q, args, err := sqlx.In(`SELECT corp_id, id, version FROM journeys WHERE corp_id IN (?) AND status = ? ORDER BY corp_id, id`, corps, StatusPublished)
	if err != nil {
		return nil, err
	}
	var out []publishedRow
	err = db.SelectContext(ctx, &out, q, args...)
	return out, err
}

// leadRef is a lead of a corp.
type leadRef struct {
	corp string
	lead int64
}

// activeRunsOfLeadsIn reads the active runs of leads of any corps, by lead.
func activeRunsOfLeadsIn(ctx context.Context, db *qsql.DB, refs []leadRef) (map[int64][]Run, error) {
	out := make(map[int64][]Run, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	keys := make([][]any, len(refs))
	for i, r := range refs {
		keys[i] = []any{r.corp, r.lead}
	}
	cond, args := qsql.KeysIn([]string{"corp_id", "lead_id"}, keys)
	var rows []Run
	if err := db.SelectContext(ctx, &rows, `SELECT `+runCols+` FROM journey_runs WHERE `+cond+` AND active_guard = 1`, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.LeadID] = append(out[r.LeadID], r)
	}
	return out, nil
}

// touchedByActivities are the activity types of acts and the condition
// fields they may change (joining or leaving a group changes "groups").
func touchedByActivities(acts []leads.RecordedActivity) (types, fields []string) {
	for _, a := range acts {
		types = append(types, a.Type)
		if a.Type == leads.ActivityGroupJoined || a.Type == leads.ActivityGroupLeft {
			fields = append(fields, groupFields...)
		}
	}
	return types, fields
}

// current is evs as they are published now: an ActivitiesRecorded (queued
// by an earlier version) is the LeadChanged it has become.
func current(evs []any) []any {
	for i, ev := range evs {
		if e, ok := ev.(leads.ActivitiesRecorded); ok {
			evs[i] = e.AsLeadChanged()
		}
	}
	return evs
}
