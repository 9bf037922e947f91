package leads

import (
	"cmp"
	"context"
	dbsql "database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
)

// store holds every SQL statement of the lead pool. It owns the tables
// people, person_identities, lead_pools, leads, lead_history and
// lead_claim_counters.
type store struct {
	db  *qsql.DB
	bus *jobs.Bus // where changes are published (nil: not published)
}

const defaultPoolName = "default"

// defaultPool returns the corp's default pool, creating it on first use.
func (st *store) defaultPool(ctx context.Context, tx *qsql.Tx, corp string, now int64) (int64, error) {
	q := st.db.InsertIgnoreRows("lead_pools", []string{"corp_id", "name", "is_default", "created_at", "updated_at"}, []string{"corp_id", "name"}, 1)
	if _, err := tx.ExecContext(ctx, q, corp, defaultPoolName, 1, now, now); err != nil {
		return 0, err
	}
	var id int64
	// One another transaction made meanwhile is seen only by a locking read.
	err := tx.GetContext(ctx, &id, `SELECT id FROM lead_pools WHERE corp_id = ? AND name = ?`+st.db.ForShare(), corp, defaultPoolName)
	return id, err
}

// addHistory records a change of a lead.
func (st *store) addHistory(ctx context.Context, tx *qsql.Tx, corp string, lead int64, h HistoryEntry) error {
	return st.addHistories(ctx, tx, []historyRow{{corp, lead, h}})
}

const leadCols = `l.id, l.corp_id, l.person_id, p.name, l.pool_id, l.owner_user_id, l.stage, l.source, l.channel, l.code_id, l.staff_userid,
	l.claimed_at, l.last_touch_at, l.merged_into, l.cooling, l.status, l.status_reason, l.budget, l.authority, l.need, l.timeline, l.fit_points, l.grade, l.engagement_milli, l.engagement_at, l.version, l.created_at, l.updated_at`

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
	Viewer Viewer
	PoolID int64
	Owner  int64
	Stage  string
	// More narrowing (empty: any): grade, status, source, channel, code.
	Grade   string
	Status  string
	Source  string
	Channel string
	CodeID  int64
	// IDs, when set, restricts the list to these leads (a segment's page).
	IDs   []int64
	After int64 // the last id of the previous page
	Limit int
}

// visibleTo is the condition on lead l that a viewer may see it, and its
// arguments: theirs, or in a pool with no members, or in one of theirs.
func visibleTo(v Viewer) (string, []any) {
	if v.All {
		return "1 = 1", nil
	}
	if v.UserID == 0 {
		return "1 = 0", nil // nobody: never the unowned leads of every pool
	}
	users := append([]int64{v.UserID}, v.Team...)
	in := placeholders(len(users))
	args := make([]any, 0, 2*len(users))
	for _, u := range users {
		args = append(args, u)
	}
	if v.Handoffs {
		return `(l.owner_user_id IN (` + in + `)
		OR EXISTS (SELECT 1 FROM lead_handoffs h WHERE h.corp_id = l.corp_id AND h.lead_id = l.id AND h.to_user_id IN (` + in + `)))`, append(args, args...)
	}
	return `(l.owner_user_id IN (` + in + `)
		OR NOT EXISTS (SELECT 1 FROM lead_pool_members m WHERE m.corp_id = l.corp_id AND m.pool_id = l.pool_id)
		OR EXISTS (SELECT 1 FROM lead_pool_members m WHERE m.corp_id = l.corp_id AND m.pool_id = l.pool_id AND m.user_id = ?))`, append(args, v.UserID)
}

// visible reports whether the viewer may see the lead.
func (st *store) visible(ctx context.Context, q sqlx.QueryerContext, corp string, lead int64, v Viewer) (bool, error) {
	cond, args := visibleTo(v)
	var n int
	err := sqlx.GetContext(ctx, q, &n, `SELECT COUNT(*) FROM leads l WHERE l.corp_id = ? AND l.id = ? AND `+cond, append([]any{corp, lead}, args...)...)
	return n == 1, err
}

// addMember adds a user to a pool's members.
func (st *store) addMember(ctx context.Context, corp string, pool, user, now int64) error {
	q := st.db.InsertIgnoreRows("lead_pool_members", []string{"corp_id", "pool_id", "user_id", "created_at"}, []string{"corp_id", "pool_id", "user_id"}, 1)
	_, err := st.db.ExecContext(ctx, q, corp, pool, user, now)
	return err
}

