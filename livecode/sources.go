package livecode

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// RecordContactEvent records an add or a loss of a (customer, staff member)
// pair: the relation, the add's source, the day's counts and the
// ContactAdded or ContactLost event, all in one transaction. It touches only
// the database (plus the Redis cap counters after commit, which are rebuilt
// from the database when lost), so nothing WeCom does can hold it up.
//
// The relation row is the pair's latest state, compared by event time, so
// the outcome does not depend on the order events are processed in:
//   - an add of a pair with no relation, or whose relation was lost before
//     the add, is a new add (a re-add if any earlier add is known);
//   - an add of a live relation is the same relation (a repeat, or the full
//     add after a half add): nothing is counted;
//   - a loss of a live relation added before the loss ends it;
//   - a loss of a pair not yet added is kept as a tombstone, and the add that
//     arrives later is recorded as already lost.
//
// A retried delivery finds its own source row (keyed by the event) and only
// repeats the after-commit work, which is idempotent.
func (s *Service) RecordContactEvent(ctx context.Context, corp string, ev *wecom.ExternalContactEvent) error {
	switch ev.ChangeType {
	case wecom.ChangeAddExternalContact, wecom.ChangeAddHalfExternalContact:
		return s.recordAdd(ctx, corp, ev)
	case wecom.ChangeDelFollowUser, wecom.ChangeDelExternalContact:
		return s.recordLoss(ctx, corp, ev)
	}
	return nil
}

// addOutcome is what recording an add leaves for after the commit.
type addOutcome struct {
	src     *sourceRow // the add recorded (now or by an earlier attempt), nil if none
	counted bool       // it uses a cap slot: a first add through a code
	lost    bool       // recorded as already lost (its loss was seen first)
}

// ContactEvent is a contact event with the corp it came from.
type ContactEvent struct {
	CorpID string
	Event  *wecom.ExternalContactEvent
}

// RecordContactEvents is RecordContactEvent for many events of distinct
// contacts (a bus batch): the adds are recorded in one transaction, their
// counts summed into one statement per statistics row, written last and in
// key order (hot rows are locked briefly, and always in the same order);
// losses are recorded one by one.
func (s *Service) RecordContactEvents(ctx context.Context, evs []ContactEvent) error {
	var adds []ContactEvent
	for _, e := range evs {
		switch e.Event.ChangeType {
		case wecom.ChangeAddExternalContact, wecom.ChangeAddHalfExternalContact:
			adds = append(adds, e)
		default:
			if err := s.RecordContactEvent(ctx, e.CorpID, e.Event); err != nil {
				return err
			}
		}
	}
	return s.recordAdds(ctx, adds)
}

func (s *Service) recordAdd(ctx context.Context, corp string, ev *wecom.ExternalContactEvent) error {
	return s.recordAdds(ctx, []ContactEvent{{corp, ev}})
}

func (s *Service) recordAdds(ctx context.Context, adds []ContactEvent) error {
	if len(adds) == 0 {
		return nil
	}
	if s.bus == nil {
		return errors.New("livecode: Subscribe was not called; cannot publish ContactAdded")
	}
	codes := make([]*Code, len(adds))
	for i, a := range adds {
		id := ParseState(a.Event.State)
		if id == 0 {
			continue
		}
		for j := range i { // one read per code in a batch
			if codes[j] != nil && codes[j].ID == id && adds[j].CorpID == a.CorpID {
				codes[i] = codes[j]
			}
		}
		if codes[i] != nil {
			continue
		}
		code, err := s.store.get(ctx, a.CorpID, id)
		switch {
		case err == nil:
			codes[i] = code
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	var outs []addOutcome
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) (err error) {
		outs, err = s.recordAddsTx(ctx, tx, adds, codes)
		return err
	})
	if err != nil {
		return err
	}
	// Caps count adds through codes; a direct add is recorded but uses no
	// cap. An error retries the delivery, which finds its source and counts
	// it again: counting one source twice counts it once.
	type staffKey struct{ corp, user string }
	var moved []staffKey
	for i, out := range outs {
		if !out.counted {
			continue
		}
		a := adds[i]
		if err := s.consume(ctx, a.CorpID, out.src.Day, out.src.CodeID, a.Event.UserID, out.src.ID); err != nil {
			return fmt.Errorf("count the add against caps: %w", err)
		}
		if k := (staffKey{a.CorpID, a.Event.UserID}); !slices.Contains(moved, k) {
			moved = append(moved, k)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	// The staff members' counts moved: codes listing them may need to drop
	// them from their WeCom way (caps). Only now, once counted: a reconcile
	// woken earlier could read a count before its add and keep them.
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for _, k := range moved {
			ids, err := s.store.codesWithStaff(ctx, tx, k.corp, k.user)
			if err != nil {
				return err
			}
			if err := s.store.triggerReconcile(ctx, tx, k.corp, ids, qsql.Millis(s.now())); err != nil {
				return err
			}
		}
		tx.AfterCommit(s.wakeReconciler)
		return nil
	})
}

