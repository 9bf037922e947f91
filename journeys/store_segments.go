package journeys

import (
	"context"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// This file holds the statements of segments and their members.

const segmentCols = `id, corp_id, name, kind, filter, version, built_version, member_count, built_at, created_at, updated_at`

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

func readSegments(ctx context.Context, db *qsql.DB, corp string) ([]Segment, error) {
	out := []Segment{}
	err := db.SelectContext(ctx, &out, `SELECT `+segmentCols+` FROM segments WHERE corp_id = ? ORDER BY id`, corp)
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
