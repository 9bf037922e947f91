package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// subscribeIntake takes WeCom adds and the mirror's saved contacts in one
// subscriber, so one contact's are handled in the order they happened: a
// contact saved before its add names the person the add then finds, one
// saved after names the person the add made.
func (s *Service) subscribeIntake(b *jobs.Bus) {
	jobs.On(b, jobs.Subscription[any]{
		Name:  SubscriberIntake,
		Types: []string{livecode.ContactAdded{}.EventType(), livecode.ContactLost{}.EventType(), directory.ContactSaved{}.EventType()},
		Handle: func(ctx context.Context, _ jobs.Delivery, ev any) error {
			return s.intake(ctx, []any{ev})
		},
		HandleBatch: func(ctx context.Context, items []jobs.Item[any]) error {
			evs := make([]any, len(items))
			for i, it := range items {
				evs[i] = it.Event
			}
			return s.intake(ctx, evs)
		},
	})
}

// Intake records WeCom adds (see intake).
func (s *Service) Intake(ctx context.Context, evs []livecode.ContactAdded) error {
	anys := make([]any, len(evs))
	for i, ev := range evs {
		anys[i] = ev
	}
	return s.intake(ctx, anys)
}

// intake turns WeCom adds into people and leads, and names people from the
// mirror's saved contacts, in one transaction of a statement or two per
// step for the whole batch: the adds already recorded (a retried delivery),
// the people the contacts name, new people, names, the people's leads, new
// leads in the corp's default pool with the add's source, channel and code,
// and the history. A person added again (another staff member, a re-add)
// keeps their lead; the add is in its history. A contact saved before its
// add makes the person (not the lead: that is the add's). The bus hands one
// contact's events to this subscriber one at a time, so a batch holds each
// contact once and no two intakes race for a person.
func (s *Service) intake(ctx context.Context, evs []any) error {
	now := qsql.Millis(s.now())
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error { return s.intakeTx(ctx, tx, evs, now) })
}

func (s *Service) intakeTx(ctx context.Context, tx *qsql.Tx, evs []any, now int64) error {
	var adds []livecode.ContactAdded
	var saves []directory.ContactSaved
	var losses []livecode.ContactLost
	var contacts, keys [][2]string
	for _, ev := range evs {
		switch ev := ev.(type) {
		case livecode.ContactLost:
			losses = append(losses, ev)
			contacts = append(contacts, [2]string{ev.CorpID, ev.ExternalUserID})
		case livecode.ContactAdded:
			adds = append(adds, ev)
			contacts, keys = append(contacts, [2]string{ev.CorpID, ev.ExternalUserID}), append(keys, [2]string{ev.CorpID, addKey(ev)})
		case directory.ContactSaved:
			saves = append(saves, ev)
			contacts = append(contacts, [2]string{ev.CorpID, ev.ExternalUserID})
		default:
			return jobs.Permanent(fmt.Errorf("leads intake got %T", ev))
		}
	}
	seen := map[[2]string]bool{}
	if len(keys) > 0 {
		var err error
		if seen, err = s.store.seenEvents(ctx, tx, keys); err != nil {
			return err
		}
	}
	adds = slices.DeleteFunc(adds, func(a livecode.ContactAdded) bool { return seen[[2]string{a.CorpID, addKey(a)}] })
	people, err := s.store.peopleByIdentity(ctx, tx, IdentityWeCom, contacts)
	if err != nil {
		return err
	}
	// New people: named when their contact was saved.
	var fresh []newPerson
	names := map[int64]string{}
	for _, sv := range saves {
		if id := people[[2]string{sv.CorpID, sv.ExternalUserID}]; id > 0 {
			if sv.Name != "" {
				names[id] = sv.Name
			}
		} else {
			fresh = append(fresh, newPerson{Corp: sv.CorpID, Kind: IdentityWeCom, Value: sv.ExternalUserID, Name: sv.Name})
		}
	}
	for _, a := range adds {
		if people[[2]string{a.CorpID, a.ExternalUserID}] == 0 {
			fresh = append(fresh, newPerson{Corp: a.CorpID, Kind: IdentityWeCom, Value: a.ExternalUserID})
		}
	}
	made, err := s.store.createPeople(ctx, tx, fresh, now)
	if err != nil {
		return err
	}
	maps.Copy(people, made)
	if err := s.store.nameUnnamed(ctx, tx, names, now); err != nil {
		return err
	}
	if err := s.linkUnionIDs(ctx, tx, saves, people, now); err != nil {
		return err
	}
	if len(adds) == 0 {
		return s.wecomActivities(ctx, tx, nil, losses, people, now)
	}
	ids := make([]int64, len(adds))
	refs := make([][2]any, len(adds))
	for i, a := range adds {
		ids[i] = people[[2]string{a.CorpID, a.ExternalUserID}]
		refs[i] = [2]any{a.CorpID, ids[i]}
	}
	leadOf, err := s.store.leadsOfPeople(ctx, tx, refs)
	if err != nil {
		return err
	}
	var fresher []*Lead
	var history []historyRow
	var createdBy []livecode.ContactAdded
	for i, a := range adds {
		how := addedHow(a)
		if lead := leadOf[ids[i]]; lead > 0 {
			history = append(history, historyRow{a.CorpID, lead, HistoryEntry{At: now, Kind: HistoryAdded, To: a.UserID, Reason: how, eventKey: addKey(a)}})
			continue
		}
		pool, err := s.defaultPool(ctx, tx, a.CorpID, now)
		if err != nil {
			return err
		}
		l := &Lead{CorpID: a.CorpID, PersonID: ids[i], PoolID: pool, Stage: StageLead, Source: SourceDirect, StaffUserID: a.UserID, CreatedAt: now, UpdatedAt: now}
		if a.Source == "code" {
			l.Source, l.Channel, l.CodeID = SourceCode, a.Channel, a.CodeID
		}
		fresher, createdBy = append(fresher, l), append(createdBy, a)
	}
	if err := s.store.createLeads(ctx, tx, fresher); err != nil {
		return err
	}
	byCorp := map[string][]int64{}
	for i, l := range fresher {
		a := createdBy[i]
		history = append(history, historyRow{a.CorpID, l.ID, HistoryEntry{At: now, Kind: HistoryCreated, To: StageLead, Reason: addedHow(a), eventKey: addKey(a)}})
		byCorp[l.CorpID] = append(byCorp[l.CorpID], l.ID)
	}

	if err := s.store.addHistories(ctx, tx, history); err != nil {
		return err
	}
	// New leads are graded by what they came with (source, channel, code).
	if err := s.refitLeadsOf(ctx, tx, byCorp, now); err != nil {
		return err
	}
	// Last: scoring needs the leads made above.
	return s.wecomActivities(ctx, tx, adds, losses, people, now)
}

