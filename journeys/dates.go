package journeys

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// Entries on a lead's date field ("30 days before the renewal date, at
// 10:00") are found by day, not by scanning: once a day per entry, after
// its time in the corp's zone, the leads whose field holds the matching day
// are read from the field's day index and enrolled. Each entry's progress
// (the last day done; the day in progress and the lead id it reached) is a
// row written in the transaction of each page's enrolment, so a restart
// resumes where it was and no day enrols anyone twice. A day missed while
// no instance ran is caught up, at most catchUpDays back.

const (
	datePage    = 500
	catchUpDays = 7
)

// errDateMoved is another instance having moved an entry's progress.
var errDateMoved = errors.New("date entry moved meanwhile")

type dateProgress struct {
	DoneDay   string `db:"done_day"`
	Day       string `db:"day"`
	AfterLead int64  `db:"after_lead"`
}

type publishedAnyRow struct {
	CorpID  string `db:"corp_id"`
	ID      int64  `db:"id"`
	Version int64  `db:"version"`
}

// EnterOnDates enrols the leads whose date fields say today is their day
// in the published journeys that enter on them (cron, each minute). It
// returns how many it enrolled.
func (s *Service) EnterOnDates(ctx context.Context) (int, error) {
	var live []publishedAnyRow
	if err := s.db.SelectContext(ctx, &live, `SELECT corp_id, id, version FROM journeys WHERE status = ? ORDER BY id`, StatusPublished); err != nil {
		return 0, err
	}
	total := 0
	for _, row := range live {
		g, err := s.graph(ctx, row.ID, row.Version)
		if err != nil {
			return total, err
		}
		lj := livejourney{id: row.ID, version: row.Version, g: g}
		for i := range g.Nodes {
			n := &g.Nodes[i]
			if n.Type != NodeEntry || n.Entry == nil || n.Entry.On != "date" {
				continue
			}
			k, err := s.enterOnDate(ctx, row.CorpID, lj, n)
			total += k
			if err != nil && !errors.Is(err, errDateMoved) {
				return total, err
			}
		}
	}
	return total, nil
}

// enterOnDate brings one date entry up to now: every day after the last
// one done whose time has come.
func (s *Service) enterOnDate(ctx context.Context, corp string, lj livejourney, n *Node) (int, error) {
	loc := s.calendars.For(corp).Location()
	now := s.now().In(loc)
	today := now.Format(time.DateOnly)
	at := n.Entry.At
	if at == "" {
		at = "09:00"
	}
	h, _ := strconv.Atoi(at[:2])
	m, _ := strconv.Atoi(at[3:])
	last := today // the last day whose time has come
	if now.Before(time.Date(now.Year(), now.Month(), now.Day(), h, m, 0, 0, loc)) {
		last = addDays(today, -1)
	}
	p, err := s.dateProgress(ctx, lj.id, n.ID, addDays(today, -1))
	if err != nil {
		return 0, err
	}
	total := 0
	for p.DoneDay < last {
		day := addDays(p.DoneDay, 1)
		if floor := addDays(last, -catchUpDays); day < floor {
			day = floor // days further back are let go
		}
		var after int64
		if p.Day == day {
			after = p.AfterLead
		}
		fieldDay := addDays(day, -n.Entry.OffsetDays) // entering 30 days before: the field says day + 30
		ids, err := s.leads.LeadsOnDay(ctx, corp, n.Entry.Field, fieldDay, after, datePage)
		if err != nil {
			return total, err
		}
		next := dateProgress{DoneDay: p.DoneDay, Day: day}
		if len(ids) == 0 {
			next.DoneDay = day
		} else {
			next.AfterLead = ids[len(ids)-1]
		}
		k := 0
		err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			moved, err := moveDateProgress(ctx, tx, lj.id, n.ID, p, next, qsql.Millis(s.now()))
			if err != nil || !moved {
				return cmpErr(err, errDateMoved)
			}
			k, err = s.enrol(ctx, tx, corp, lj, n, ids, qsql.Millis(s.now()))
			return err
		})
		if err != nil {
			return total, err
		}
		total += k
		p = next
	}
	return total, nil
}

// cmpErr is err, or other when err is nil.
func cmpErr(err, other error) error {
	if err != nil {
		return err
	}
	return other
}

// dateProgress reads an entry's progress, made (as done through
// doneThrough) the first time.
func (s *Service) dateProgress(ctx context.Context, journey int64, node, doneThrough string) (dateProgress, error) {
	var p dateProgress
	err := s.db.GetContext(ctx, &p, `SELECT done_day, day, after_lead FROM journey_date_entries WHERE journey_id = ? AND node_id = ?`, journey, node)
	if !qsql.IsNoRows(err) {
		return p, err
	}
	_, err = s.db.ExecContext(ctx, s.db.InsertIgnoreRows("journey_date_entries", []string{"journey_id", "node_id", "done_day", "day", "after_lead", "updated_at"},
		[]string{"journey_id", "node_id"}, 1),
		journey, node, doneThrough, "", 0, qsql.Millis(s.now()))
	if err != nil {
		return p, err
	}
	err = s.db.GetContext(ctx, &p, `SELECT done_day, day, after_lead FROM journey_date_entries WHERE journey_id = ? AND node_id = ?`, journey, node)
	return p, err
}

// moveDateProgress moves an entry's progress from was to next, if no one
// moved it meanwhile.
func moveDateProgress(ctx context.Context, tx sqlx.ExecerContext, journey int64, node string, was, next dateProgress, now int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE journey_date_entries SET done_day = ?, day = ?, after_lead = ?, updated_at = ?
		WHERE journey_id = ? AND node_id = ? AND done_day = ? AND day = ? AND after_lead = ?`,
		next.DoneDay, next.Day, next.AfterLead, now, journey, node, was.DoneDay, was.Day, was.AfterLead)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// addDays moves a day (2026-12-31) by n days.
func addDays(day string, n int) string {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return day
	}
	return t.AddDate(0, 0, n).Format(time.DateOnly)
}
