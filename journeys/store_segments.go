package journeys

import (
	"context"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// This file holds the statements of segments and their members.

const segmentCols = `id, corp_id, name, kind, filter, building_filter, version, built_version, member_count, built_at, created_at, updated_at`

func insertSegment(ctx context.Context, tx *qsql.Tx, g Segment, now int64) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO segments (corp_id, name, kind, filter, version, built_version, member_count, created_at, updated_at)
		VALUES (?, ?, ?, ?, 1, 0, 0, ?, ?)`, g.CorpID, g.Name, g.Kind, g.FilterJSON, now, now)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func updateSegment(ctx context.Context, tx *qsql.Tx, g Segment, newVersion bool, now int64) error {
	bump := 0
	if newVersion {
		bump = 1
	}
	res, err := tx.ExecContext(ctx, `UPDATE segments SET name = ?, filter = ?, version = version + ?, updated_at = ? WHERE corp_id = ? AND id = ?`,
		g.Name, g.FilterJSON, bump, now, g.CorpID, g.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrSegmentNotFound
	}
	return nil
}

func readSegment(ctx context.Context, db sqlx.QueryerContext, corp string, id int64) (*Segment, error) {
	var g Segment
	err := sqlx.GetContext(ctx, db, &g, `SELECT `+segmentCols+` FROM segments WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrSegmentNotFound
	}
	return &g, err
}

// readSegmentsOf reads the segments of corps, by corp and id.
func readSegmentsOf(ctx context.Context, db sqlx.QueryerContext, corps []string) ([]Segment, error) {
	q, args, err := sqlx.In(`SELECT `+segmentCols+` FROM segments WHERE corp_id IN (?) ORDER BY corp_id, id`, corps)
	if err != nil {
		return nil, err
	}
	out := []Segment{}
	err = sqlx.SelectContext(ctx, db, &out, q, args...)
	return out, err
}

const memberCols = `lead_id, member, pinned, entered_at, exited_at, check_at`

// readMembers reads a segment's rows of leads in (after, last].
func readMembers(ctx context.Context, tx *qsql.Tx, seg, after, last int64) (map[int64]Member, error) {
	var rows []Member
	if err := tx.SelectContext(ctx, &rows, `SELECT `+memberCols+` FROM segment_members WHERE segment_id = ? AND lead_id > ? AND lead_id <= ?`,
		seg, after, last); err != nil {
		return nil, err
	}
	return byLead(rows), nil
}

// readMembersOf reads a segment's rows of the leads among ids.
func readMembersOf(ctx context.Context, tx *qsql.Tx, seg int64, ids []int64) (map[int64]Member, error) {
	q, args, err := sqlx.In(`SELECT `+memberCols+` FROM segment_members WHERE segment_id = ? AND lead_id IN (?)`, seg, ids)
	if err != nil {
		return nil, err
	}
	var rows []Member
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(q), args...); err != nil {
		return nil, err
	}
	return byLead(rows), nil
}

func byLead(rows []Member) map[int64]Member {
	out := make(map[int64]Member, len(rows))
	for _, r := range rows {
		out[r.Lead] = r
	}
	return out
}

var memberWriteCols = []string{"segment_id", "lead_id", "corp_id", "member", "pinned", "entered_at", "exited_at", "check_at"}

// writeMembers stores whole member rows and moves the count by delta.
func writeMembers(ctx context.Context, db *qsql.DB, tx *qsql.Tx, g *Segment, rows []Member, delta, now int64) error {
	const chunk = 500
	for len(rows) > 0 {
		n := min(chunk, len(rows))
		args := make([]any, 0, n*len(memberWriteCols))
		for _, m := range rows[:n] {
			args = append(args, g.ID, m.Lead, g.CorpID, m.Member, m.Pinned, m.EnteredAt, m.ExitedAt, m.CheckAt)
		}
		q := db.UpsertRows("segment_members", memberWriteCols, []string{"segment_id", "lead_id"}, []string{"member", "pinned", "entered_at", "exited_at", "check_at"}, n)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	if delta == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE segments SET member_count = member_count + ? WHERE id = ?`, delta, g.ID)
	return err
}

func markBuilt(ctx context.Context, tx *qsql.Tx, seg, version, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE segments SET built_version = ?, built_at = ? WHERE id = ? AND built_version < ?`, version, now, seg, version)
	return err
}

type dueCheck struct {
	Segment int64  `db:"segment_id"`
	Lead    int64  `db:"lead_id"`
	Corp    string `db:"corp_id"`
	CheckAt int64  `db:"check_at"`
}

// claimDueChecks takes up to limit rows due by now: each is cleared where
// it still holds the time read, and only the rows this call cleared are
// returned (another instance's claim of the same row changes nothing here).
func claimDueChecks(ctx context.Context, db *qsql.DB, now int64, limit int) ([]dueCheck, error) {
	var cands []dueCheck
	if err := db.SelectContext(ctx, &cands, `SELECT segment_id, lead_id, corp_id, check_at FROM segment_members
		WHERE check_at <= ? ORDER BY check_at LIMIT ?`, now, limit); err != nil || len(cands) == 0 {
		return nil, err
	}
	var out []dueCheck
	err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
		out = out[:0]
		for _, c := range cands {
			res, err := tx.ExecContext(ctx, `UPDATE segment_members SET check_at = NULL WHERE segment_id = ? AND lead_id = ? AND check_at = ?`,
				c.Segment, c.Lead, c.CheckAt)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				out = append(out, c)
			}
		}
		return nil
	})
	return out, err
}

