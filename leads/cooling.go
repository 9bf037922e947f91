package leads

import (
	"context"
	"fmt"

	qsql "github.com/qiflow/qiflow/sql"
)

// Cooling: engagement decays, so an MQL left alone falls below the
// threshold at a moment known when its score last changed (cools_at, kept
// by setEngagement). Cool finds the leads whose moment has come, in index
// order, and never demotes silently: an MQL is marked cooling, with the
// engagement in its history, and the corp's setting says whether it also
// goes back to nurture (and its pool). A lead that scores again is no
// longer cooling and gets a new moment.

// HistoryCooling is an MQL whose engagement decayed below the threshold.
const HistoryCooling = "cooling"

// coolingBatch is how many due leads one pass takes.
const coolingBatch = 500

// Cool handles the leads whose engagement has decayed below the threshold
// by now (cron: every minute, once across instances). It returns how many
// it marked.
func (s *Service) Cool(ctx context.Context) (int, error) {
	now := s.now()
	ms := qsql.Millis(now)
	due, err := s.store.coolingDue(ctx, ms, coolingBatch)
	if err != nil {
		return 0, err
	}
	marked := 0
	for _, d := range due {
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			l, err := s.store.lead(ctx, tx, d.CorpID, d.ID)
			if err != nil {
				return err
			}
			set, err := s.store.settings(ctx, tx, d.CorpID)
			if err != nil {
				return err
			}
			eng := decayed(l.EngagementMilli, l.EngagementAt, now, set.HalfLifeDays)
			if eng > float64(set.MQLThreshold)+0.001 {
				// Not below yet (the threshold or half-life changed since): the moment moves.
				return s.store.setCoolsAt(ctx, tx, d.CorpID, d.ID, &d.CoolsAt, coolsAt(float64(l.EngagementMilli)/1000, l.EngagementAt, set))
			}
			if l.Stage != StageMQL || l.MergedInto != 0 {
				return s.store.setCoolsAt(ctx, tx, d.CorpID, d.ID, &d.CoolsAt, nil) // only MQLs cool; others just lose the moment
			}
			to, owner := l.Stage, l.OwnerUserID
			if set.Cooling == CoolingNurture {
				to, owner = StageNurture, 0
			}
			ok, err := s.store.markCooling(ctx, tx, d.CorpID, d.ID, l.Version, to, owner, ms)
			if err != nil || !ok {
				return err // changed meanwhile: the next pass reads it again
			}
			if l.OwnerUserID != 0 && owner == 0 {
				if err := s.store.uncountOpen(ctx, tx, d.CorpID, l.PoolID, l.OwnerUserID); err != nil {
					return err
				}
				if err := s.store.closeSLAs(ctx, tx, d.ID, SLAClosed, ms); err != nil {
					return err
				}
			}
			why := fmt.Sprintf("engagement %.1f decayed below the MQL threshold %d", eng, set.MQLThreshold)
			h := []historyRow{{d.CorpID, d.ID, HistoryEntry{At: ms, Kind: HistoryCooling, From: fmt.Sprintf("%.1f", eng), To: fmt.Sprint(set.MQLThreshold), Reason: why}}}
			if to != l.Stage {
				h = append(h, historyRow{d.CorpID, d.ID, HistoryEntry{At: ms, Kind: HistoryStage, From: l.Stage, To: to, Reason: "cooled: " + why}})
			}
			marked++
			return s.store.addHistories(ctx, tx, h)
		})
		if err != nil {
			return marked, err
		}
	}
	return marked, nil
}
