package livecode

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// store is the package's only access to its tables; every SQL statement of
// livecode is in this file. Dialect differences stay in package sql.
type store struct{ db *qsql.DB }

// execer and queryer let a statement run on the database or inside a transaction.
type (
	execer  = sqlx.ExecerContext
	queryer = sqlx.QueryerContext
)

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
	Version     int64     `db:"version"`
	CreatedAt   int64     `db:"created_at"`
	UpdatedAt   int64     `db:"updated_at"`
}

const codeCols = `id, corp_id, kind, slug, name, channel, mode, status, settings, config_id, qr_code, wecom_users, owner_user_id, version, created_at, updated_at`

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

const staffCols = `code_id, userid, position, weight, daily_cap, is_backup, state, config_id, qr_code`

func (r codeRow) code(staff []staffRow) (*Code, error) {
	c := &Code{ID: r.ID, CorpID: r.CorpID, Kind: r.Kind, Slug: r.Slug, Name: r.Name, Channel: r.Channel, Mode: r.Mode,
		Status: r.Status, ConfigID: r.ConfigID, QRCode: r.QRCode, OwnerUserID: r.OwnerUserID, Version: r.Version,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Settings, &c.Settings); err != nil {
		return nil, fmt.Errorf("code %d settings: %w", r.ID, err)
	}
	if len(r.WeComUsers) > 0 {
		if err := json.Unmarshal(r.WeComUsers, &c.WeComUsers); err != nil {
			return nil, fmt.Errorf("code %d wecom_users: %w", r.ID, err)
		}
	}
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
	if err := st.db.SelectContext(ctx, &staff, `SELECT `+staffCols+` FROM live_code_staff WHERE code_id = ? ORDER BY position`, r.ID); err != nil {
		return nil, err
	}
	return r.code(staff)
}

// codesByID loads the corp's codes with these ids (without their staff),
// by id: one query for a page of landing links.
func (st *store) codesByID(ctx context.Context, corp string, ids []int64) (map[int64]*Code, error) {
	q, args, err := sqlx.In(`SELECT `+codeCols+` FROM live_codes WHERE corp_id = ? AND id IN (?)`, corp, ids)
	if err != nil {
		return nil, err
	}
	var rows []codeRow
	if err := st.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := make(map[int64]*Code, len(rows))
	for _, r := range rows {
		c, err := r.code(nil)
		if err != nil {
			return nil, err
		}
		out[c.ID] = c
	}
	return out, nil
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
	q, qargs, err := sqlx.In(`SELECT `+staffCols+` FROM live_code_staff WHERE code_id IN (?) ORDER BY code_id, position`, ids)
	if err != nil {
		return nil, err
	}
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

func codeJSON(c *Code) (settings, users string, err error) {
	s, err := json.Marshal(c.Settings)
	if err != nil {
		return "", "", err
	}
	u, err := json.Marshal(c.WeComUsers)
	if err != nil {
		return "", "", err
	}
	return string(s), string(u), nil
}

// insert stores a new code (version 1) and its staff. It is not due for a
// reconcile until an update says so.
func (st *store) insert(ctx context.Context, c *Code) error {
	settings, users, err := codeJSON(c)
	if err != nil {
		return err
	}
	return st.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO live_codes (corp_id, kind, slug, name, channel, mode, status, settings, config_id, qr_code, wecom_users, owner_user_id, version, reconcile_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, NULL, ?, ?)`, c.CorpID, c.Kind, c.Slug, c.Name, c.Channel, c.Mode, c.Status, settings,
			c.ConfigID, c.QRCode, users, c.OwnerUserID, c.CreatedAt, c.UpdatedAt)
		if err != nil {
			return err
		}
		if c.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		c.Version = 1
		return st.writeStaff(ctx, tx, c)
	})
}

// update replaces a code and its staff, provided the stored version is
// expected (ErrVersion otherwise), bumps the version, re-indexes its groups
// and makes it due for a reconcile: every edit is an input change.
func (st *store) update(ctx context.Context, c *Code, expected int64) error {
	settings, users, err := codeJSON(c)
	if err != nil {
		return err
	}
	return st.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE live_codes SET name = ?, channel = ?, status = ?, settings = ?, config_id = ?, qr_code = ?, wecom_users = ?,
			owner_user_id = ?, updated_at = ?, version = version + 1 WHERE corp_id = ? AND id = ? AND version = ?`,
			c.Name, c.Channel, c.Status, settings, c.ConfigID, c.QRCode, users, c.OwnerUserID, c.UpdatedAt, c.CorpID, c.ID, expected)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var one int
			if err := tx.GetContext(ctx, &one, `SELECT 1 FROM live_codes WHERE corp_id = ? AND id = ?`, c.CorpID, c.ID); qsql.IsNoRows(err) {
				return ErrNotFound
			} else if err != nil {
				return err
			}
			return ErrVersion
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM live_code_staff WHERE code_id = ?`, c.ID); err != nil {
			return err
		}
		if err := st.writeStaff(ctx, tx, c); err != nil {
			return err
		}
		if err := st.writeGroups(ctx, tx, c); err != nil {
			return err
		}
		c.Version = expected + 1
		return st.triggerReconcile(ctx, tx, c.CorpID, []int64{c.ID}, c.UpdatedAt)
	})
}

func (st *store) writeStaff(ctx context.Context, tx *qsql.Tx, c *Code) error {
	for i, s := range c.Staff {
		if _, err := tx.ExecContext(ctx, `INSERT INTO live_code_staff (code_id, corp_id, userid, position, weight, daily_cap, is_backup, state, config_id, qr_code)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.CorpID, s.UserID, i, s.Weight, s.DailyCap, s.Backup, s.State, s.ConfigID, s.QRCode); err != nil {
			return err
		}
	}
	return nil
}

