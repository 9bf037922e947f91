package leads

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// History kinds of merges.
const (
	HistoryMerged   = "merged"   // another person's lead was folded into this one (or this one into another)
	HistoryUnmerged = "unmerged" // a merge undone
)

// ErrMerged is acting on a lead that was folded into another.
var ErrMerged = apperr.Conflict("merged", "this lead was merged into another; work that one")

// survivor picks who stays when people turn out to be one: the person
// whose lead is being worked (owned), else the one with a lead, else the
// oldest. Their lead, owner and stage carry on.
func (s *Service) survivor(ctx context.Context, tx *qsql.Tx, corp string, people []int64) (int64, error) {
	best, bestRank := int64(0), -1
	for _, p := range slices.Sorted(slices.Values(people)) {
		l, err := s.store.leadOfPerson(ctx, tx, corp, p)
		if err != nil {
			return 0, err
		}
		rank := 0
		switch {
		case l != nil && l.OwnerUserID != 0:
			rank = 2
		case l != nil:
			rank = 1
		}
		if rank > bestRank {
			best, bestRank = p, rank
		}
	}
	return best, nil
}

// mergeTx folds person merged into survivor in tx: the merged person's
// identities move to the survivor, the person is marked merged, and their
// lead is folded into the survivor's (hidden from pools, its engagement
// added to the survivor's, its owner's open count given back). The merge is
// recorded with what moved, so Unmerge can restore it. A merged person
// without a lead of their own keeps nothing to restore but identities.
func (s *Service) mergeTx(ctx context.Context, tx *qsql.Tx, corp string, survivor, merged, actor int64, reason string, now time.Time) (*Merge, error) {
	ms := qsql.Millis(now)
	ids, err := s.store.identitiesOf(ctx, tx, corp, merged)
	if err != nil {
		return nil, err
	}
	ok, err := s.store.markPersonMerged(ctx, tx, corp, merged, survivor, ms)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errRaced // merged meanwhile
	}
	if err := s.store.moveIdentities(ctx, tx, corp, merged, survivor, ids); err != nil {
		return nil, err
	}
	m := &Merge{CorpID: corp, SurvivorID: survivor, MergedID: merged, Reason: reason, Identities: ids, ActorUserID: actor, At: ms}
	from, err := s.store.leadOfPerson(ctx, tx, corp, merged)
	if err != nil {
		return nil, err
	}
	into, err := s.store.leadOfPerson(ctx, tx, corp, survivor)
	if err != nil {
		return nil, err
	}
	if from != nil && into == nil {
		// The survivor has no lead (survivor picks one that has, so this is
		// a merge by hand): their lead is the merged person's, moved over.
		return nil, apperr.Field("person_id", "merge into the person who has the lead")
	}
	if from != nil {
		set, err := s.store.settings(ctx, tx, corp)
		if err != nil {
			return nil, err
		}
		brought := decayed(from.EngagementMilli, from.EngagementAt, now, set.HalfLifeDays)
		m.LeadID, m.EngagementMilli = from.ID, int64(math.Round(brought*1000))
		if ok, err := s.store.setLeadMerged(ctx, tx, corp, from.ID, from.Version, into.ID, ms); err != nil || !ok {
			return nil, cmpErr(err, errRaced) // claimed or released meanwhile: its owner count was read before
		}
		if from.OwnerUserID != 0 {
			if err := s.store.uncountOpen(ctx, tx, corp, from.PoolID, from.OwnerUserID); err != nil {
				return nil, err
			}
		}
		if err := s.store.closeSLAs(ctx, tx, from.ID, SLAClosed, ms); err != nil {
			return nil, err
		}
		// The survivor gains the values of the corp's own fields it lacks
		// (its own win); the folded lead keeps its rows for an unmerge.
		if _, err := tx.ExecContext(ctx, `INSERT INTO lead_field_values (corp_id, lead_id, field_key, text_value, num_value, day_value, updated_at)
			SELECT f.corp_id, ?, f.field_key, f.text_value, f.num_value, f.day_value, ? FROM lead_field_values f
			WHERE f.lead_id = ? AND NOT EXISTS (SELECT 1 FROM lead_field_values g WHERE g.lead_id = ? AND g.field_key = f.field_key)`,
			into.ID, ms, from.ID, into.ID); err != nil {
			return nil, err
		}
		if brought != 0 {
			if err := s.addEngagement(ctx, tx, into.ID, brought, set, now); err != nil {
				return nil, err
			}
		}
		if err := s.store.addHistories(ctx, tx, []historyRow{
			{corp, into.ID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryMerged, From: fmt.Sprint(from.ID), To: fmt.Sprint(into.ID),
				Reason: fmt.Sprintf("lead %d folded in (%s), engagement %+.1f", from.ID, reason, brought)}},
			{corp, from.ID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryMerged, From: fmt.Sprint(from.ID), To: fmt.Sprint(into.ID),
				Reason: fmt.Sprintf("folded into lead %d (%s)", into.ID, reason)}},
		}); err != nil {
			return nil, err
		}
	}
	if m.ID, err = s.store.recordMerge(ctx, tx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// addEngagement adds points (as of now) to a lead's engagement.
func (s *Service) addEngagement(ctx context.Context, tx *qsql.Tx, lead int64, points float64, set Settings, now time.Time) error {
	cur, err := s.store.engagement(ctx, tx, lead)
	if err != nil {
		return err
	}
	ms := qsql.Millis(now)
	eng := math.Max(0, decayed(cur.Milli, cur.At, now, set.HalfLifeDays)+points)
	return s.store.setEngagement(ctx, tx, lead, int64(math.Round(eng*1000)), ms, coolsAt(eng, ms, set))
}

// Merge merges one person into another by hand (two people a user knows to
// be one): person other is folded into person into.
func (s *Service) Merge(ctx context.Context, corp string, into, other, actor int64, reason string) (*Merge, error) {
	if into == other {
		return nil, ErrSelfMerge
	}
	if strings.TrimSpace(reason) == "" {
		return nil, apperr.Field("reason", "say why these are one person")
	}
	var m *Merge
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		live, err := s.store.mergedInto(ctx, tx, corp, []int64{into, other})
		if err != nil {
			return err
		}
		for _, p := range []int64{into, other} {
			if into, ok := live[p]; !ok {
				return ErrPersonNotFound
			} else if into != 0 {
				return apperr.Conflict("merged", fmt.Sprintf("person %d was merged into person %d; merge with that one", p, into))
			}
		}
		m, err = s.mergeTx(ctx, tx, corp, into, other, actor, "by hand: "+reason, s.now())
		return err
	})
	if errors.Is(err, errRaced) {
		return nil, ErrChanged
	}
	return m, err
}

