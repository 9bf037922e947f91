package livecode

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// store is the package's only access to its tables.
type store struct{ db *qsql.DB }

type codeRow struct {
	ID          int64     `db:"id"`
	CorpID      string    `db:"corp_id"`
	Kind        string    `db:"kind"`
	Slug        string    `db:"slug"`
	Name        string    `db:"name"`
	Channel     string    `db:"channel"`
	Mode        string    `db:"mode"`
	Status      string    `db:"status"`
	Settings    qsql.JSON `db:"settings"`
	ConfigID    string    `db:"config_id"`
	QRCode      string    `db:"qr_code"`
	WeComUsers  qsql.JSON `db:"wecom_users"`
	OwnerUserID int64     `db:"owner_user_id"`
	CreatedAt   int64     `db:"created_at"`
	UpdatedAt   int64     `db:"updated_at"`
}

const codeCols = `id, corp_id, kind, slug, name, channel, mode, status, settings, config_id, qr_code, wecom_users, owner_user_id, created_at, updated_at`

type staffRow struct {
	CodeID   int64  `db:"code_id"`
	UserID   string `db:"userid"`
	Position int    `db:"position"`
	Weight   int    `db:"weight"`
	DailyCap int    `db:"daily_cap"`
	Backup   bool   `db:"is_backup"`
	State    string `db:"state"`
	ConfigID string `db:"config_id"`
	QRCode   string `db:"qr_code"`
}

func (r codeRow) code(staff []staffRow) (*Code, error) {
	c := &Code{ID: r.ID, CorpID: r.CorpID, Kind: r.Kind, Slug: r.Slug, Name: r.Name, Channel: r.Channel, Mode: r.Mode,
		Status: r.Status, ConfigID: r.ConfigID, QRCode: r.QRCode, OwnerUserID: r.OwnerUserID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Settings, &c.Settings); err != nil {
		return nil, fmt.Errorf("code %d settings: %w", r.ID, err)
	}
	_ = json.Unmarshal(r.WeComUsers, &c.WeComUsers)
	for _, s := range staff {
		c.Staff = append(c.Staff, CodeStaff{UserID: s.UserID, Weight: s.Weight, DailyCap: s.DailyCap, Backup: s.Backup,
			State: s.State, ConfigID: s.ConfigID, QRCode: s.QRCode})
	}
	return c, nil
}

func (st *store) get(ctx context.Context, corp string, id int64) (*Code, error) {
	return st.getWhere(ctx, "corp_id = ? AND id = ?", corp, id)
}

func (st *store) getBySlug(ctx context.Context, slug string) (*Code, error) {
	return st.getWhere(ctx, "slug = ?", slug)
}