// saveWays records which WeCom objects a code still holds (the reconciler's
// bookkeeping after deleting an archived code's ways; not an edit, so the
// version stays).
func (st *store) saveWays(ctx context.Context, c *Code) error {
	settings, _, err := codeJSON(c)
	if err != nil {
		return err
	}
	return st.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE live_codes SET config_id = ?, settings = ? WHERE corp_id = ? AND id = ?`,
			c.ConfigID, settings, c.CorpID, c.ID); err != nil {
			return err
		}
		for _, s := range c.Staff {
			if _, err := tx.ExecContext(ctx, `UPDATE live_code_staff SET config_id = ? WHERE code_id = ? AND userid = ?`, s.ConfigID, c.ID, s.UserID); err != nil {
				return err
			}
		}
		return nil
	})
}

// setWeComUsers records the users (or chats) last set on the code's WeCom
// way: reconciler bookkeeping, so neither the version nor updated_at moves.
func (st *store) setWeComUsers(ctx context.Context, id int64, users []string, _ int64) error {
	b, err := json.Marshal(users)
	if err != nil {
		return err
	}
	_, err = st.db.ExecContext(ctx, `UPDATE live_codes SET wecom_users = ? WHERE id = ?`, string(b), id)
	return err
}

// deleteCode removes a code whose creation failed.
func (st *store) deleteCode(ctx context.Context, corp string, id int64) error {
	return st.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for _, q := range []string{
			`DELETE FROM live_code_groups WHERE corp_id = ? AND code_id = ?`,
			`DELETE FROM live_code_staff WHERE corp_id = ? AND code_id = ?`,
			`DELETE FROM live_codes WHERE corp_id = ? AND id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, corp, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// codeRef names a code.
type codeRef struct {
	ID     int64  `db:"id"`
	CorpID string `db:"corp_id"`
}

// triggerReconcile makes codes due now (keeping an earlier due time) and
// bumps their sequence, so a reconcile running meanwhile knows to run again.
func (st *store) triggerReconcile(ctx context.Context, ex execer, corp string, ids []int64, now int64) error {
	if len(ids) == 0 {
		return nil
	}
	q, args, err := sqlx.In(`UPDATE live_codes SET reconcile_seq = reconcile_seq + 1,
		reconcile_at = CASE WHEN reconcile_at IS NOT NULL AND reconcile_at < ? THEN reconcile_at ELSE ? END
		WHERE corp_id = ? AND id IN (?)`, now, now, corp, ids)
	if err != nil {
		return err
	}
	_, err = ex.ExecContext(ctx, q, args...)
	return err
}

// claimReconcile takes a due code's reconcile lease with a conditional
// update (due, and no live lease) and reads back whether this token won.
func (st *store) claimReconcile(ctx context.Context, id int64, token string, now, leaseUntil int64) (reconcileClaim, bool, error) {
	var cl reconcileClaim
	res, err := st.db.ExecContext(ctx, `UPDATE live_codes SET reconcile_token = ?, reconcile_lease = ?
		WHERE id = ? AND reconcile_at IS NOT NULL AND reconcile_at <= ? AND (reconcile_token = '' OR reconcile_lease < ?)`, token, leaseUntil, id, now, now)
	if err != nil {
		return cl, false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return cl, false, err
	}
	err = st.db.GetContext(ctx, &cl, `SELECT reconcile_token, reconcile_seq, drift_at, skip_applied FROM live_codes WHERE id = ?`, id)
	if err != nil {
		return cl, false, err
	}
	return cl, cl.Token == token, nil
}

// finishReconcile releases the lease (only if still ours) and schedules the
// next run: now if a trigger arrived during this one, else at (NULL: never).
func (st *store) finishReconcile(ctx context.Context, id int64, cl reconcileClaim, at *int64, now int64) error {
	_, err := st.db.ExecContext(ctx, `UPDATE live_codes SET reconcile_token = '', reconcile_lease = 0, drift_at = ?, skip_applied = ?,
		reconcile_at = CASE WHEN reconcile_seq <> ? THEN ? ELSE ? END WHERE id = ? AND reconcile_token = ?`,
		cl.DriftAt, cl.SkipApplied, cl.Seq, now, at, id, cl.Token)
	return err
}

// reconcileState says whether a code's reconcile is leased and whether it is due.
func (st *store) reconcileState(ctx context.Context, id, now int64) (leased, due bool, err error) {
	var r struct {
		Token string `db:"reconcile_token"`
		Lease int64  `db:"reconcile_lease"`
		At    *int64 `db:"reconcile_at"`
	}
	err = st.db.GetContext(ctx, &r, `SELECT reconcile_token, reconcile_lease, reconcile_at FROM live_codes WHERE id = ?`, id)
	if qsql.IsNoRows(err) {
		return false, false, ErrNotFound
	}
	return r.Token != "" && r.Lease >= now, r.At != nil && *r.At <= now, err
}

// dueReconciles lists codes due and not leased: a read, so an idle
// reconciler never takes a write lock.
func (st *store) dueReconciles(ctx context.Context, now int64, limit int) ([]codeRef, error) {
	var out []codeRef
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id FROM live_codes WHERE reconcile_at IS NOT NULL AND reconcile_at <= ?
		AND (reconcile_token = '' OR reconcile_lease < ?) ORDER BY reconcile_at LIMIT ?`, now, now, limit)
	return out, err
}

// reconcilable lists the codes with a WeCom side to keep in line.
func (st *store) reconcilable(ctx context.Context) ([]codeRef, error) {
	var out []codeRef
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id FROM live_codes WHERE mode IN (?, ?, ?, ?) AND status <> ? ORDER BY id`,
		ModeWeComQR, ModeJoinWay, ModeLink, ModeRotating, StatusArchived)
	return out, err
}

