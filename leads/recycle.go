package leads

import (
	"context"
	"slices"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// History kinds of follow-ups and recycling.
const (
	HistoryTouch    = "touch"    // a follow-up by the owner: call, note, message, task
	HistoryRecycled = "recycled" // back to the pool after working days without one
)

// TouchKinds are the follow-ups an owner logs.
var TouchKinds = []string{"call", "note", "message", "task"}

// Touch logs a follow-up on the owner's lead: it is in the history and
// resets the pool's recycle clock.
func (s *Service) Touch(ctx context.Context, corp string, leadID, user int64, kind, text string) (*Lead, error) {
	if !slices.Contains(TouchKinds, kind) {
		return nil, apperr.Field("kind", "is one of "+strings.Join(TouchKinds, ", "))
	}
	ms := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if _, err := s.store.lead(ctx, tx, corp, leadID); err != nil {
			return err
		}
		ok, err := s.touchTx(ctx, tx, corp, leadID, user, kind, text, ms)
		if err == nil && !ok {
			err = ErrNotOwner
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.read(ctx, corp, leadID)
}

// touchTx records user's follow-up on their lead in tx (false: the lead is
// not theirs): it meets the first-touch SLA and holds off recycling.
func (s *Service) touchTx(ctx context.Context, tx *qsql.Tx, corp string, leadID, user int64, kind, text string, ms int64) (bool, error) {
	ok, err := s.store.touch(ctx, tx, corp, leadID, user, ms)
	if err != nil || !ok {
		return false, err
	}
	if err := s.store.meetSLAs(ctx, tx, leadID, user, SLAFirstTouch, ms); err != nil {
		return false, err
	}
	return true, s.store.addHistory(ctx, tx, corp, leadID, HistoryEntry{At: ms, ActorUserID: user, Kind: HistoryTouch, To: kind, Reason: strings.TrimSpace(text)})
}

// Recycle returns to their pools the claimed leads whose owner logged no
// follow-up for the pool's recycle_days working days (the corp's calendar:
// weekends, holidays and make-up days). Each return re-checks, in its own
// conditional update, that the lead still has that owner and no newer
// follow-up, so a claim, release or touch meanwhile wins. Run by cron.
func (s *Service) Recycle(ctx context.Context) (int, error) {
	now := s.now()
	ms := qsql.Millis(now)
	stale, err := s.store.staleLeads(ctx, ms, 1000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range stale {
		days := l.days()
		if days == 0 || now.Before(s.calendars.For(l.CorpID).WorkdaysAfter(qsql.FromMillis(l.LastTouchAt), days)) {
			continue
		}
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			ok, err := s.store.recycle(ctx, tx, l, ms)
			if err != nil || !ok {
				return err
			}
			n++
			if err := s.store.uncountOpen(ctx, tx, l.CorpID, l.PoolID, l.Owner); err != nil {
				return err
			}
			if err := s.store.closeSLAs(ctx, tx, l.ID, SLAClosed, ms); err != nil {
				return err
			}
			return s.store.addHistory(ctx, tx, l.CorpID, l.ID, HistoryEntry{At: ms, Kind: HistoryRecycled, From: itoa(l.Owner),
				Reason: "no follow-up for " + itoa(int64(days)) + " working days"})
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