func (st *store) removeMember(ctx context.Context, corp string, pool, user int64) error {
	_, err := st.db.ExecContext(ctx, `DELETE FROM lead_pool_members WHERE corp_id = ? AND pool_id = ? AND user_id = ?`, corp, pool, user)
	return err
}

func (st *store) members(ctx context.Context, corp string, pool int64) ([]int64, error) {
	out := []int64{}
	err := st.db.SelectContext(ctx, &out, `SELECT user_id FROM lead_pool_members WHERE corp_id = ? AND pool_id = ? ORDER BY user_id`, corp, pool)
	return out, err
}

func (st *store) list(ctx context.Context, f ListFilter) ([]Lead, error) {
	cond, vargs := visibleTo(f.Viewer)
	where := []string{"l.corp_id = ?", "l.id > ?", "l.merged_into = 0", cond}
	args := append([]any{f.CorpID, f.After}, vargs...)
	if f.PoolID > 0 {
		where, args = append(where, "l.pool_id = ?"), append(args, f.PoolID)
	}
	if f.IDs != nil {
		if len(f.IDs) == 0 {
			return []Lead{}, nil
		}
		where = append(where, "l.id IN ("+placeholders(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	switch {
	case f.Owner < 0:
		where = append(where, "l.owner_user_id = 0")
	case f.Owner > 0:
		where, args = append(where, "l.owner_user_id = ?"), append(args, f.Owner)
	}
	for _, c := range []struct {
		col string
		v   any
		set bool
	}{{"l.stage", f.Stage, f.Stage != ""}, {"l.grade", f.Grade, f.Grade != ""}, {"l.status", f.Status, f.Status != ""},
		{"l.source", f.Source, f.Source != ""}, {"l.channel", f.Channel, f.Channel != ""}, {"l.code_id", f.CodeID, f.CodeID > 0}} {
		if c.set {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
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
	err := sqlx.GetContext(ctx, q, &p, `SELECT `+poolCols+`
		FROM lead_pools WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrPoolNotFound
	}
	if err != nil {
		return nil, err
	}
	return &p, p.decode()
}

func (st *store) pools(ctx context.Context, corp string) ([]Pool, error) {
	out := []Pool{}
	if err := st.db.SelectContext(ctx, &out, `SELECT `+poolCols+` FROM lead_pools WHERE corp_id = ? ORDER BY id`, corp); err != nil {
		return nil, err
	}
	for i := range out {
		if err := out[i].decode(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

const poolCols = `id, corp_id, name, is_default, max_open, max_claims_day, cooldown_hours, recycle_days, recycle_by_grade, escalations, created_at, updated_at`

func (st *store) createPool(ctx context.Context, p *Pool) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO lead_pools (corp_id, name, is_default, max_open, max_claims_day, cooldown_hours, recycle_days, recycle_by_grade,
		escalations, created_at, updated_at) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)`, p.CorpID, p.Name, p.MaxOpen, p.MaxClaimsDay, p.CooldownHours, p.RecycleDays,
		p.encodeByGrade(), p.encode(), p.CreatedAt, p.UpdatedAt)
	if err != nil {
		return err
	}
	p.ID, err = res.LastInsertId()
	return err
}

func (st *store) updatePool(ctx context.Context, p *Pool) (bool, error) {
	return changedOne(st.db.ExecContext(ctx, `UPDATE lead_pools SET name = COALESCE(NULLIF(?, ''), name), max_open = ?, max_claims_day = ?, cooldown_hours = ?,
		recycle_days = ?, recycle_by_grade = ?, escalations = ?, updated_at = ? WHERE corp_id = ? AND id = ?`, p.Name, p.MaxOpen, p.MaxClaimsDay, p.CooldownHours,
		p.RecycleDays, p.encodeByGrade(), p.encode(), p.UpdatedAt, p.CorpID, p.ID))
}

// lastRelease is when user last released the lead (0: never).
func (st *store) lastRelease(ctx context.Context, tx *qsql.Tx, corp string, lead, user int64) (int64, error) {
	var at int64
	err := tx.GetContext(ctx, &at, `SELECT at FROM lead_releases WHERE corp_id = ? AND lead_id = ? AND user_id = ?`, corp, lead, user)
	if qsql.IsNoRows(err) {
		return 0, nil
	}
	return at, err
}

// recordRelease notes that user released the lead at ms, for the pool's
// cool-down.
func (st *store) recordRelease(ctx context.Context, tx *qsql.Tx, corp string, lead, user, ms int64) error {
	_, err := tx.ExecContext(ctx, st.db.Upsert("lead_releases", []string{"corp_id", "lead_id", "user_id", "at"}, []string{"corp_id", "lead_id", "user_id"}, []string{"at"}),
		corp, lead, user, ms)
	return err
}

// takeLead makes user the owner of an unowned lead still in the pool; false
// when someone else holds it (or it left the pool) by now.
func (st *store) takeLead(ctx context.Context, tx *qsql.Tx, corp string, lead, pool, user, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET owner_user_id = ?, claimed_at = ?, last_touch_at = ?, version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND pool_id = ? AND owner_user_id = 0 AND merged_into = 0`, user, now, now, now, corp, lead, pool))
}

// giveBack returns user's lead to its pool; false when it is not theirs.
func (st *store) giveBack(ctx context.Context, tx *qsql.Tx, corp string, lead, user, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET owner_user_id = 0, claimed_at = NULL, last_touch_at = NULL, version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND owner_user_id = ?`, now, corp, lead, user))
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
	return changedOne(tx.ExecContext(ctx, `UPDATE lead_claim_counters
		SET open_leads = open_leads + 1, claims_today = CASE WHEN claims_day = ? THEN claims_today + 1 ELSE 1 END, claims_day = ?
		WHERE corp_id = ? AND pool_id = ? AND user_id = ?
		AND (? = 0 OR open_leads < ?) AND (? = 0 OR claims_day <> ? OR claims_today < ?)`,
		day, day, corp, pool, user, maxOpen, maxOpen, maxDay, day, maxDay))
}

// uncountOpen takes a released lead off user's open count.
func (st *store) uncountOpen(ctx context.Context, tx *qsql.Tx, corp string, pool, user int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE lead_claim_counters SET open_leads = open_leads - 1
		WHERE corp_id = ? AND pool_id = ? AND user_id = ? AND open_leads > 0`, corp, pool, user)
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n { // no more bytes than n: no more characters either
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// moveStage sets a lead's stage and owner if it is still at version; false
// when it changed meanwhile.
func (st *store) moveStage(ctx context.Context, tx *qsql.Tx, corp string, lead, version int64, stage string, owner, now int64) (bool, error) {
	// status is assigned before stage: MySQL's assignments see the ones
	// before them, and it must compare the stored stage.
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET status = CASE WHEN stage = ? THEN status ELSE 'new' END,
		status_reason = CASE WHEN stage = ? THEN status_reason ELSE '' END, stage = ?, owner_user_id = ?,
		claimed_at = CASE WHEN ? = 0 THEN NULL ELSE claimed_at END, version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND version = ?`, stage, stage, stage, owner, owner, now, corp, lead, version))
}

// Set-based reads and writes for a batch of intake, one statement each.
// Keys are [corp, value] pairs.

// changedOne reports whether a statement changed exactly one row: the
// conditional updates (claims, moves, settles) that another writer may
// have won.
func changedOne(res dbsql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// placeholders is "?,?,…" for n values.
func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// pairKeys turns [corp, value] pairs into KeysIn's keys.
func pairKeys[V any](pairs [][2]V) [][]any {
	out := make([][]any, len(pairs))
	for i, p := range pairs {
		out[i] = []any{p[0], p[1]}
	}
	return out
}

// seenEvents returns which event keys have a history entry already.
func (st *store) seenEvents(ctx context.Context, tx *qsql.Tx, keys [][2]string) (map[[2]string]bool, error) {
	var rows []struct {
		Corp string `db:"corp_id"`
		Key  string `db:"event_key"`
	}
	in, args := st.db.KeysIn([]string{"corp_id", "event_key"}, pairKeys(keys))
	if err := tx.SelectContext(ctx, &rows, `SELECT corp_id, event_key FROM lead_history WHERE `+in, args...); err != nil {
		return nil, err
	}
	out := make(map[[2]string]bool, len(rows))
	for _, r := range rows {
		out[[2]string{r.Corp, r.Key}] = true
	}
	return out, nil
}

// peopleByIdentity maps identities of one kind to their people.
func (st *store) peopleByIdentity(ctx context.Context, tx *qsql.Tx, kind string, values [][2]string) (map[[2]string]int64, error) {
	var rows []struct {
		Corp   string `db:"corp_id"`
		Value  string `db:"value"`
		Person int64  `db:"person_id"`
	}
	keys := make([][]any, len(values))
	for i, v := range values {
		keys[i] = []any{v[0], kind, v[1]}
	}
	in, args := st.db.KeysIn([]string{"corp_id", "kind", "value"}, keys)
	if err := tx.SelectContext(ctx, &rows, `SELECT corp_id, value, person_id FROM person_identities WHERE `+in, args...); err != nil {
		return nil, err
	}
	out := make(map[[2]string]int64, len(rows))
	for _, r := range rows {
		out[[2]string{r.Corp, r.Value}] = r.Person
	}
	return out, nil
}

// newPerson is a person to create from one identity.
type newPerson struct {
	Corp, Kind, Value, Name string
}

// createPeople creates people with their identity, two statements for all
// (three where the server does not tell a multi-row insert's ids, see
// qsql.InsertedIDs), and returns their ids by [corp, value].
func (st *store) createPeople(ctx context.Context, tx *qsql.Tx, ps []newPerson, now int64) (map[[2]string]int64, error) {
	out := map[[2]string]int64{}
	if len(ps) == 0 {
		return out, nil
	}
	rows := make([]string, len(ps))
	args := make([]any, 0, 5*len(ps))
	origins := make([][2]string, len(ps))
	for i, p := range ps {
		rows[i] = "(?, ?, ?, ?, ?)"
		origins[i] = [2]string{p.Corp, p.Kind + ":" + p.Value}
		args = append(args, p.Corp, p.Name, origins[i][1], now, now)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO people (corp_id, name, origin, created_at, updated_at) VALUES `+strings.Join(rows, ","), args...)
	if err != nil {
		return nil, err
	}
	ids := make(map[[2]string]int64, len(ps))
	if first, ok := st.db.InsertedIDs(res, len(ps)); ok {
		for i, o := range origins {
			ids[o] = first + int64(i)
		}
	} else {
		// Read them back by their origin.
		var made []struct {
			ID     int64  `db:"id"`
			Corp   string `db:"corp_id"`
			Origin string `db:"origin"`
		}
		in, qargs := st.db.KeysIn([]string{"corp_id", "origin"}, pairKeys(origins))
		if err := tx.SelectContext(ctx, &made, `SELECT id, corp_id, origin FROM people WHERE `+in, qargs...); err != nil {
			return nil, err
		}
		for _, m := range made {
			ids[[2]string{m.Corp, m.Origin}] = m.ID
		}
	}
	args = args[:0]
	for i, p := range ps {
		id := ids[[2]string{p.Corp, p.Kind + ":" + p.Value}]
		if id == 0 {
			return nil, fmt.Errorf("person %s:%s vanished after insert", p.Kind, p.Value)
		}
		out[[2]string{p.Corp, p.Value}] = id
		rows[i] = "(?, ?, ?, ?, ?)"
		args = append(args, p.Corp, p.Kind, p.Value, id, now)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO person_identities (corp_id, kind, value, person_id, created_at) VALUES `+strings.Join(rows, ","), args...)
	return out, err
}

// nameUnnamed names people who have no name yet, one statement.
func (st *store) nameUnnamed(ctx context.Context, tx *qsql.Tx, names map[int64]string, now int64) error {
	if len(names) == 0 {
		return nil
	}
	var cases []string
	var args, ids []any
	for id, name := range names {
		cases = append(cases, "WHEN ? THEN ?")
		args = append(args, id, name)
		ids = append(ids, id)
	}
	args = append(append(args, now), ids...)
	_, err := tx.ExecContext(ctx, `UPDATE people SET name = CASE id `+strings.Join(cases, " ")+` END, updated_at = ?
		WHERE name = '' AND id IN (`+placeholders(len(ids))+`)`, args...)
	return err
}

// leadsOfPeople maps people ([corp, person id]) to their leads.
func (st *store) leadsOfPeople(ctx context.Context, tx *qsql.Tx, people [][2]any) (map[int64]int64, error) {
	out := map[int64]int64{}
	if len(people) == 0 {
		return out, nil
	}
	var rows []struct {
		Person int64 `db:"person_id"`
		ID     int64 `db:"id"`
	}
	in, args := st.db.KeysIn([]string{"corp_id", "person_id"}, pairKeys(people))
	if err := tx.SelectContext(ctx, &rows, `SELECT person_id, id FROM leads WHERE `+in, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.Person] = r.ID
	}
	return out, nil
}

// lockLeadsOfPeople takes the row locks of the leads of people (MySQL), in
// id order, before a transaction scores them: two scorers of one lead (the
// API's activities and the intake's, say) then run one after the other,
// and each reads what the other wrote (the reads that follow lock too).
// SQLite has one writer: nothing to do.
func (st *store) lockLeadsOfPeople(ctx context.Context, tx *qsql.Tx, people [][2]any) error {
	if len(people) == 0 || st.db.ForUpdate() == "" {
		return nil
	}
	in, args := st.db.KeysIn([]string{"corp_id", "person_id"}, pairKeys(people))
	var ids []int64
	return tx.SelectContext(ctx, &ids, `SELECT id FROM leads WHERE `+in+` ORDER BY id`+st.db.ForUpdate(), args...)
}

// createLeads records new unowned leads, two statements for all, and sets their ids.
func (st *store) createLeads(ctx context.Context, tx *qsql.Tx, ls []*Lead) error {
	if len(ls) == 0 {
		return nil
	}
	rows := make([]string, len(ls))
	args := make([]any, 0, 11*len(ls))
	people := make([][2]any, len(ls))
	for i, l := range ls {
		rows[i] = "(?, ?, ?, 0, ?, ?, ?, ?, ?, 1, ?, ?)"
		args = append(args, l.CorpID, l.PersonID, l.PoolID, l.Stage, l.Source, l.Channel, l.CodeID, l.StaffUserID, l.CreatedAt, l.UpdatedAt)
		people[i] = [2]any{l.CorpID, l.PersonID}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO leads (corp_id, person_id, pool_id, owner_user_id, stage, source, channel, code_id, staff_userid, version, created_at, updated_at)
		VALUES `+strings.Join(rows, ","), args...); err != nil {
		return err
	}
	ids, err := st.leadsOfPeople(ctx, tx, people)
	if err != nil {
		return err
	}
	for _, l := range ls {
		if l.ID = ids[l.PersonID]; l.ID == 0 {
			return fmt.Errorf("lead of person %d vanished after insert", l.PersonID)
		}
	}
	return nil
}

// historyRow is a history entry of a lead, for addHistories.
type historyRow struct {
	Corp string
	Lead int64
	HistoryEntry
}

// addHistories records many history entries in one statement.
func (st *store) addHistories(ctx context.Context, tx *qsql.Tx, hs []historyRow) error {
	if len(hs) == 0 {
		return nil
	}
	rows := make([]string, len(hs))
	args := make([]any, 0, 9*len(hs))
	for i, h := range hs {
		rows[i] = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
		var key any
		if h.eventKey != "" {
			key = h.eventKey
		}
		args = append(args, h.Corp, h.Lead, h.At, h.ActorUserID, h.Kind, h.From, h.To, truncate(h.Reason, 500), key)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO lead_history (corp_id, lead_id, at, actor_user_id, kind, from_value, to_value, reason, event_key) VALUES `+strings.Join(rows, ","), args...); err != nil {
		return err
	}
	return st.publishChanges(ctx, tx, hs)
}

// movePool moves a lead to another pool if it is still at version.
func (st *store) movePool(ctx context.Context, tx *qsql.Tx, corp string, lead, version, pool, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET pool_id = ?, version = version + 1, updated_at = ? WHERE corp_id = ? AND id = ? AND version = ?`,
		pool, now, corp, lead, version))
}

// touch records a follow-up by the lead's owner; false when it is not theirs.
func (st *store) touch(ctx context.Context, tx *qsql.Tx, corp string, lead, user, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET last_touch_at = ?, updated_at = ? WHERE corp_id = ? AND id = ? AND owner_user_id = ?`,
		now, now, corp, lead, user))
}