// withStaff lists the live codes that have staff (leavers are looked for there).
func (st *store) withStaff(ctx context.Context) ([]codeRef, error) {
	var out []codeRef
	err := st.db.SelectContext(ctx, &out, `SELECT c.id, c.corp_id FROM live_codes c WHERE c.status <> ?
		AND EXISTS (SELECT 1 FROM live_code_staff s WHERE s.code_id = c.id)`, StatusArchived)
	return out, err
}

// codesWithStaff lists the corp's non-archived WeCom-QR and link codes that
// list a staff member: the codes whose WeCom side an add may change (caps).
func (st *store) codesWithStaff(ctx context.Context, q queryer, corp, user string) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, q, &ids, `SELECT DISTINCT c.id FROM live_codes c JOIN live_code_staff s ON s.code_id = c.id
		WHERE c.corp_id = ? AND s.userid = ? AND c.mode IN (?, ?) AND c.status <> ?`, corp, user, ModeWeComQR, ModeLink, StatusArchived)
	return ids, err
}

// writeGroups indexes a group code's chats (listed, and currently on its
// join way), so a chat event finds its codes with one lookup.
func (st *store) writeGroups(ctx context.Context, tx *qsql.Tx, c *Code) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM live_code_groups WHERE corp_id = ? AND code_id = ?`, c.CorpID, c.ID); err != nil {
		return err
	}
	if c.Mode != ModeJoinWay || c.Status == StatusArchived {
		return nil
	}
	seen := map[string]bool{}
	chats := make([]string, 0, len(c.Settings.Groups))
	for _, g := range c.Settings.Groups {
		chats = append(chats, g.ChatID)
	}
	chats = append(chats, c.WeComUsers...)
	q := st.db.InsertIgnoreRows("live_code_groups", []string{"corp_id", "chat_id", "code_id"}, []string{"corp_id", "chat_id", "code_id"}, 1)
	for _, chat := range chats {
		if chat == "" || seen[chat] {
			continue
		}
		seen[chat] = true
		if _, err := tx.ExecContext(ctx, q, c.CorpID, chat, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// indexGroups re-indexes a group code's chats.
func (st *store) indexGroups(ctx context.Context, c *Code) error {
	return st.db.WriteTx(ctx, func(tx *qsql.Tx) error { return st.writeGroups(ctx, tx, c) })
}

// codesOfChat lists the group codes that use a chat.
func (st *store) codesOfChat(ctx context.Context, corp, chat string) ([]int64, error) {
	var ids []int64
	err := st.db.SelectContext(ctx, &ids, `SELECT code_id FROM live_code_groups WHERE corp_id = ? AND chat_id = ? ORDER BY code_id`, corp, chat)
	return ids, err
}

// insertOnce inserts a row unless its key exists; it reports whether it did.
func (st *store) insertOnce(ctx context.Context, ex execer, table string, cols, key []string, args ...any) (bool, error) {
	res, err := ex.ExecContext(ctx, st.db.InsertIgnoreRows(table, cols, key, 1), args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// applyOnce records an effect; it reports whether this call recorded it
// (false: it was recorded before, by this or another instance).
func (st *store) applyOnce(ctx context.Context, ex execer, corp, key string, now int64) (bool, error) {
	return st.insertOnce(ctx, ex, "livecode_effects", []string{"corp_id", "effect_key", "created_at"}, []string{"corp_id", "effect_key"}, corp, key, now)
}

// recordVisitor records a visitor of a code on a day; false if already recorded.
func (st *store) recordVisitor(ctx context.Context, ex execer, corp string, code int64, day, visitor string) (bool, error) {
	cols := []string{"corp_id", "code_id", "day", "visitor"}
	return st.insertOnce(ctx, ex, "live_code_visitors", cols, cols, corp, code, day, visitor)
}

// pruneVisitors forgets visitor records before day and effects recorded before effectsBefore.
func (st *store) pruneVisitors(ctx context.Context, day string, effectsBefore int64) error {
	if _, err := st.db.ExecContext(ctx, `DELETE FROM live_code_visitors WHERE day < ?`, day); err != nil {
		return err
	}
	_, err := st.db.ExecContext(ctx, `DELETE FROM livecode_effects WHERE created_at < ?`, effectsBefore)
	return err
}

// Statistics: a transaction that changes a counter appends the change to
// live_code_stats_log (no writer waits on a hot row held by another
// transaction until it commits); FoldStats moves the changes into
// live_code_stats every second; readers read statsSource, both together,
// so a count is exact the moment its transaction commits.

// statsFieldList is the counters, in column order.
var statsFieldList = []string{"visits", "adds", "readds", "lost_customer", "lost_staff", "welcome_sent", "welcome_missed"}

var statsFields = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range statsFieldList {
		m[f] = true
	}
	return m
}()

var statsKeyCols = []string{"corp_id", "code_id", "userid", "day"}

// statsSource is the statistics as readers see them: folded and pending.
var statsSource = func() string {
	cols := strings.Join(append(append([]string{}, statsKeyCols...), statsFieldList...), ", ")
	return "(SELECT " + cols + " FROM live_code_stats UNION ALL SELECT " + cols + " FROM live_code_stats_log)"
}()

// bumpStats adds n to one counter of a (code, staff, day) statistics row.
func (st *store) bumpStats(ctx context.Context, ex execer, corp string, code int64, user, day, field string, n int) error {
	b := statsBatch{}
	b.add(corp, code, user, day, field, n)
	return st.applyStats(ctx, ex, b)
}

// statsBatch sums counter changes of a transaction, to be appended at once
// (applyStats).
type statsBatch map[statsKey]map[string]int

type statsKey struct {
	Corp string
	Code int64
	User string
	Day  string
}

func (b statsBatch) add(corp string, code int64, user, day, field string, n int) {
	k := statsKey{corp, code, user, day}
	if b[k] == nil {
		b[k] = map[string]int{}
	}
	b[k][field] += n
}

// applyStats appends a batch's counter changes to the log, one row per
// statistics row, in one statement.
func (st *store) applyStats(ctx context.Context, ex execer, b statsBatch) error {
	if len(b) == 0 {
		return nil
	}
	cols := append(append([]string{}, statsKeyCols...), statsFieldList...)
	rows := make([]string, 0, len(b))
	args := make([]any, 0, len(b)*len(cols))
	for k, fields := range b {
		for f := range fields {
			if !statsFields[f] {
				return fmt.Errorf("unknown stats field %q", f)
			}
		}
		rows = append(rows, "("+strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",")+")")
		args = append(args, k.Corp, k.Code, k.User, k.Day)
		for _, f := range statsFieldList {
			args = append(args, fields[f])
		}
	}
	_, err := ex.ExecContext(ctx, "INSERT INTO live_code_stats_log ("+strings.Join(cols, ",")+") VALUES "+strings.Join(rows, ","), args...)
	return err
}

// statsLogRow is a pending counter change.
type statsLogRow struct {
	ID            int64  `db:"id"`
	Corp          string `db:"corp_id"`
	Code          int64  `db:"code_id"`
	User          string `db:"userid"`
	Day           string `db:"day"`
	Visits        int    `db:"visits"`
	Adds          int    `db:"adds"`
	ReAdds        int    `db:"readds"`
	LostCustomer  int    `db:"lost_customer"`
	LostStaff     int    `db:"lost_staff"`
	WelcomeSent   int    `db:"welcome_sent"`
	WelcomeMissed int    `db:"welcome_missed"`
}

func (r statsLogRow) values() []int {
	return []int{r.Visits, r.Adds, r.ReAdds, r.LostCustomer, r.LostStaff, r.WelcomeSent, r.WelcomeMissed}
}

// foldStats moves up to limit pending changes into live_code_stats and
// returns how many it moved. Instances fold side by side safely: the
// changes read are deleted by primary key in the folding transaction, and
// one that finds some already gone (folded by another) changes nothing.
func (st *store) foldStats(ctx context.Context, limit int) (int, error) {
	var pending []statsLogRow
	if err := st.db.SelectContext(ctx, &pending, `SELECT id, `+strings.Join(append(append([]string{}, statsKeyCols...), statsFieldList...), ", ")+`
		FROM live_code_stats_log ORDER BY id LIMIT ?`, limit); err != nil || len(pending) == 0 {
		return 0, err
	}
	ids := make([]int64, len(pending))
	sums := map[statsKey][]int{}
	for i, r := range pending {
		ids[i] = r.ID
		k := statsKey{r.Corp, r.Code, r.User, r.Day}
		if sums[k] == nil {
			sums[k] = make([]int, len(statsFieldList))
		}
		for j, v := range r.values() {
			sums[k][j] += v
		}
	}
	keys := slices.SortedFunc(maps.Keys(sums), func(x, y statsKey) int {
		return cmp.Or(cmp.Compare(x.Corp, y.Corp), cmp.Compare(x.Code, y.Code), cmp.Compare(x.User, y.User), cmp.Compare(x.Day, y.Day))
	})
	errRaced := errors.New("folded by another instance")
	cols := append(append([]string{}, statsKeyCols...), statsFieldList...)
	err := st.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		// The counters first, in key order and a few hundred rows a
		// statement: the log's rows are locked last, just before the
		// commit, so the writers appending to it wait as little as possible.
		for start := 0; start < len(keys); start += 200 {
			chunk := keys[start:min(start+200, len(keys))]
			args := make([]any, 0, len(chunk)*len(cols))
			for _, k := range chunk {
				args = append(args, k.Corp, k.Code, k.User, k.Day)
				for _, v := range sums[k] {
					args = append(args, v)
				}
			}
			if _, err := tx.ExecContext(ctx, st.db.UpsertAdding("live_code_stats", cols, statsKeyCols, statsFieldList, len(chunk)), args...); err != nil {
				return err
			}
		}
		// Short IN lists: a long one may be read by a table scan, which
		// locks the rows writers are appending.
		for start := 0; start < len(ids); start += 100 {
			chunk := ids[start:min(start+100, len(ids))]
			q, args, err := sqlx.In(`DELETE FROM live_code_stats_log WHERE id IN (?)`, chunk)
			if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n != int64(len(chunk)) {
				return cmp.Or(err, errRaced)
			}
		}
		return nil
	})
	if errors.Is(err, errRaced) {
		return 0, nil
	}
	return len(pending), err
}

// countedAddIDs lists today's counted adds (not re-adds) of a staff member
// through a code (code > 0) or through any code (code 0): the caps' record.
func (st *store) countedAddIDs(ctx context.Context, corp, day string, code int64, user string) ([]int64, error) {
	q := `SELECT id FROM contact_sources WHERE corp_id = ? AND day = ? AND userid = ? AND is_readd = 0`
	args := []any{corp, day, user}
	if code > 0 {
		q += ` AND code_id = ?`
		args = append(args, code)
	} else {
		q += ` AND code_id > 0`
	}
	var ids []int64
	err := st.db.SelectContext(ctx, &ids, q, args...)
	return ids, err
}

// manualShown is how often a manual group's QR was shown (its visits).
func (st *store) manualShown(ctx context.Context, corp string, code int64, key string) (int, error) {
	var shown int
	err := st.db.GetContext(ctx, &shown, `SELECT COALESCE(SUM(visits), 0) FROM `+statsSource+` s WHERE corp_id = ? AND code_id = ? AND userid = ?`, corp, code, key)
	return shown, err
}

// relation is the latest state of a (customer, staff member) pair. A loss
// seen before its add is a tombstone: SourceID 0 and LostAt set.
type relation struct {
	SourceID int64  `db:"source_id"`
	AddedAt  int64  `db:"added_at"`
	LostAt   *int64 `db:"lost_at"`
	LostBy   string `db:"lost_by"`
}

// relation reads a pair's relation inside tx; nil when none is recorded.
// It takes no lock: the bus hands one contact's events to the sources
// subscriber one at a time, and a racing first insert fails on the primary
// key and is retried. (A locking read of a missing row takes an InnoDB gap
// lock, which deadlocked concurrent adds of different contacts.)
func (st *store) relation(ctx context.Context, tx *qsql.Tx, corp, ext, user string) (*relation, error) {
	var r relation
	err := tx.GetContext(ctx, &r, `SELECT source_id, added_at, lost_at, lost_by FROM contact_relations
		WHERE corp_id = ? AND external_userid = ? AND userid = ?`, corp, ext, user)
	if qsql.IsNoRows(err) {
		return nil, nil
	}
	return &r, err
}

// putRelation writes a pair's relation. insert says the pair had none: the
// primary key then refuses a concurrent writer instead of overwriting it.
func (st *store) putRelation(ctx context.Context, tx *qsql.Tx, corp, ext, user string, r relation, insert bool) error {
	if insert {
		_, err := tx.ExecContext(ctx, `INSERT INTO contact_relations (corp_id, external_userid, userid, source_id, added_at, lost_at, lost_by)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, corp, ext, user, r.SourceID, r.AddedAt, r.LostAt, r.LostBy)
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE contact_relations SET source_id = ?, added_at = ?, lost_at = ?, lost_by = ?
		WHERE corp_id = ? AND external_userid = ? AND userid = ?`, r.SourceID, r.AddedAt, r.LostAt, r.LostBy, corp, ext, user)
	return err
}

// sourceRow is one add of a customer to a staff member, with its origin.
type sourceRow struct {
	ID             int64  `db:"id"`
	CorpID         string `db:"corp_id"`
	EventKey       string `db:"event_key"`
	ExternalUserID string `db:"external_userid"`
	UserID         string `db:"userid"`
	CodeID         int64  `db:"code_id"`
	Channel        string `db:"channel"`
	State          string `db:"state"`
	ReAdd          bool   `db:"is_readd"`
	OutOfPeriod    bool   `db:"out_of_period"`
	Day            string `db:"day"`
	AddedAt        int64  `db:"added_at"`
	LostAt         *int64 `db:"lost_at"`
	LostBy         string `db:"lost_by"`
}

const sourceCols = `id, corp_id, event_key, external_userid, userid, code_id, channel, state, is_readd, out_of_period, day, added_at, lost_at, lost_by`

// zipKeys pairs corps[i] with values[i], for qsql.KeysIn.
func zipKeys(corps, values []string) [][]any {
	out := make([][]any, len(corps))
	for i := range corps {
		out[i] = []any{corps[i], values[i]}
	}
	return out
}

// sourcesByEvents returns the adds recorded for events (corps[i], keys[i]).
func (st *store) sourcesByEvents(ctx context.Context, q queryer, corps, keys []string) (map[[2]string]*sourceRow, error) {
	var rows []*sourceRow
	in, args := st.db.KeysIn([]string{"corp_id", "event_key"}, zipKeys(corps, keys))
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+sourceCols+` FROM contact_sources WHERE `+in, args...); err != nil {
		return nil, err
	}
	out := make(map[[2]string]*sourceRow, len(rows))
	for _, r := range rows {
		out[[2]string{r.CorpID, r.EventKey}] = r
	}
	return out, nil
}

// relations reads the relations of contacts (corps[i], exts[i]) with any
// staff member inside tx (no lock, as relation), by corp, external user and
// staff member.
func (st *store) relations(ctx context.Context, tx *qsql.Tx, corps, exts []string) (map[[3]string]*relation, error) {
	var rows []struct {
		relation
		CorpID         string `db:"corp_id"`
		ExternalUserID string `db:"external_userid"`
		UserID         string `db:"userid"`
	}
	in, args := st.db.KeysIn([]string{"corp_id", "external_userid"}, zipKeys(corps, exts))
	if err := tx.SelectContext(ctx, &rows, `SELECT corp_id, external_userid, userid, source_id, added_at, lost_at, lost_by FROM contact_relations
		WHERE `+in, args...); err != nil {
		return nil, err
	}
	out := make(map[[3]string]*relation, len(rows))
	for _, r := range rows {
		out[[3]string{r.CorpID, r.ExternalUserID, r.UserID}] = &r.relation
	}
	return out, nil
}

// insertSources records adds in one statement and sets their ids.
func (st *store) insertSources(ctx context.Context, tx *qsql.Tx, srcs []*sourceRow) error {
	if len(srcs) == 0 {
		return nil
	}
	cols := []string{"corp_id", "event_key", "external_userid", "userid", "code_id", "channel", "state", "add_way", "is_readd", "out_of_period", "day", "added_at", "lost_at", "lost_by"}
	rows := make([]string, len(srcs))
	args := make([]any, 0, len(srcs)*len(cols))
	corps, keys := make([]string, len(srcs)), make([]string, len(srcs))
	for i, s := range srcs {
		rows[i] = "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
		args = append(args, s.CorpID, s.EventKey, s.ExternalUserID, s.UserID, s.CodeID, s.Channel, s.State, 1,
			s.ReAdd, s.OutOfPeriod, s.Day, s.AddedAt, s.LostAt, s.LostBy)
		corps[i], keys[i] = s.CorpID, s.EventKey
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO contact_sources (`+strings.Join(cols, ",")+`) VALUES `+strings.Join(rows, ","), args...); err != nil {
		return err
	}
	stored, err := st.sourcesByEvents(ctx, tx, corps, keys)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		r := stored[[2]string{s.CorpID, s.EventKey}]
		if r == nil {
			return fmt.Errorf("add %s vanished after insert", s.EventKey)
		}
		s.ID = r.ID
	}
	return nil
}