// recordAddsTx records adds of distinct contacts in tx (see
// RecordContactEvent), reading and writing them a statement for all: their
// recorded sources, their relations, the new sources, the new relations,
// ContactAdded and the counts.
func (s *Service) recordAddsTx(ctx context.Context, tx *qsql.Tx, adds []ContactEvent, codes []*Code) ([]addOutcome, error) {
	outs := make([]addOutcome, len(adds))
	var corps, keys, exts []string
	for _, a := range adds {
		corps = append(corps, a.CorpID)
		keys = append(keys, a.Event.DedupKey())
		exts = append(exts, a.Event.ExternalUserID)
	}
	prevs, err := s.store.sourcesByEvents(ctx, tx, corps, keys)
	if err != nil {
		return nil, err
	}
	rels, err := s.store.relations(ctx, tx, corps, exts)
	if err != nil {
		return nil, err
	}
	type pending struct {
		i      int
		src    *sourceRow
		next   relation
		insert bool
	}
	var todo []pending
	var srcs []*sourceRow
	for i, a := range adds {
		corp, ev, c := a.CorpID, a.Event, codes[i]
		if prev := prevs[[2]string{corp, ev.DedupKey()}]; prev != nil {
			// Recorded by an earlier attempt of this delivery.
			outs[i] = addOutcome{src: prev, counted: !prev.ReAdd && prev.CodeID > 0}
			continue
		}
		at := qsql.Millis(ev.Time())
		rel := rels[[3]string{corp, ev.ExternalUserID, ev.UserID}]
		src := &sourceRow{CorpID: corp, EventKey: ev.DedupKey(), ExternalUserID: ev.ExternalUserID, UserID: ev.UserID,
			State: ev.State, Day: s.calendar(corp).DayKey(ev.Time()), AddedAt: at}
		if c != nil {
			src.CodeID, src.Channel, src.OutOfPeriod = c.ID, c.Channel, !inPeriod(c, ev.Time())
		}
		next := relation{AddedAt: at}
		switch {
		case rel == nil:
		case rel.LostAt == nil:
			continue // the relation is live: a repeat, or the full add after a half add
		case *rel.LostAt >= at && rel.SourceID == 0:
			// Its loss was processed first: record the add as already lost.
			src.LostAt, src.LostBy = rel.LostAt, rel.LostBy
			next.LostAt, next.LostBy = rel.LostAt, rel.LostBy
			outs[i].lost = true
		case *rel.LostAt >= at:
			continue // an add older than the recorded cycle: nothing to change
		default:
			src.ReAdd = true
		}
		todo = append(todo, pending{i: i, src: src, next: next, insert: rel == nil})
		srcs = append(srcs, src)
	}
	if err := s.store.insertSources(ctx, tx, srcs); err != nil {
		return nil, err
	}
	stats := statsBatch{}
	var newRels []relationRow
	var added []jobs.Published
	for _, p := range todo {
		a, src := adds[p.i], p.src
		p.next.SourceID = src.ID
		if p.insert {
			newRels = append(newRels, relationRow{CorpID: a.CorpID, ExternalUserID: src.ExternalUserID, UserID: src.UserID, relation: p.next})
		} else if err := s.store.putRelation(ctx, tx, a.CorpID, src.ExternalUserID, src.UserID, p.next, false); err != nil {
			return nil, err
		}
		field := "adds"
		if src.ReAdd {
			field = "readds"
		}
		stats.add(a.CorpID, src.CodeID, src.UserID, src.Day, field, 1)
		ev := ContactAdded{CorpID: a.CorpID, ExternalUserID: src.ExternalUserID, UserID: src.UserID, Source: "direct", State: src.State,
			ReAdd: src.ReAdd, OutOfPeriod: src.OutOfPeriod, AddedAt: src.AddedAt, SourceID: src.ID}
		if c := codes[p.i]; c != nil {
			ev.Source, ev.CodeID, ev.Channel = "code", c.ID, c.Channel
		}
		added = append(added, jobs.Published{CorpID: a.CorpID, Event: ev})
		outs[p.i].src, outs[p.i].counted = src, !src.ReAdd && src.CodeID > 0
	}
	if err := s.store.insertRelations(ctx, tx, newRels); err != nil {
		return nil, err
	}
	if err := s.bus.PublishAll(ctx, tx, added); err != nil {
		return nil, err
	}
	// An add recorded as already lost: its loss follows its ContactAdded.
	for _, p := range todo {
		if outs[p.i].lost {
			if err := s.lossFacts(ctx, tx, p.src, *p.src.LostAt, p.src.LostBy, stats); err != nil {
				return nil, err
			}
		}
	}
	return outs, s.store.applyStats(ctx, tx, stats)
}

