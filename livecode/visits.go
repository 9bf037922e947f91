package livecode

import (
	"context"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
)

// Visit is a landing-page visit to a rotating link: the staff member picked
// and their contact way.
type Visit struct {
	UserID      string
	QRCode      string
	OutOfPeriod bool
	Backup      bool
}

// Visit picks the staff member for one visit of a rotating link, by smooth
// weighted round-robin among the eligible staff (atomically in Redis, shared
// by every instance), reserving a cap slot for the visitor for a short time.
// A visitor (their cookie) holds at most one reservation: refreshing the
// page shows the same staff member and takes no second slot.
func (s *Service) Visit(ctx context.Context, c *Code, visitor string) (Visit, error) {
	now := s.now()
	day := s.calendar(c.CorpID).DayKey(now)
	var v Visit
	if inPeriod(c, now) {
		var cands []candidate
		for _, st := range s.onDuty(c, now) {
			cands = append(cands, candidate{UserID: st.UserID, Weight: st.Weight, CodeCap: st.DailyCap, StaffCap: c.Settings.StaffDailyCaps[st.UserID]})
		}
		user, err := s.pick(ctx, c, day, cands, visitor, now)
		if err != nil {
			return v, err
		}
		v.UserID = user
	} else {
		v.OutOfPeriod = true
	}
	if v.UserID == "" {
		var cands []candidate
		for _, st := range backups(c) {
			cands = append(cands, candidate{UserID: st.UserID, Weight: max(st.Weight, 1)})
		}
		user, err := s.pick(ctx, c, day, cands, visitor, now)
		if err != nil {
			return v, err
		}
		v.UserID, v.Backup = user, true
	}
	for _, st := range c.Staff {
		if st.UserID == v.UserID {
			v.QRCode = st.QRCode
		}
	}
	return v, nil
}

// visitorRetention is how long per-visitor visit records are kept.
const visitorRetention = 3 * 24 * time.Hour

// CountVisit records a landing-page visit, once per visitor, code and local
// day (user is the staff member or group shown, "" for the code itself).
// The visitor record and the count are one transaction, in the database, so
// a restart or a lost Redis never counts a visitor twice.
func (s *Service) CountVisit(ctx context.Context, c *Code, visitor, user string) error {
	day := s.calendar(c.CorpID).DayKey(s.now())
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		first, err := s.store.recordVisitor(ctx, tx, c.CorpID, c.ID, day, visitor)
		if err != nil || !first {
			return err
		}
		return s.store.bumpStats(ctx, tx, c.CorpID, c.ID, user, day, "visits", 1)
	})
}

// PruneVisitors forgets per-visitor visit records older than a few days (the
// daily counts stay).
func (s *Service) PruneVisitors(ctx context.Context) error {
	day := s.calendar("").DayKey(s.now().Add(-visitorRetention))
	return s.store.pruneVisitors(ctx, day, qsql.Millis(s.now().Add(-30*24*time.Hour)))
}