// relationRow is a pair's relation with its key, for insertRelations.
type relationRow struct {
	CorpID, ExternalUserID, UserID string
	relation
}

// insertRelations records new pairs' relations in one statement; the
// primary key refuses a concurrent writer instead of overwriting it.
func (st *store) insertRelations(ctx context.Context, tx *qsql.Tx, rs []relationRow) error {
	if len(rs) == 0 {
		return nil
	}
	rows := make([]string, len(rs))
	args := make([]any, 0, len(rs)*7)
	for i, r := range rs {
		rows[i] = "(?, ?, ?, ?, ?, ?, ?)"
		args = append(args, r.CorpID, r.ExternalUserID, r.UserID, r.SourceID, r.AddedAt, r.LostAt, r.LostBy)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO contact_relations (corp_id, external_userid, userid, source_id, added_at, lost_at, lost_by) VALUES `+strings.Join(rows, ","), args...)
	return err
}

// sourceByID returns an add by id, or nil.
func (st *store) sourceByID(ctx context.Context, q queryer, corp string, id int64) (*sourceRow, error) {
	var s sourceRow
	err := sqlx.GetContext(ctx, q, &s, `SELECT `+sourceCols+` FROM contact_sources WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, nil
	}
	return &s, err
}

func (st *store) markSourceLost(ctx context.Context, tx *qsql.Tx, id, at int64, by string) error {
	_, err := tx.ExecContext(ctx, `UPDATE contact_sources SET lost_at = ?, lost_by = ? WHERE id = ?`, at, by, id)
	return err
}

