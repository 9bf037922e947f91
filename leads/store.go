package leads

import (
	"context"
	"strings"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// store holds every SQL statement of the lead pool. It owns the tables
// people, person_identities, lead_pools, leads, lead_history and
// lead_claim_counters.
type store struct{ db *qsql.DB }

const defaultPoolName = "default"

// defaultPool returns the corp's default pool, creating it on first use.
func (st *store) defaultPool(ctx context.Context, tx *qsql.Tx, corp string, now int64) (int64, error) {
	q := st.db.InsertIgnoreRows("lead_pools", []string{"corp_id", "name", "is_default", "created_at", "updated_at"}, []string{"corp_id", "name"}, 1)
	if _, err := tx.ExecContext(ctx, q, corp, defaultPoolName, 1, now, now); err != nil {
		return 0, err
	}
	var id int64
	err := tx.GetContext(ctx, &id, `SELECT id FROM lead_pools WHERE corp_id = ? AND name = ?`, corp, defaultPoolName)
	return id, err
}

// personByIdentity returns the person an identity names, or 0.
func (st *store) personByIdentity(ctx context.Context, tx *qsql.Tx, corp, kind, value string) (int64, error) {
	var id int64
	err := tx.GetContext(ctx, &id, `SELECT person_id FROM person_identities WHERE corp_id = ? AND kind = ? AND value = ?`, corp, kind, value)
	if qsql.IsNoRows(err) {
		return 0, nil
	}
	return id, err
}

// createPerson records a person with one identity.
func (st *store) createPerson(ctx context.Context, tx *qsql.Tx, corp, name, kind, value string, now int64) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO people (corp_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)`, corp, name, now, now)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO person_identities (corp_id, kind, value, person_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		corp, kind, value, id, now)
	return id, err
}

// leadOfPerson returns a person's lead id, or 0.
func (st *store) leadOfPerson(ctx context.Context, tx *qsql.Tx, corp string, person int64) (int64, error) {
	var id int64
	err := tx.GetContext(ctx, &id, `SELECT id FROM leads WHERE corp_id = ? AND person_id = ?`, corp, person)
	if qsql.IsNoRows(err) {
		return 0, nil
	}
	return id, err
}

// createLead records a new unowned lead.
func (st *store) createLead(ctx context.Context, tx *qsql.Tx, l *Lead) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO leads (corp_id, person_id, pool_id, owner_user_id, stage, source, channel, code_id, staff_userid, version, created_at, updated_at)
		VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, 1, ?, ?)`, l.CorpID, l.PersonID, l.PoolID, l.Stage, l.Source, l.Channel, l.CodeID, l.StaffUserID, l.CreatedAt, l.UpdatedAt)
	if err != nil {
		return err
	}
	l.ID, err = res.LastInsertId()
	return err
}

// addHistory records a change of a lead.
func (st *store) addHistory(ctx context.Context, ex sqlx.ExecerContext, corp string, lead int64, h HistoryEntry) error {
	var key any
	if h.eventKey != "" {
		key = h.eventKey
	}
	_, err := ex.ExecContext(ctx, `INSERT INTO lead_history (corp_id, lead_id, at, actor_user_id, kind, from_value, to_value, reason, event_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		corp, lead, h.At, h.ActorUserID, h.Kind, h.From, h.To, truncate(h.Reason, 500), key)
	return err
}

// seenEvent reports whether an event's change is recorded already.
func (st *store) seenEvent(ctx context.Context, tx *qsql.Tx, corp, key string) (bool, error) {
	var n int
	err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM lead_history WHERE corp_id = ? AND event_key = ?`, corp, key)
	return n > 0, err
}

const leadCols = `l.id, l.corp_id, l.person_id, p.name, l.pool_id, l.owner_user_id, l.stage, l.source, l.channel, l.code_id, l.staff_userid,
	l.claimed_at, l.version, l.created_at, l.updated_at`

// lead reads one lead of a corp with its person's name.
func (st *store) lead(ctx context.Context, q sqlx.QueryerContext, corp string, id int64) (*Lead, error) {
	var l Lead
	err := sqlx.GetContext(ctx, q, &l, `SELECT `+leadCols+` FROM leads l JOIN people p ON p.id = l.person_id WHERE l.corp_id = ? AND l.id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrNotFound
	}
	return &l, err
}

// ListFilter narrows a list of leads. Owner: -1 unowned (in the pool),
// 0 any, else that user's.
type ListFilter struct {
	CorpID string
	PoolID int64
	Owner  int64
	Stage  string
	After  int64 // the last id of the previous page
	Limit  int
}

func (st *store) list(ctx context.Context, f ListFilter) ([]Lead, error) {
	where := []string{"l.corp_id = ?", "l.id > ?"}
	args := []any{f.CorpID, f.After}
	if f.PoolID > 0 {
		where, args = append(where, "l.pool_id = ?"), append(args, f.PoolID)
	}
	switch {
	case f.Owner < 0:
		where = append(where, "l.owner_user_id = 0")
	case f.Owner > 0:
		where, args = append(where, "l.owner_user_id = ?"), append(args, f.Owner)
	}
	if f.Stage != "" {
		where, args = append(where, "l.stage = ?"), append(args, f.Stage)
	}
	args = append(args, f.Limit)
	out := []Lead{}
	err := st.db.SelectContext(ctx, &out, `SELECT `+leadCols+` FROM leads l JOIN people p ON p.id = l.person_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY l.id LIMIT ?`, args...)
	return out, err
}

func (st *store) history(ctx context.Context, corp string, lead int64) ([]HistoryEntry, error) {
	out := []HistoryEntry{}
	err := st.db.SelectContext(ctx, &out, `SELECT id, at, actor_user_id, kind, from_value, to_value, reason FROM lead_history
		WHERE corp_id = ? AND lead_id = ? ORDER BY id`, corp, lead)
	return out, err
}

func (st *store) pool(ctx context.Context, q sqlx.QueryerContext, corp string, id int64) (*Pool, error) {
	var p Pool
	err := sqlx.GetContext(ctx, q, &p, `SELECT id, corp_id, name, is_default, max_open, max_claims_day, cooldown_hours, created_at, updated_at
		FROM lead_pools WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrPoolNotFound
	}
	return &p, err
}

