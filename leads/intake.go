package leads

import (
	"context"
	"fmt"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
)

// Identity kinds.
const IdentityWeCom = "wecom" // an external contact of the corp

func (s *Service) subscribeIntake(b *jobs.Bus) {
	jobs.On(b, jobs.Subscription[livecode.ContactAdded]{
		Name: SubscriberIntake,
		Handle: func(ctx context.Context, _ jobs.Delivery, ev livecode.ContactAdded) error {
			return s.Intake(ctx, []livecode.ContactAdded{ev})
		},
		HandleBatch: func(ctx context.Context, items []jobs.Item[livecode.ContactAdded]) error {
			evs := make([]livecode.ContactAdded, len(items))
			for i, it := range items {
				evs[i] = it.Event
			}
			return s.Intake(ctx, evs)
		},
	})
}

// Intake turns WeCom adds into people and leads, in one transaction: the
// person the external contact names (or a new one), their lead (or a new
// one in the corp's default pool, with the add's source, channel and code),
// and a history entry. A person added again (another staff member, or a
// re-add) keeps their lead; the add is in its history. The bus hands one
// contact's events over one at a time, so no two intakes race for a person.
func (s *Service) Intake(ctx context.Context, evs []livecode.ContactAdded) error {
	names := make([]string, len(evs))
	for i, ev := range evs {
		// The mirror usually has the contact by now; a lead without a name
		// gets it when the person is next seen.
		if s.contacts != nil {
			names[i], _ = s.contacts.ContactName(ctx, ev.CorpID, ev.ExternalUserID)
		}
	}
	now := qsql.Millis(s.now())
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for i, ev := range evs {
			if err := s.intakeOne(ctx, tx, ev, names[i], now); err != nil {
				return fmt.Errorf("intake of %s: %w", ev.ExternalUserID, err)
			}
		}
		return nil
	})
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