// codeName is a code's name, or "" when it is gone.
func (st *store) codeName(ctx context.Context, corp string, id int64) (string, error) {
	var name string
	err := st.db.GetContext(ctx, &name, `SELECT name FROM live_codes WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return "", nil
	}
	return name, err
}

// welcomeRow is one welcome decision, keyed by WeCom's single-use welcome code.
type welcomeRow struct {
	CorpID, Key, ExternalUserID, UserID, Status string
	CodeID                                      int64
}

// insertWelcome records a welcome decision unless one exists for the key;
// it returns whether it inserted, and the stored status.
func (st *store) insertWelcome(ctx context.Context, w welcomeRow, now int64) (bool, string, error) {
	q := st.db.InsertIgnoreRows("welcome_sends", []string{"corp_id", "welcome_code", "code_id", "external_userid", "userid", "status", "created_at", "updated_at"},
		[]string{"corp_id", "welcome_code"}, 1)
	res, err := st.db.ExecContext(ctx, q, w.CorpID, w.Key, w.CodeID, w.ExternalUserID, w.UserID, w.Status, now, now)
	if err != nil {
		return false, "", err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, w.Status, nil
	}
	var status string
	err = st.db.GetContext(ctx, &status, `SELECT status FROM welcome_sends WHERE corp_id = ? AND welcome_code = ?`, w.CorpID, w.Key)
	return false, status, err
}

// pairGreeted says whether the pair got (or is getting) a welcome since
// `since` under another welcome code: a half add followed by a full add.
func (st *store) pairGreeted(ctx context.Context, corp, ext, user, key string, since int64) (bool, error) {
	var n int
	err := st.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM welcome_sends WHERE corp_id = ? AND external_userid = ? AND userid = ? AND welcome_code <> ?
		AND status IN ('sent', 'sending') AND created_at > ?`, corp, ext, user, key, since)
	return n > 0, err
}