// staleLead is a claimed lead whose last follow-up is old enough to check.
type staleLead struct {
	ID          int64  `db:"id"`
	CorpID      string `db:"corp_id"`
	PoolID      int64  `db:"pool_id"`
	Owner       int64  `db:"owner_user_id"`
	LastTouchAt int64  `db:"last_touch_at"`
	Version     int64  `db:"version"`
	RecycleDays int    `db:"recycle_days"`
	ByGrade     string `db:"recycle_by_grade"`
	Grade       string `db:"grade"`
}

// days is how many working days without a follow-up return the lead: its
// grade's in the pool, else the pool's (0: never).
func (l staleLead) days() int {
	var byGrade map[string]int
	_ = json.Unmarshal([]byte(l.ByGrade), &byGrade)
	if d, ok := byGrade[l.Grade]; ok {
		return d
	}
	return l.RecycleDays
}

// staleLeads lists claimed leads of recycling pools untouched for at least
// their pool's days in calendar time (working days are at least as long).
func (st *store) staleLeads(ctx context.Context, now int64, limit int) ([]staleLead, error) {
	var out []staleLead
	err := st.db.SelectContext(ctx, &out, `SELECT l.id, l.corp_id, l.pool_id, l.owner_user_id, l.last_touch_at, l.version, p.recycle_days,
		p.recycle_by_grade, l.grade
		FROM lead_pools p JOIN leads l ON l.pool_id = p.id
		WHERE (p.recycle_days > 0 OR p.recycle_by_grade <> '{}') AND l.owner_user_id <> 0 AND l.merged_into = 0
		AND l.last_touch_at <= ? - CASE WHEN p.recycle_by_grade <> '{}' THEN 1 ELSE p.recycle_days END * 86400000
		ORDER BY l.last_touch_at LIMIT ?`, now, limit)
	return out, err
}