// Unmerge undoes a merge: the identities that moved go back, the merged
// person and their lead are restored (owner, stage and history as they
// were; the lead's owner counts it open again) and the engagement it
// brought is taken off the survivor's (decayed alike since). Merges into
// the survivor made since are kept; a merge of the survivor itself into
// someone else must be undone first.
func (s *Service) Unmerge(ctx context.Context, corp string, id, actor int64) (*Merge, error) {
	var m *Merge
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		var err error
		if m, err = s.store.merge(ctx, tx, corp, id); err != nil {
			return err
		}
		if m.UndoneAt != nil {
			return ErrMergeUndone
		}
		live, err := s.store.mergedInto(ctx, tx, corp, []int64{m.SurvivorID})
		if err != nil {
			return err
		}
		if live[m.SurvivorID] != 0 {
			return ErrMergeLater
		}
		now := s.now()
		ms := qsql.Millis(now)
		if ok, err := s.store.undoMerge(ctx, tx, corp, id, actor, ms); err != nil || !ok {
			if err == nil {
				err = ErrMergeUndone
			}
			return err
		}
		if ok, err := s.store.unmarkPersonMerged(ctx, tx, corp, m.MergedID, m.SurvivorID, ms); err != nil || !ok {
			if err == nil {
				err = ErrMergeLater
			}
			return err
		}
		if err := s.store.moveIdentities(ctx, tx, corp, m.SurvivorID, m.MergedID, m.Identities); err != nil {
			return err
		}
		if m.LeadID == 0 {
			return nil
		}
		restored, err := s.store.lead(ctx, tx, corp, m.LeadID)
		if err != nil {
			return err
		}
		into := restored.MergedInto
		if ok, err := s.store.setLeadMerged(ctx, tx, corp, m.LeadID, restored.Version, 0, ms); err != nil || !ok {
			return cmpErr(err, ErrChanged)
		}
		if restored.OwnerUserID != 0 {
			if err := s.store.recountOpen(ctx, tx, corp, restored.PoolID, restored.OwnerUserID); err != nil {
				return err
			}
		}
		set, err := s.store.settings(ctx, tx, corp)
		if err != nil {
			return err
		}
		took := decayed(m.EngagementMilli, m.At, now, set.HalfLifeDays)
		if took != 0 {
			if err := s.addEngagement(ctx, tx, into, -took, set, now); err != nil {
				return err
			}
		}
		why := fmt.Sprintf("merge %d undone", m.ID)
		return s.store.addHistories(ctx, tx, []historyRow{
			{corp, into, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryUnmerged, From: fmt.Sprint(into), To: fmt.Sprint(m.LeadID),
				Reason: fmt.Sprintf("%s: lead %d restored, engagement %+.1f", why, m.LeadID, -took)}},
			{corp, m.LeadID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryUnmerged, From: fmt.Sprint(into), To: fmt.Sprint(m.LeadID), Reason: why}},
		})
	})
	if err != nil {
		return nil, err
	}
	return s.store.merge(ctx, s.db, corp, id)
}