// finishWelcome settles a welcome still 'sending' and, in the same
// transaction, counts it in the stats; false when it was settled before.
func (st *store) finishWelcome(ctx context.Context, corp, key, status string, msg *string, now int64, stat func(tx *qsql.Tx) error) (bool, error) {
	settled := false
	err := st.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE welcome_sends SET status = ?, error = ?, updated_at = ? WHERE corp_id = ? AND welcome_code = ? AND status = 'sending'`,
			status, msg, now, corp, key)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		settled = true
		return stat(tx)
	})
	return settled, err
}

// statsQuery is a statistics query's grouping and filter.
type statsQuery struct {
	expr  string
	where string
	args  []any
}

// storeNames joins each code to its store's name; a subquery so a code
// shared by two stores (refused now, possible in older data) never doubles a row.
const storeNames = `LEFT JOIN (SELECT corp_id, code_id, MIN(name) AS name FROM stores GROUP BY corp_id, code_id) st ON st.corp_id = s.corp_id AND st.code_id = s.code_id`

func (st *store) statsRows(ctx context.Context, q statsQuery) ([]StatsRow, error) {
	var rows []StatsRow
	err := st.db.SelectContext(ctx, &rows, `SELECT `+q.expr+` AS k, SUM(s.visits) AS visits, SUM(s.adds) AS adds, SUM(s.readds) AS readds,
		SUM(s.lost_customer) AS lost_customer, SUM(s.lost_staff) AS lost_staff, SUM(s.welcome_sent) AS welcome_sent, SUM(s.welcome_missed) AS welcome_missed
		FROM `+statsSource+` s LEFT JOIN live_codes c ON c.id = s.code_id `+storeNames+` WHERE `+q.where+` GROUP BY `+q.expr+` ORDER BY k`, q.args...)
	return rows, err
}

type retentionRow struct {
	K     string `db:"k"`
	Total int    `db:"total"`
	Kept  int    `db:"kept"`
}

// retentionRows counts, per group, the adds at least horizon old (by now)
// and those still connected horizon after the add.
func (st *store) retentionRows(ctx context.Context, q statsQuery, horizon, now int64) ([]retentionRow, error) {
	args := append([]any{horizon}, q.args...)
	args = append(args, now-horizon)
	var rows []retentionRow
	err := st.db.SelectContext(ctx, &rows, `SELECT `+q.expr+` AS k, COUNT(*) AS total,
		SUM(CASE WHEN s.lost_at IS NULL OR s.lost_at > s.added_at + ? THEN 1 ELSE 0 END) AS kept
		FROM contact_sources s LEFT JOIN live_codes c ON c.id = s.code_id `+storeNames+` WHERE `+q.where+` AND s.added_at <= ? GROUP BY `+q.expr, args...)
	return rows, err
}

func (st *store) codeContacts(ctx context.Context, corp string, code, before int64, limit int) ([]Source, error) {
	var out []Source
	err := st.db.SelectContext(ctx, &out, `SELECT id, external_userid, userid, channel, is_readd, out_of_period, added_at, lost_at, lost_by
		FROM contact_sources WHERE corp_id = ? AND code_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, corp, code, before, limit)
	return out, err
}