func listMembers(ctx context.Context, db *qsql.DB, seg, after int64, limit int) ([]Member, error) {
	out := []Member{}
	err := db.SelectContext(ctx, &out, `SELECT `+memberCols+` FROM segment_members WHERE segment_id = ? AND member = 1 AND lead_id > ? ORDER BY lead_id LIMIT ?`,
		seg, after, limit)
	return out, err
}

func isMember(ctx context.Context, db *qsql.DB, seg, lead int64) (bool, error) {
	var n int
	err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM segment_members WHERE segment_id = ? AND lead_id = ? AND member = 1`, seg, lead)
	return n > 0, err
}

// stageSegment records a changed filter as the version to build; the
// serving filter stays.
func stageSegment(ctx context.Context, tx *qsql.Tx, g Segment, now int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE segments SET name = ?, building_filter = ?, version = version + 1, updated_at = ? WHERE corp_id = ? AND id = ?`,
		g.Name, g.FilterJSON, now, g.CorpID, g.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrSegmentNotFound
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM segment_builds WHERE segment_id = ?`, g.ID)
	return err
}

// writeBuilds stores a page of the building version's verdicts.
func writeBuilds(ctx context.Context, db *qsql.DB, tx *qsql.Tx, seg int64, vs []verdict) error {
	cols := []string{"segment_id", "lead_id", "member", "check_at"}
	var args []any
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, db.UpsertRows("segment_builds", cols, []string{"segment_id", "lead_id"}, cols[2:], n), args...)
		args, n = args[:0], 0
		return err
	}
	for _, v := range vs {
		if !v.match && v.checkAt == 0 {
			continue
		}
		var check any
		if v.checkAt > 0 {
			check = v.checkAt
		}
		args = append(args, seg, v.lead, v.match, check)
		if n++; n == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// swapPage is the next leads after after that are members now or in the
// built version (at most limit, in order), with the built verdicts.
func swapPage(ctx context.Context, db *qsql.DB, seg, after int64, limit int) ([]int64, map[int64]verdict, error) {
	var ids []int64
	// Each side is limited on its own (a union of two unbounded ranges
	// would read everything after the cursor for every page).
	if err := db.SelectContext(ctx, &ids, `SELECT lead_id FROM (SELECT lead_id FROM segment_members WHERE segment_id = ? AND lead_id > ? ORDER BY lead_id LIMIT ?) m
		UNION SELECT lead_id FROM (SELECT lead_id FROM segment_builds WHERE segment_id = ? AND lead_id > ? ORDER BY lead_id LIMIT ?) b
		ORDER BY lead_id LIMIT ?`, seg, after, limit, seg, after, limit, limit); err != nil || len(ids) == 0 {
		return nil, nil, err
	}
	var rows []struct {
		Lead    int64  `db:"lead_id"`
		Member  bool   `db:"member"`
		CheckAt *int64 `db:"check_at"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT lead_id, member, check_at FROM segment_builds WHERE segment_id = ? AND lead_id > ? AND lead_id <= ?`,
		seg, after, ids[len(ids)-1]); err != nil {
		return nil, nil, err
	}
	built := make(map[int64]verdict, len(rows))
	for _, r := range rows {
		v := verdict{lead: r.Lead, match: r.Member}
		if r.CheckAt != nil {
			v.checkAt = *r.CheckAt
		}
		built[r.Lead] = v
	}
	return ids, built, nil
}

// markDirty records leads evaluated while a version builds.
func markDirty(ctx context.Context, db *qsql.DB, tx *qsql.Tx, seg int64, leads []int64) error {
	if len(leads) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(leads))
	for _, l := range leads {
		args = append(args, seg, l)
	}
	_, err := tx.ExecContext(ctx, db.InsertIgnoreRows("segment_dirty", []string{"segment_id", "lead_id"}, []string{"segment_id", "lead_id"}, len(leads)), args...)
	return err
}

// dirtyAmong is which of ids changed while the version built.
func dirtyAmong(ctx context.Context, db *qsql.DB, seg int64, ids []int64) (map[int64]bool, error) {
	q, args, err := sqlx.In(`SELECT lead_id FROM segment_dirty WHERE segment_id = ? AND lead_id IN (?)`, seg, ids)
	if err != nil {
		return nil, err
	}
	var rows []int64
	if err := db.SelectContext(ctx, &rows, db.Rebind(q), args...); err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(rows))
	for _, r := range rows {
		out[r] = true
	}
	return out, nil
}

// swapIn makes the built filter the serving one (the swap's first step:
// from here incremental updates judge by it).
func swapIn(ctx context.Context, tx *qsql.Tx, seg int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE segments SET filter = building_filter WHERE id = ? AND building_filter IS NOT NULL`, seg)
	return err
}

// finishSwap ends a version's build: nothing building, the build's rows gone.
func finishSwap(ctx context.Context, tx *qsql.Tx, seg, version, now int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE segments SET building_filter = NULL WHERE id = ? AND version = ?`, seg, version); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM segment_builds WHERE segment_id = ?`, seg); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM segment_dirty WHERE segment_id = ?`, seg); err != nil {
		return err
	}
	return markBuilt(ctx, tx, seg, version, now)
}
