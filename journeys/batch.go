package journeys

import (
	"context"

	"github.com/qiflow/qiflow/leads"
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
	v := &batchView{segments: map[string][]Segment{}, leadOf: map[leads.Contact]int64{}}
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
	segs, err := s.segmentsOf(ctx, corps)
	if err != nil {
		return nil, err
	}
	for _, g := range segs {
		v.segments[g.CorpID] = append(v.segments[g.CorpID], g)
	}
	if v.journeys, err = s.publishedOf(ctx, s.db, corps); err != nil {
		return nil, err
	}
	if len(contacts) > 0 {
		if v.leadOf, err = s.leads.LeadsOfContacts(ctx, contacts); err != nil {
			return nil, err
		}
	}
	return v, nil
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