const storeCols = `id, corp_id, name, address, city, lat, lng, datum, code_id, created_at, updated_at`

func (st *store) insertStore(ctx context.Context, s *Store) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO stores (corp_id, name, address, city, lat, lng, datum, code_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.CorpID, s.Name, s.Address, s.City, s.Lat, s.Lng, s.Datum, s.CodeID, s.CreatedAt, s.UpdatedAt)
	if err != nil {
		return err
	}
	s.ID, err = res.LastInsertId()
	return err
}

// execFound runs a statement that must change a row; notFound when none matched.
func (st *store) execFound(ctx context.Context, notFound error, q string, args ...any) error {
	res, err := st.db.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return notFound
	}
	return nil
}

func (st *store) updateStore(ctx context.Context, s *Store) error {
	return st.execFound(ctx, ErrStoreNotFound, `UPDATE stores SET name = ?, address = ?, city = ?, lat = ?, lng = ?, datum = ?, code_id = ?, updated_at = ? WHERE id = ? AND corp_id = ?`,
		s.Name, s.Address, s.City, s.Lat, s.Lng, s.Datum, s.CodeID, s.UpdatedAt, s.ID, s.CorpID)
}

func (st *store) getStore(ctx context.Context, corp string, id int64) (Store, error) {
	var s Store
	err := st.db.GetContext(ctx, &s, `SELECT `+storeCols+` FROM stores WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return s, ErrStoreNotFound
	}
	return s, err
}

func (st *store) deleteStore(ctx context.Context, corp string, id int64) error {
	return st.execFound(ctx, ErrStoreNotFound, `DELETE FROM stores WHERE corp_id = ? AND id = ?`, corp, id)
}

func (st *store) listStores(ctx context.Context, corp, city string) ([]Store, error) {
	q := `SELECT ` + storeCols + ` FROM stores WHERE corp_id = ?`
	args := []any{corp}
	if city != "" {
		q += ` AND city = ?`
		args = append(args, city)
	}
	var out []Store
	err := st.db.SelectContext(ctx, &out, q+` ORDER BY city, name, id`, args...)
	return out, err
}

// storeUsingCode names another store of the corp that already hands out a
// code, or "".
func (st *store) storeUsingCode(ctx context.Context, corp string, code, except int64) (string, error) {
	var name string
	err := st.db.GetContext(ctx, &name, `SELECT name FROM stores WHERE corp_id = ? AND code_id = ? AND id <> ? ORDER BY id LIMIT 1`, corp, code, except)
	if qsql.IsNoRows(err) {
		return "", nil
	}
	return name, err
}

// startHandover records that a leaver's customers are being handed over;
// false when that was recorded before (by this or another instance).
func (st *store) startHandover(ctx context.Context, corp, user, to string, now int64) (bool, error) {
	return st.insertOnce(ctx, st.db, "livecode_handovers", []string{"corp_id", "userid", "takeover", "started_at"}, []string{"corp_id", "userid"}, corp, user, to, now)
}

// undoHandover forgets a hand-over that failed, so the next pass tries again.
func (st *store) undoHandover(ctx context.Context, corp, user string) error {
	_, err := st.db.ExecContext(ctx, `DELETE FROM livecode_handovers WHERE corp_id = ? AND userid = ?`, corp, user)
	return err
}

// transfer is one customer or group handed over from a staff member who left.
type transfer struct {
	CorpID   string `db:"corp_id"`
	Handover string `db:"handover_userid"`
	Item     string `db:"item"` // external userid or chat id
	Kind     string `db:"kind"` // customer | group
	Takeover string `db:"takeover_userid"`
	CodeID   int64  `db:"code_id"`
	Status   string `db:"status"` // waiting | done | refused | full | failed
	ErrCode  int64  `db:"errcode"`
}

// recordTransfers records hand-overs as started (or refused at once).
func (st *store) recordTransfers(ctx context.Context, ts []transfer, now int64) error {
	if len(ts) == 0 {
		return nil
	}
	cols := []string{"corp_id", "handover_userid", "item", "kind", "takeover_userid", "code_id", "status", "errcode", "created_at", "updated_at"}
	return st.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		q := st.db.Upsert("livecode_transfers", cols, []string{"corp_id", "handover_userid", "item"}, []string{"takeover_userid", "code_id", "status", "errcode", "updated_at"})
		for _, t := range ts {
			if _, err := tx.ExecContext(ctx, q, t.CorpID, t.Handover, t.Item, t.Kind, t.Takeover, t.CodeID, t.Status, t.ErrCode, now, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// waitingHandovers lists the (corp, leaver, successor) pairs with customers
// whose hand-over has no outcome yet.
func (st *store) waitingHandovers(ctx context.Context) ([]transfer, error) {
	var out []transfer
	err := st.db.SelectContext(ctx, &out, `SELECT corp_id, handover_userid, takeover_userid, MIN(code_id) AS code_id, '' AS item, 'customer' AS kind, 'waiting' AS status, 0 AS errcode
		FROM livecode_transfers WHERE status = 'waiting' GROUP BY corp_id, handover_userid, takeover_userid`)
	return out, err
}

// groupsHandedSince counts a leaver's groups sent to a successor since a time.
func (st *store) groupsHandedSince(ctx context.Context, corp, handover, takeover string, since int64) (int, error) {
	var n int
	err := st.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM livecode_transfers WHERE corp_id = ? AND handover_userid = ? AND takeover_userid = ?
		AND kind = 'group' AND status IN ('done', 'failed') AND updated_at >= ?`, corp, handover, takeover, since)
	return n, err
}