// recycle returns an untouched lead to its pool if nothing changed since it
// was read (same owner, same version).
func (st *store) recycle(ctx context.Context, tx *qsql.Tx, l staleLead, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET owner_user_id = 0, claimed_at = NULL, last_touch_at = NULL, version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND owner_user_id = ? AND version = ? AND last_touch_at = ?`, now, l.CorpID, l.ID, l.Owner, l.Version, l.LastTouchAt))
}

// activityRow is a stored activity.
type activityRow struct {
	Corp   string `db:"corp_id"`
	Person int64  `db:"person_id"`
	Type   string `db:"type"`
	At     int64  `db:"at"`
	Props  string `db:"properties"`
	Key    string `db:"idem_key"`
}

// insertActivities records activities in one statement, skipping those
// whose key was recorded (or repeats within the batch); it returns how many
// it recorded.
func (st *store) insertActivities(ctx context.Context, tx *qsql.Tx, as []activityRow, batch string, now int64) (int, error) {
	if len(as) == 0 {
		return 0, nil
	}
	cols := []string{"corp_id", "person_id", "type", "at", "properties", "idem_key", "batch", "created_at"}
	args := make([]any, 0, len(as)*len(cols))
	for _, a := range as {
		var key any
		if a.Key != "" {
			key = a.Key
		}
		args = append(args, a.Corp, a.Person, a.Type, a.At, a.Props, key, batch, now)
	}
	res, err := tx.ExecContext(ctx, st.db.InsertIgnoreRows("activities", cols, []string{"corp_id", "idem_key"}, len(as)), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// activitiesOf is the newest activities of people.
func (st *store) activitiesOf(ctx context.Context, corp string, people []int64, limit int) ([]activityRow, error) {
	out := []activityRow{}
	q, args, err := sqlx.In(`SELECT corp_id, person_id, type, at, properties, COALESCE(idem_key, '') AS idem_key FROM activities
		WHERE person_id IN (?) AND corp_id = ? ORDER BY at DESC LIMIT ?`, people, corp, limit)
	if err != nil {
		return nil, err
	}
	err = st.db.SelectContext(ctx, &out, q, args...)
	return out, err
}

func (st *store) createRule(ctx context.Context, r *Rule) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO scoring_rules (corp_id, name, activity_type, cond, points, max_points, repeatable, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.CorpID, strings.TrimSpace(r.Name), r.ActivityType, r.Condition, r.Points, r.MaxPoints, r.Repeatable, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return err
	}
	r.ID, err = res.LastInsertId()
	return err
}

func (st *store) rules(ctx context.Context, corp, typ string) ([]Rule, error) {
	out := []Rule{}
	q := `SELECT id, corp_id, name, activity_type, cond, points, max_points, repeatable, created_at, updated_at FROM scoring_rules WHERE corp_id = ?`
	args := []any{corp}
	if typ != "" {
		q, args = q+` AND activity_type = ?`, append(args, typ)
	}
	err := st.db.SelectContext(ctx, &out, q+` ORDER BY id`, args...)
	return out, err
}

const settingsCols = `half_life_days, mql_threshold, grade_a, grade_b, grade_c, mql_min_grade, cooling_action`

func (st *store) settings(ctx context.Context, q sqlx.QueryerContext, corp string) (Settings, error) {
	var s Settings
	err := sqlx.GetContext(ctx, q, &s, `SELECT `+settingsCols+` FROM lead_settings WHERE corp_id = ?`, corp)
	if qsql.IsNoRows(err) {
		return defaultSettings, nil
	}
	return s, err
}

func (st *store) putSettings(ctx context.Context, corp string, s Settings, now int64) error {
	cols := []string{"half_life_days", "mql_threshold", "grade_a", "grade_b", "grade_c", "mql_min_grade", "cooling_action", "updated_at"}
	q := st.db.Upsert("lead_settings", append([]string{"corp_id"}, cols...), []string{"corp_id"}, cols)
	_, err := st.db.ExecContext(ctx, q, corp, s.HalfLifeDays, s.MQLThreshold, s.GradeA, s.GradeB, s.GradeC, s.MQLMinGrade, s.Cooling, now)
	return err
}

// given is what a rule has given a lead.
type given struct{ Points, Times int }

// rulePoints reads what the rules have given the leads, by [lead, rule],
// from the leads' rows (locking them).
func (st *store) rulePoints(ctx context.Context, tx *qsql.Tx, leads []int64) (map[[2]int64]given, error) {
	out := map[[2]int64]given{}
	var rows []struct {
		ID    int64   `db:"id"`
		Given *string `db:"rule_points"`
	}
	// A locking read: the latest points, not the transaction's snapshot.
	q, args, err := sqlx.In(`SELECT id, rule_points FROM leads WHERE id IN (?)`+st.db.ForUpdate(), leads)
	if err != nil {
		return nil, err
	}
	if err := tx.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		if err := decodeGiven(r.ID, r.Given, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// putRulePoints writes what the rules have given some leads, all of each
// one's from g, in their rows, in one statement.
func (st *store) putRulePoints(ctx context.Context, tx *qsql.Tx, leads []int64, g map[[2]int64]given) error {
	if len(leads) == 0 {
		return nil
	}
	byLead := givenByLead(g)
	leads = slices.Sorted(slices.Values(leads)) // one lock order
	args := make([]any, 0, 2*len(leads))
	for _, l := range leads {
		args = append(args, l, encodeGiven(byLead[l]))
	}
	_, err := tx.ExecContext(ctx, st.db.UpdateRows("leads", "id", []string{"rule_points"}, len(leads)), args...)
	return err
}

// ruleGiven is what one rule has given one lead, as a lead's row keeps it.
type ruleGiven struct {
	Rule int64
	given
}

// givenByLead splits what rules have given leads by lead, each lead's in
// rule order.
func givenByLead(g map[[2]int64]given) map[int64][]ruleGiven {
	out := map[int64][]ruleGiven{}
	for k, v := range g {
		out[k[0]] = append(out[k[0]], ruleGiven{k[1], v})
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b ruleGiven) int { return cmp.Compare(a.Rule, b.Rule) })
	}
	return out
}

// encodeGiven is a lead's rule points as its row keeps them: a JSON array
// of [rule, points, times] in rule order; nil for none.
func encodeGiven(rs []ruleGiven) *string {
	if len(rs) == 0 {
		return nil
	}
	b := make([]byte, 0, 16*len(rs))
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, r.Rule, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(r.Points), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(r.Times), 10)
		b = append(b, ']')
	}
	s := string(append(b, ']'))
	return &s
}

// decodeGiven adds a lead's rule points, as its row keeps them, to g.
func decodeGiven(lead int64, stored *string, g map[[2]int64]given) error {
	rs, err := parseGiven(lead, stored)
	for _, r := range rs {
		g[[2]int64{lead, r.Rule}] = r.given
	}
	return err
}

// parseGiven reads a lead's rule points as its row keeps them, in rule
// order.
func parseGiven(lead int64, stored *string) ([]ruleGiven, error) {
	if stored == nil || *stored == "" {
		return nil, nil
	}
	var rs [][3]int64
	if err := json.Unmarshal([]byte(*stored), &rs); err != nil {
		return nil, fmt.Errorf("rule points of lead %d: %w", lead, err)
	}
	out := make([]ruleGiven, len(rs))
	for i, r := range rs {
		out[i] = ruleGiven{r[0], given{int(r[1]), int(r[2])}}
	}
	slices.SortFunc(out, func(a, b ruleGiven) int { return cmp.Compare(a.Rule, b.Rule) })
	return out, nil
}

type engagementRow struct {
	Milli int64  `db:"engagement_milli"`
	At    int64  `db:"engagement_at"`
	Grade string `db:"grade"`
}

func (st *store) engagement(ctx context.Context, tx *qsql.Tx, lead int64) (engagementRow, error) {
	var e engagementRow
	// A locking read: the latest engagement, not the transaction's snapshot
	// (taken before this lead's lock was granted, perhaps).
	err := tx.GetContext(ctx, &e, `SELECT engagement_milli, engagement_at, grade FROM leads WHERE id = ?`+st.db.ForUpdate(), lead)
	return e, err
}

// setEngagement stores a lead's engagement as of at, and when it will fall
// below the MQL threshold (nil: it is below already); a lead back above the
// threshold is no longer cooling.
func (st *store) setEngagement(ctx context.Context, tx *qsql.Tx, lead, milli, at int64, coolsAt *int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE leads SET engagement_milli = ?, engagement_at = ?, cools_at = ?,
		cooling = CASE WHEN ? THEN 0 ELSE cooling END, updated_at = ? WHERE id = ?`, milli, at, coolsAt, coolsAt != nil, at, lead)
	return err
}

