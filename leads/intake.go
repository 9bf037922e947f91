package leads

import (
	"context"
	"fmt"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// Identity kinds.
const IdentityWeCom = "wecom" // an external contact of the corp

// subscribeIntake takes WeCom adds and the mirror's saved contacts in one
// subscriber, so one contact's are handled in the order they happened: a
// contact saved before its add names the person the add then finds, one
// saved after names the person the add made.
func (s *Service) subscribeIntake(b *jobs.Bus) {
	jobs.On(b, jobs.Subscription[any]{
		Name:  SubscriberIntake,
		Types: []string{livecode.ContactAdded{}.EventType(), directory.ContactSaved{}.EventType()},
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

// intake turns WeCom adds into people and leads, in one transaction: the
// person the external contact names (or a new one), their lead (or a new
// one in the corp's default pool, with the add's source, channel and code),
// and a history entry. A person added again (another staff member, or a
// re-add) keeps their lead; the add is in its history. The bus hands one
// contact's events over one at a time, so no two intakes race for a person.
// A saved contact names its person (creating the person when the add has
// not been seen yet).
func (s *Service) intake(ctx context.Context, evs []any) error {
	names := make([]string, len(evs))
	for i, ev := range evs {
		// The mirror often has the contact by now; if not, its
		// ContactSaved follows and names the person.
		if add, ok := ev.(livecode.ContactAdded); ok && s.contacts != nil {
			names[i], _ = s.contacts.ContactName(ctx, add.CorpID, add.ExternalUserID)
		}
	}
	now := qsql.Millis(s.now())
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for i, ev := range evs {
			var err error
			switch ev := ev.(type) {
			case livecode.ContactAdded:
				if err = s.intakeOne(ctx, tx, ev, names[i], now); err != nil {
					return fmt.Errorf("intake of %s: %w", ev.ExternalUserID, err)
				}
			case directory.ContactSaved:
				if err = s.contactSaved(ctx, tx, ev, now); err != nil {
					return fmt.Errorf("contact %s saved: %w", ev.ExternalUserID, err)
				}
			default:
				return jobs.Permanent(fmt.Errorf("leads intake got %T", ev))
			}
		}
		return nil
	})
}

// contactSaved names the contact's person, creating the person (not yet a
// lead: that is the add's) when intake has not met them yet.
func (s *Service) contactSaved(ctx context.Context, tx *qsql.Tx, ev directory.ContactSaved, now int64) error {
	if ev.Name == "" {
		return nil
	}
	person, err := s.store.personByIdentity(ctx, tx, ev.CorpID, IdentityWeCom, ev.ExternalUserID)
	if err != nil {
		return err
	}
	if person == 0 {
		_, err = s.store.createPerson(ctx, tx, ev.CorpID, ev.Name, IdentityWeCom, ev.ExternalUserID, now)
		return err
	}
	return s.store.nameIfUnnamed(ctx, tx, person, ev.Name, now)
}

func (s *Service) intakeOne(ctx context.Context, tx *qsql.Tx, ev livecode.ContactAdded, name string, now int64) error {
	key := fmt.Sprintf("add:%d", ev.SourceID)
	if seen, err := s.store.seenEvent(ctx, tx, ev.CorpID, key); err != nil || seen {
		return err // a retried delivery: recorded already
	}
	person, err := s.store.personByIdentity(ctx, tx, ev.CorpID, IdentityWeCom, ev.ExternalUserID)
	if err != nil {
		return err
	}
	if person == 0 {
		if person, err = s.store.createPerson(ctx, tx, ev.CorpID, name, IdentityWeCom, ev.ExternalUserID, now); err != nil {
			return err
		}
	} else if name != "" {
		if err := s.store.nameIfUnnamed(ctx, tx, person, name, now); err != nil {
			return err
		}
	}
	how := fmt.Sprintf("WeCom add by %s", ev.UserID)
	if ev.CodeID > 0 {
		how += fmt.Sprintf(" through code %d (channel %s)", ev.CodeID, ev.Channel)
	}
	lead, err := s.store.leadOfPerson(ctx, tx, ev.CorpID, person)
	if err != nil {
		return err
	}
	if lead > 0 {
		return s.store.addHistory(ctx, tx, ev.CorpID, lead, HistoryEntry{At: now, Kind: HistoryAdded, To: ev.UserID, Reason: how, eventKey: key})
	}
	pool, err := s.store.defaultPool(ctx, tx, ev.CorpID, now)
	if err != nil {
		return err
	}
	l := &Lead{CorpID: ev.CorpID, PersonID: person, PoolID: pool, Stage: StageLead, Source: SourceDirect, StaffUserID: ev.UserID,
		CreatedAt: now, UpdatedAt: now}
	if ev.Source == "code" {
		l.Source, l.Channel, l.CodeID = SourceCode, ev.Channel, ev.CodeID
	}
	if err := s.store.createLead(ctx, tx, l); err != nil {
		return err
	}
	return s.store.addHistory(ctx, tx, ev.CorpID, l.ID, HistoryEntry{At: now, Kind: HistoryCreated, To: StageLead, Reason: how, eventKey: key})
}