// queuedGroups lists the (corp, leaver, successor) pairs with groups waiting
// for a day's quota.
func (st *store) queuedGroups(ctx context.Context) ([]transfer, error) {
	var out []transfer
	err := st.db.SelectContext(ctx, &out, `SELECT corp_id, handover_userid, takeover_userid, MIN(code_id) AS code_id, '' AS item, 'group' AS kind, 'queued' AS status, 0 AS errcode
		FROM livecode_transfers WHERE status = 'queued' GROUP BY corp_id, handover_userid, takeover_userid`)
	return out, err
}

// queuedGroupsOf lists one pair's queued groups in a stable order.
func (st *store) queuedGroupsOf(ctx context.Context, corp, handover, takeover string) ([]string, error) {
	var out []string
	err := st.db.SelectContext(ctx, &out, `SELECT item FROM livecode_transfers WHERE status = 'queued' AND corp_id = ? AND handover_userid = ? AND takeover_userid = ? ORDER BY item`,
		corp, handover, takeover)
	return out, err
}

// settleTransfer records a waiting hand-over's outcome; false when it had one already.
func (st *store) settleTransfer(ctx context.Context, corp, handover, item, status string, now int64) (bool, error) {
	res, err := st.db.ExecContext(ctx, `UPDATE livecode_transfers SET status = ?, updated_at = ? WHERE corp_id = ? AND handover_userid = ? AND item = ? AND status = 'waiting'`,
		status, now, corp, handover, item)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// transferredItems is the set of a leaver's customers and groups whose
// hand-over was already sent.
func (st *store) transferredItems(ctx context.Context, corp, handover string) (map[string]bool, error) {
	var items []string
	if err := st.db.SelectContext(ctx, &items, `SELECT item FROM livecode_transfers WHERE corp_id = ? AND handover_userid = ?`, corp, handover); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(items))
	for _, it := range items {
		out[it] = true
	}
	return out, nil
}

// groupWelcomes maps the group welcome templates of the corp's live group
// codes other than except to their text.
func (st *store) groupWelcomes(ctx context.Context, corp string, except int64) (map[string]string, error) {
	var rows []struct {
		Settings qsql.JSON `db:"settings"`
	}
	if err := st.db.SelectContext(ctx, &rows, `SELECT settings FROM live_codes WHERE corp_id = ? AND mode = ? AND status <> ? AND id <> ?`,
		corp, ModeJoinWay, StatusArchived, except); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		var set Settings
		if err := json.Unmarshal(r.Settings, &set); err != nil {
			return nil, err
		}
		if set.GroupWelcomeTemplate != "" {
			out[set.GroupWelcomeTemplate] = set.GroupWelcome.text()
		}
	}
	return out, nil
}