func (st *store) pools(ctx context.Context, corp string) ([]Pool, error) {
	out := []Pool{}
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id, name, is_default, max_open, max_claims_day, cooldown_hours, created_at, updated_at
		FROM lead_pools WHERE corp_id = ? ORDER BY id`, corp)
	return out, err
}

func (st *store) createPool(ctx context.Context, p *Pool) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO lead_pools (corp_id, name, is_default, max_open, max_claims_day, cooldown_hours, created_at, updated_at)
		VALUES (?, ?, 0, ?, ?, ?, ?, ?)`, p.CorpID, p.Name, p.MaxOpen, p.MaxClaimsDay, p.CooldownHours, p.CreatedAt, p.UpdatedAt)
	if err != nil {
		return err
	}
	p.ID, err = res.LastInsertId()
	return err
}

func (st *store) updatePool(ctx context.Context, p *Pool) (bool, error) {
	res, err := st.db.ExecContext(ctx, `UPDATE lead_pools SET max_open = ?, max_claims_day = ?, cooldown_hours = ?, updated_at = ? WHERE corp_id = ? AND id = ?`,
		p.MaxOpen, p.MaxClaimsDay, p.CooldownHours, p.UpdatedAt, p.CorpID, p.ID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// lastRelease is when user last released the lead (0: never).
func (st *store) lastRelease(ctx context.Context, tx *qsql.Tx, corp string, lead, user int64) (int64, error) {
	var at *int64
	err := tx.GetContext(ctx, &at, `SELECT MAX(at) FROM lead_history WHERE corp_id = ? AND actor_user_id = ? AND kind = ? AND lead_id = ?`,
		corp, user, HistoryReleased, lead)
	if err != nil || at == nil {
		return 0, err
	}
	return *at, nil
}

// takeLead makes user the owner of an unowned lead still in the pool; false
// when someone else holds it (or it left the pool) by now.
func (st *store) takeLead(ctx context.Context, tx *qsql.Tx, corp string, lead, pool, user, now int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE leads SET owner_user_id = ?, claimed_at = ?, version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND pool_id = ? AND owner_user_id = 0`, user, now, now, corp, lead, pool)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// giveBack returns user's lead to its pool; false when it is not theirs.
func (st *store) giveBack(ctx context.Context, tx *qsql.Tx, corp string, lead, user, now int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE leads SET owner_user_id = 0, claimed_at = NULL, version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND owner_user_id = ?`, now, corp, lead, user)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// countClaim counts a claim against user's caps in a pool, in one
// conditional update of their counter row (0 = no cap); false when a cap
// is reached. The row lock serialises one user's concurrent claims.
func (st *store) countClaim(ctx context.Context, tx *qsql.Tx, corp string, pool, user int64, day string, maxOpen, maxDay int) (bool, error) {
	q := st.db.InsertIgnoreRows("lead_claim_counters", []string{"corp_id", "pool_id", "user_id"}, []string{"corp_id", "pool_id", "user_id"}, 1)
	if _, err := tx.ExecContext(ctx, q, corp, pool, user); err != nil {
		return false, err
	}
	// claims_today is assigned before claims_day: MySQL's assignments see
	// the ones before them, and it must read the stored day.
	res, err := tx.ExecContext(ctx, `UPDATE lead_claim_counters
		SET open_leads = open_leads + 1, claims_today = CASE WHEN claims_day = ? THEN claims_today + 1 ELSE 1 END, claims_day = ?
		WHERE corp_id = ? AND pool_id = ? AND user_id = ?
		AND (? = 0 OR open_leads < ?) AND (? = 0 OR claims_day <> ? OR claims_today < ?)`,
		day, day, corp, pool, user, maxOpen, maxOpen, maxDay, day, maxDay)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// uncountOpen takes a released lead off user's open count.
func (st *store) uncountOpen(ctx context.Context, tx *qsql.Tx, corp string, pool, user int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE lead_claim_counters SET open_leads = open_leads - 1
		WHERE corp_id = ? AND pool_id = ? AND user_id = ? AND open_leads > 0`, corp, pool, user)
	return err
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// nameIfUnnamed names a person intake met before their name was known.
func (st *store) nameIfUnnamed(ctx context.Context, tx *qsql.Tx, person int64, name string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE people SET name = ?, updated_at = ? WHERE id = ? AND name = ''`, name, now, person)
	return err
}

// moveStage sets a lead's stage and owner if it is still at version; false
// when it changed meanwhile.
func (st *store) moveStage(ctx context.Context, tx *qsql.Tx, corp string, lead, version int64, stage string, owner, now int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE leads SET stage = ?, owner_user_id = ?,
		claimed_at = CASE WHEN ? = 0 THEN NULL ELSE claimed_at END, version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND version = ?`, stage, owner, owner, now, corp, lead, version)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