// promote moves a lead from one stage to another if it is still in from.
func (st *store) promote(ctx context.Context, tx *qsql.Tx, corp string, lead int64, from, to string, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET stage = ?, status = 'new', status_reason = '', version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ? AND stage = ?`, to, now, corp, lead, from))
}

// insertedActivities reads back the activities one call inserted.
func (st *store) insertedActivities(ctx context.Context, tx *qsql.Tx, batch string) ([]activityRow, error) {
	out := []activityRow{}
	err := tx.SelectContext(ctx, &out, `SELECT corp_id, person_id, type, at, properties, COALESCE(idem_key, '') AS idem_key FROM activities
		WHERE batch = ? ORDER BY at, id`, batch)
	return out, err
}

func (st *store) createAssignmentRule(ctx context.Context, r *AssignmentRule) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO assignment_rules (corp_id, kind, position, name, cond, users, strategy, weights, working_hours, next_pick, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`, r.CorpID, r.Kind, r.Position, strings.TrimSpace(r.Name), r.Condition, r.UsersJSON, r.Strategy, r.WeightsJSON,
		r.WorkingHours, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return err
	}
	r.ID, err = res.LastInsertId()
	return err
}

// assignmentRules lists a corp's rules of a kind ("" every kind) in order.
func (st *store) assignmentRules(ctx context.Context, q sqlx.QueryerContext, corp, kind string) ([]AssignmentRule, error) {
	out := []AssignmentRule{}
	err := sqlx.SelectContext(ctx, q, &out, `SELECT id, corp_id, kind, position, name, cond, users, strategy, weights, working_hours, created_at, updated_at FROM assignment_rules
		WHERE corp_id = ? AND (? = '' OR kind = ?) ORDER BY kind, position, id`, corp, kind, kind)
	return out, err
}

// nextPick takes a rule's next rotation position: the increment locks the
// row until the transaction ends, so concurrent assignments take turns.
func (st *store) nextPick(ctx context.Context, tx *qsql.Tx, rule int64) (int64, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE assignment_rules SET next_pick = next_pick + 1 WHERE id = ?`, rule); err != nil {
		return 0, err
	}
	var n int64
	err := tx.GetContext(ctx, &n, `SELECT next_pick FROM assignment_rules WHERE id = ?`, rule)
	return n - 1, err
}

// rulesOf reads the rules of several corps in one query, by corp.
func (st *store) rulesOf(ctx context.Context, tx *qsql.Tx, corps []string) (map[string][]Rule, error) {
	var rows []Rule
	q, args, err := sqlx.In(`SELECT id, corp_id, name, activity_type, cond, points, max_points, repeatable, created_at, updated_at FROM scoring_rules
		WHERE corp_id IN (?) ORDER BY id`, corps)
	if err != nil {
		return nil, err
	}
	if err := tx.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := map[string][]Rule{}
	for _, r := range rows {
		out[r.CorpID] = append(out[r.CorpID], r)
	}
	return out, nil
}