// wecomActivities records adds and losses as activities of their people
// ("wecom.added", "wecom.lost", with staff, channel and code), so they are
// on the timeline and engagement rules can score them (e.g. negative points
// for a loss). A loss of a person intake never met records nothing. An
// activity is recorded once per event (its key).
func (s *Service) wecomActivities(ctx context.Context, tx *qsql.Tx, adds []livecode.ContactAdded, losses []livecode.ContactLost, people map[[2]string]int64, now int64) error {
	var rows []activityRow
	props := func(staff, channel string, code int64, extra ...string) string {
		m := map[string]any{"staff": staff, "channel": channel, "code_id": code}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, a := range adds {
		rows = append(rows, activityRow{Corp: a.CorpID, Person: people[[2]string{a.CorpID, a.ExternalUserID}], Type: "wecom.added",
			At: a.AddedAt, Props: props(a.UserID, a.Channel, a.CodeID, "source", a.Source), Key: addKey(a)})
	}
	for _, l := range losses {
		person := people[[2]string{l.CorpID, l.ExternalUserID}]
		if person == 0 {
			continue
		}
		rows = append(rows, activityRow{Corp: l.CorpID, Person: person, Type: "wecom.lost",
			At: l.LostAt, Props: props(l.UserID, l.Channel, l.CodeID, "by", l.By), Key: fmt.Sprintf("lost:%d/%d", l.SourceID, l.LostAt)})
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := s.recordAndScore(ctx, tx, rows, qsql.FromMillis(now))
	return err
}

// linkUnionIDs gives people the unionid of their saved contact; a unionid
// another person has (from a form or an import) means both are one, and
// they are merged (the person being worked survives). people is updated
// to name the survivors.
func (s *Service) linkUnionIDs(ctx context.Context, tx *qsql.Tx, saves []directory.ContactSaved, people map[[2]string]int64, now int64) error {
	byCorp := map[string][]Identity{}
	for _, sv := range saves {
		if sv.UnionID != "" {
			byCorp[sv.CorpID] = append(byCorp[sv.CorpID], Identity{IdentityUnionID, sv.UnionID})
		}
	}
	for corp, ids := range byCorp {
		owners, err := s.store.identityOwners(ctx, tx, corp, ids)
		if err != nil {
			return err
		}
		for _, sv := range saves {
			if sv.CorpID != corp || sv.UnionID == "" {
				continue
			}
			id := Identity{IdentityUnionID, sv.UnionID}
			person, owner := people[[2]string{corp, sv.ExternalUserID}], owners[id]
			switch {
			case person == 0 || owner == person:
			case owner == 0:
				if err := s.store.addIdentities(ctx, tx, corp, identitiesOf(person, []Identity{id}), now); err != nil {
					return err
				}
				owners[id] = person
			default:
				survivor, err := s.survivor(ctx, tx, corp, []int64{owner, person})
				if err != nil {
					return err
				}
				merged := person + owner - survivor
				if _, err := s.mergeTx(ctx, tx, corp, survivor, merged, 0, "same unionid "+sv.UnionID, qsql.FromMillis(now)); err != nil {
					return err
				}
				for k, v := range people {
					if v == merged {
						people[k] = survivor
					}
				}
				owners[id] = survivor
			}
		}
	}
	return nil
}

// addKey names an add in the history, so a retried delivery records it once.
func addKey(a livecode.ContactAdded) string { return fmt.Sprintf("add:%d", a.SourceID) }

func addedHow(a livecode.ContactAdded) string {
	how := "WeCom add by " + a.UserID
	if a.CodeID > 0 {
		how += fmt.Sprintf(" through code %d (channel %s)", a.CodeID, a.Channel)
	}
	return how
}

// defaultPool is the corp's default pool id, made on first use and then
// remembered (a pool id never changes).
func (s *Service) defaultPool(ctx context.Context, tx *qsql.Tx, corp string, now int64) (int64, error) {
	if id, ok := s.defaultPools.Load(corp); ok {
		return id.(int64), nil
	}
	id, err := s.store.defaultPool(ctx, tx, corp, now)
	if err == nil {
		s.defaultPools.Store(corp, id)
	}
	return id, err
}