// lossFacts records a loss of an add in tx: its source, the day's count and
// ContactLost. by is "customer" (del_follow_user) or "staff".
func (s *Service) lossFacts(ctx context.Context, tx *qsql.Tx, src *sourceRow, at int64, by string, stats statsBatch) error {
	if err := s.store.markSourceLost(ctx, tx, src.ID, at, by); err != nil {
		return err
	}
	field := "lost_staff"
	if by == lostByCustomer {
		field = "lost_customer"
	}
	stats.add(src.CorpID, src.CodeID, src.UserID, s.calendar(src.CorpID).DayKey(qsql.FromMillis(at)), field, 1)
	return s.bus.Publish(ctx, tx, src.CorpID, ContactLost{CorpID: src.CorpID, ExternalUserID: src.ExternalUserID, UserID: src.UserID,
		By: by, CodeID: src.CodeID, Channel: src.Channel, LostAt: at, SourceID: src.ID})
}

const (
	lostByCustomer = "customer"
	lostByStaff    = "staff"
)

// recordLoss ends a live relation: the customer deleted the staff member
// (del_follow_user) or the other way round (del_external_contact). A
// deletion by transfer is a hand-over, not a loss.
func (s *Service) recordLoss(ctx context.Context, corp string, ev *wecom.ExternalContactEvent) error {
	if s.bus == nil {
		return errors.New("livecode: Subscribe was not called; cannot publish ContactLost")
	}
	if ev.ChangeType == wecom.ChangeDelExternalContact && ev.Source == wecom.SourceDeleteByTransfer {
		return nil
	}
	by := lostByStaff
	if ev.ChangeType == wecom.ChangeDelFollowUser {
		by = lostByCustomer
	}
	at := qsql.Millis(ev.Time())
	var lost *sourceRow
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		lost = nil
		rel, err := s.store.relation(ctx, tx, corp, ev.ExternalUserID, ev.UserID)
		if err != nil {
			return err
		}
		switch {
		case rel == nil:
			// Seen before its add (or the add predates Qiflow): a tombstone
			// the add compares with when it comes.
			return s.store.putRelation(ctx, tx, corp, ev.ExternalUserID, ev.UserID, relation{LostAt: &at, LostBy: by}, true)
		case rel.LostAt != nil:
			if rel.SourceID == 0 && at > *rel.LostAt {
				rel.LostAt, rel.LostBy = &at, by // the latest loss of a pair not yet added
				return s.store.putRelation(ctx, tx, corp, ev.ExternalUserID, ev.UserID, *rel, false)
			}
			return nil // already lost: a repeat, or an older loss
		case rel.AddedAt > at:
			return nil // a loss from before the current add
		}
		rel.LostAt, rel.LostBy = &at, by
		if err := s.store.putRelation(ctx, tx, corp, ev.ExternalUserID, ev.UserID, *rel, false); err != nil {
			return err
		}
		src, err := s.store.sourceByID(ctx, tx, corp, rel.SourceID)
		if err != nil || src == nil {
			return err // a relation imported without its source: nothing to count
		}
		lost = src
		stats := statsBatch{}
		if err := s.lossFacts(ctx, tx, src, at, by, stats); err != nil {
			return err
		}
		return s.store.applyStats(ctx, tx, stats)
	})
	if err != nil || lost == nil || by != lostByCustomer || !s.NotifyOnLoss[corp] {
		return err
	}
	// Telling the staff member is a courtesy: said once, never retried
	// (a retry would repeat the whole delivery, which now changes nothing).
	name, _ := s.dir.ContactName(ctx, corp, ev.ExternalUserID)
	text := fmt.Sprintf("客户 %s 已将您删除 / %s removed you", name, name)
	if code, err := s.store.codeName(ctx, corp, lost.CodeID); err == nil && code != "" {
		text += fmt.Sprintf(" (渠道 %s)", code)
	}
	if err := s.wc.SendAppMessage(ctx, corp, ev.UserID, text); err != nil {
		s.log.Warn("loss notification not sent", "corp", corp, "userid", ev.UserID, "err", err)
	}
	return nil
}