func (st *store) getWhere(ctx context.Context, where string, args ...any) (*Code, error) {
	var r codeRow
	err := st.db.GetContext(ctx, &r, `SELECT `+codeCols+` FROM live_codes WHERE `+where, args...)
	if qsql.IsNoRows(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var staff []staffRow
	if err := st.db.SelectContext(ctx, &staff, `SELECT code_id, userid, position, weight, daily_cap, is_backup, state, config_id, qr_code
		FROM live_code_staff WHERE code_id = ? ORDER BY position`, r.ID); err != nil {
		return nil, err
	}
	return r.code(staff)
}

// ListFilter selects codes.
type ListFilter struct {
	CorpID  string
	Status  string
	Channel string
	Mode    string
	Owner   int64 // only this owner's codes (cs users)
	After   int64 // cursor: codes with a larger id
	Limit   int
}

func (st *store) list(ctx context.Context, f ListFilter) ([]*Code, error) {
	where := []string{"corp_id = ?", "id > ?"}
	args := []any{f.CorpID, f.After}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	} else {
		where = append(where, "status <> 'archived'")
	}
	if f.Channel != "" {
		where, args = append(where, "channel = ?"), append(args, f.Channel)
	}
	if f.Mode != "" {
		where, args = append(where, "mode = ?"), append(args, f.Mode)
	}
	if f.Owner != 0 {
		where, args = append(where, "owner_user_id = ?"), append(args, f.Owner)
	}
	args = append(args, f.Limit)
	var rows []codeRow
	if err := st.db.SelectContext(ctx, &rows, `SELECT `+codeCols+` FROM live_codes WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`, args...); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	q, qargs, _ := sqlx.In(`SELECT code_id, userid, position, weight, daily_cap, is_backup, state, config_id, qr_code FROM live_code_staff WHERE code_id IN (?) ORDER BY code_id, position`, ids)
	var staff []staffRow
	if err := st.db.SelectContext(ctx, &staff, q, qargs...); err != nil {
		return nil, err
	}
	byCode := map[int64][]staffRow{}
	for _, s := range staff {
		byCode[s.CodeID] = append(byCode[s.CodeID], s)
	}
	out := make([]*Code, 0, len(rows))
	for _, r := range rows {
		c, err := r.code(byCode[r.ID])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// save inserts (ID 0) or replaces a code and its staff in one transaction.
func (st *store) save(ctx context.Context, c *Code) error {
	settings, err := json.Marshal(c.Settings)
	if err != nil {
		return err
	}
	users, _ := json.Marshal(c.WeComUsers)
	return st.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		if c.ID == 0 {
			res, err := tx.ExecContext(ctx, `INSERT INTO live_codes (corp_id, kind, slug, name, channel, mode, status, settings, config_id, qr_code, wecom_users, owner_user_id, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.CorpID, c.Kind, c.Slug, c.Name, c.Channel, c.Mode, c.Status, string(settings),
				c.ConfigID, c.QRCode, string(users), c.OwnerUserID, c.CreatedAt, c.UpdatedAt)
			if err != nil {
				return err
			}
			if c.ID, err = res.LastInsertId(); err != nil {
				return err
			}
		} else {
			if _, err := tx.ExecContext(ctx, `UPDATE live_codes SET name = ?, channel = ?, status = ?, settings = ?, config_id = ?, qr_code = ?, wecom_users = ?, owner_user_id = ?, updated_at = ?
				WHERE id = ? AND corp_id = ?`, c.Name, c.Channel, c.Status, string(settings), c.ConfigID, c.QRCode, string(users), c.OwnerUserID, c.UpdatedAt, c.ID, c.CorpID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM live_code_staff WHERE code_id = ?`, c.ID); err != nil {
				return err
			}
		}
		for i, s := range c.Staff {
			if _, err := tx.ExecContext(ctx, `INSERT INTO live_code_staff (code_id, corp_id, userid, position, weight, daily_cap, is_backup, state, config_id, qr_code)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.CorpID, s.UserID, i, s.Weight, s.DailyCap, s.Backup, s.State, s.ConfigID, s.QRCode); err != nil {
				return err
			}
		}
		return nil
	})
}

func (st *store) setWeComUsers(ctx context.Context, id int64, users []string, now int64) error {
	b, _ := json.Marshal(users)
	_, err := st.db.ExecContext(ctx, `UPDATE live_codes SET wecom_users = ?, updated_at = ? WHERE id = ?`, string(b), now, id)
	return err
}

// countAdds counts today's counted adds (not re-adds) of a staff member
// through a code (code > 0) or through any code (code 0): the caps' figures.
func (st *store) countAdds(ctx context.Context, corp, day string, code int64, user string) (int, error) {
	var n int
	q := `SELECT COUNT(*) FROM contact_sources WHERE corp_id = ? AND day = ? AND userid = ? AND is_readd = 0`
	args := []any{corp, day, user}
	if code > 0 {
		q += ` AND code_id = ?`
		args = append(args, code)
	} else {
		q += ` AND code_id > 0`
	}
	err := st.db.GetContext(ctx, &n, q, args...)
	return n, err
}

// codeRef names a code.
type codeRef struct {
	ID     int64  `db:"id"`
	CorpID string `db:"corp_id"`
}

// reconcilable lists the codes the reconciler looks after.
func (st *store) reconcilable(ctx context.Context) ([]codeRef, error) {
	var out []codeRef
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id FROM live_codes WHERE mode IN (?, ?, ?, ?) AND status <> ? AND (config_id <> '' OR mode IN (?, ?))`,
		ModeWeComQR, ModeJoinWay, ModeLink, ModeRotating, StatusArchived, ModeJoinWay, ModeRotating)
	return out, err
}

// withStaff lists the live codes that have staff (leavers are looked for there).
func (st *store) withStaff(ctx context.Context) ([]codeRef, error) {
	var out []codeRef
	err := st.db.SelectContext(ctx, &out, `SELECT c.id, c.corp_id FROM live_codes c WHERE c.status <> ? AND EXISTS (SELECT 1 FROM live_code_staff s WHERE s.code_id = c.id)`, StatusArchived)
	return out, err
}
