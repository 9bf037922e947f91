package journeys

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// This file holds the statements of journeys, versions, runs, actions and
// statistics.

const journeyCols = `id, corp_id, name, status, draft, version, enrolled, active, goals, exited, created_at, updated_at`

func insertJourney(ctx context.Context, tx *qsql.Tx, j Journey, now int64) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO journeys (corp_id, name, status, draft, version, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)`,
		j.CorpID, j.Name, StatusDraft, j.DraftJSON, now, now)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func updateDraft(ctx context.Context, tx *qsql.Tx, j Journey, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE journeys SET name = ?, draft = ?, updated_at = ? WHERE corp_id = ? AND id = ?`, j.Name, j.DraftJSON, now, j.CorpID, j.ID)
	return err
}

func readJourney(ctx context.Context, q sqlx.QueryerContext, corp string, id int64) (*Journey, error) {
	var j Journey
	err := sqlx.GetContext(ctx, q, &j, `SELECT `+journeyCols+` FROM journeys WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrJourneyNotFound
	}
	return &j, err
}

func readJourneys(ctx context.Context, db *qsql.DB, corp string) ([]Journey, error) {
	out := []Journey{}
	err := db.SelectContext(ctx, &out, `SELECT `+journeyCols+` FROM journeys WHERE corp_id = ? ORDER BY id`, corp)
	return out, err
}

func insertVersion(ctx context.Context, tx *qsql.Tx, journey, version int64, graph string, by, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO journey_versions (journey_id, version, graph, published_by, published_at) VALUES (?, ?, ?, ?, ?)`,
		journey, version, graph, by, now)
	return err
}

// setPublished moves the journey to version if it is still at was (two
// publishes at once: the second fails on the version's key anyway).
func setPublished(ctx context.Context, tx *qsql.Tx, journey, was, version, now int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE journeys SET version = ?, status = ?, updated_at = ? WHERE id = ? AND version = ?`,
		version, StatusPublished, now, journey, was)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrChanged
	}
	return nil
}

func setStatus(ctx context.Context, tx *qsql.Tx, journey int64, status string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE journeys SET status = ?, updated_at = ? WHERE id = ?`, status, now, journey)
	return err
}

func readVersion(ctx context.Context, db *qsql.DB, journey, version int64) (string, error) {
	var g string
	err := db.GetContext(ctx, &g, `SELECT graph FROM journey_versions WHERE journey_id = ? AND version = ?`, journey, version)
	if qsql.IsNoRows(err) {
		return "", ErrJourneyNotFound
	}
	return g, err
}

type publishedRow struct {
	CorpID  string `db:"corp_id"`
	ID      int64  `db:"id"`
	Version int64  `db:"version"`
}

// publishedJourneysOf reads the published journeys of corps, by corp and id.
func publishedJourneysOf(ctx context.Context, q sqlx.QueryerContext, corps []string) ([]publishedRow, error) {
	query, args, err := sqlx.In(`SELECT corp_id, id, version FROM journeys WHERE corp_id IN (?) AND status = ? ORDER BY corp_id, id`, corps, StatusPublished)
	if err != nil {
		return nil, err
	}
	var out []publishedRow
	err = sqlx.SelectContext(ctx, q, &out, query, args...)
	return out, err
}

// activeNodes are the nodes where active runs of versions before version are.
func activeNodes(ctx context.Context, tx *qsql.Tx, journey, version int64) ([]string, error) {
	var out []string
	err := tx.SelectContext(ctx, &out, `SELECT DISTINCT node FROM journey_runs WHERE journey_id = ? AND version < ? AND active_guard = 1 ORDER BY node`,
		journey, version)
	return out, err
}

// migrateRuns moves the active runs at node from (of earlier versions, and
// not held by an engine) to node to of version.
func migrateRuns(ctx context.Context, tx *qsql.Tx, journey, version int64, from, to string, keepTimer bool, now int64) error {
	q := `UPDATE journey_runs SET version = ?, node = ?, updated_at = ?`
	if !keepTimer {
		q += `, state = 'ready', due_at = ?, wait_event = ''`
	}
	q += ` WHERE journey_id = ? AND version < ? AND node = ? AND active_guard = 1 AND lease_token = ''`
	args := []any{version, to, now}
	if !keepTimer {
		args = append(args, now)
	}
	args = append(args, journey, version, from)
	_, err := tx.ExecContext(ctx, q, args...)
	return err
}

type lastRun struct {
	active    bool
	enteredAt int64
}

// lastRuns is each lead's latest run of the journey.
func lastRuns(ctx context.Context, tx *qsql.Tx, journey int64, leads []int64) (map[int64]lastRun, error) {
	q, args, err := sqlx.In(`SELECT lead_id, MAX(entered_at) AS entered_at, MAX(COALESCE(active_guard, 0)) AS active
		FROM journey_runs WHERE journey_id = ? AND lead_id IN (?) GROUP BY lead_id`, journey, leads)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Lead      int64 `db:"lead_id"`
		EnteredAt int64 `db:"entered_at"`
		Active    int   `db:"active"`
	}
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(q), args...); err != nil {
		return nil, err
	}
	out := make(map[int64]lastRun, len(rows))
	for _, r := range rows {
		out[r.Lead] = lastRun{active: r.Active == 1, enteredAt: r.EnteredAt}
	}
	return out, nil
}

var runInsertCols = []string{"corp_id", "journey_id", "version", "lead_id", "node", "state", "due_at", "active_guard", "entered_at", "updated_at"}

// insertRuns starts runs at node, due now; a lead with an active run of the
// journey is skipped by the unique key. It returns how many it started.
func insertRuns(ctx context.Context, db *qsql.DB, tx *qsql.Tx, corp string, journey, version int64, node string, leads []int64, now int64) (int, error) {
	if len(leads) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(leads)*len(runInsertCols))
	for _, l := range leads {
		args = append(args, corp, journey, version, l, node, StateReady, now, 1, now, now)
	}
	res, err := tx.ExecContext(ctx, db.InsertIgnoreRows("journey_runs", runInsertCols, []string{"journey_id", "lead_id", "active_guard"}, len(leads)), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// wakeRuns moves the lead's runs waiting for one of types (and held by no
// engine) to woken, due now.
func wakeRuns(ctx context.Context, tx *qsql.Tx, corp string, lead int64, types []string, now int64) error {
	q, args, err := sqlx.In(`UPDATE journey_runs SET state = ?, due_at = ?, updated_at = ?
		WHERE corp_id = ? AND lead_id = ? AND wait_event IN (?) AND state = ? AND lease_token = ''`,
		StateWoken, now, now, corp, lead, types, StateEvent)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(q), args...)
	return err
}

const runCols = `id, corp_id, journey_id, version, lead_id, node, state, due_at, wait_event, branch, step, attempts, last_error, entered_at, updated_at, ended_at`

// leadRef is a lead of a corp.
type leadRef struct {
	corp string
	lead int64
}

// activeRunsOfLeadsIn reads the active runs of leads of any corps, by lead.
func activeRunsOfLeadsIn(ctx context.Context, db *qsql.DB, refs []leadRef) (map[int64][]Run, error) {
	out := make(map[int64][]Run, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	keys := make([][]any, len(refs))
	for i, r := range refs {
		keys[i] = []any{r.corp, r.lead}
	}
	cond, args := db.KeysIn([]string{"corp_id", "lead_id"}, keys)
	var rows []Run
	if err := db.SelectContext(ctx, &rows, `SELECT `+runCols+` FROM journey_runs WHERE `+cond+` AND active_guard = 1`, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.LeadID] = append(out[r.LeadID], r)
	}
	return out, nil
}

func activeRunsOf(ctx context.Context, db *qsql.DB, corp string, lead int64) ([]Run, error) {
	var out []Run
	err := db.SelectContext(ctx, &out, `SELECT `+runCols+` FROM journey_runs WHERE corp_id = ? AND lead_id = ? AND active_guard = 1`, corp, lead)
	return out, err
}

// activeRunsOfJourney reads a journey's active runs (of the leads among
// leads, or all when nil).
func activeRunsOfJourney(ctx context.Context, tx *qsql.Tx, journey int64, leads []int64) ([]Run, error) {
	q, args := `SELECT `+runCols+` FROM journey_runs WHERE journey_id = ? AND active_guard = 1`, []any{journey}
	if leads != nil {
		var err error
		if q, args, err = sqlx.In(q+` AND lead_id IN (?)`, journey, leads); err != nil {
			return nil, err
		}
	}
	var out []Run
	err := tx.SelectContext(ctx, &out, tx.Rebind(q), args...)
	return out, err
}

// endRun ends an active run no engine holds, if it is still where it was read.
func endRun(ctx context.Context, tx *qsql.Tx, r *Run, state string, now int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE journey_runs SET state = ?, due_at = NULL, wait_event = '', active_guard = NULL, ended_at = ?, updated_at = ?
		WHERE id = ? AND active_guard = 1 AND lease_token = '' AND node = ? AND state = ?`, state, now, now, r.ID, r.Node, r.State)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// claimDue claims up to limit runs due by now: candidates are read from
// the due index, then taken with a conditional update that re-checks they
// are still due and pushes due_at to leaseEnd under a fresh token (so two
// engines never both take one, with or without SKIP LOCKED, and a run whose
// engine dies is due again when the lease ends); what this claim won is
// read back by its token. Runs of journeys no longer published are skipped
// (their timers wait for a resume).
func claimDue(ctx context.Context, db *qsql.DB, token string, now, leaseEnd int64, limit int) ([]Run, error) {
	var ids []int64
	// Read through the due index in due order (forced: with a few journeys
	// and a million waiting runs MySQL would rather start from journeys and
	// sort every run of each), skipping runs of journeys not published.
	if err := db.SelectContext(ctx, &ids, `SELECT r.id FROM journey_runs r`+db.ForceIndex("journey_runs_due")+`
		WHERE r.due_at <= ? AND r.journey_id IN (SELECT j.id FROM journeys j WHERE j.status = ?) ORDER BY r.due_at LIMIT ?`, now, StatusPublished, limit); err != nil || len(ids) == 0 {
		return nil, err
	}
	var out []Run
	err := db.WriteTx(ctx, func(tx *qsql.Tx) error {
		q, args, err := sqlx.In(`UPDATE journey_runs SET lease_token = ?, due_at = ? WHERE id IN (?) AND due_at <= ?`, token, leaseEnd, ids, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return err
		}
		q, args, err = sqlx.In(`SELECT `+runCols+` FROM journey_runs WHERE id IN (?) AND lease_token = ?`, ids, token)
		if err != nil {
			return err
		}
		return tx.SelectContext(ctx, &out, tx.Rebind(q), args...)
	})
	for i := range out {
		out[i].token = token
	}
	return out, err
}

// releaseRuns gives back claimed runs, due at now.
func releaseRuns(ctx context.Context, db *qsql.DB, runs []Run, now int64) error {
	return db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for _, r := range runs {
			if _, err := tx.ExecContext(ctx, `UPDATE journey_runs SET lease_token = '', due_at = ? WHERE id = ? AND lease_token = ?`, now, r.ID, r.token); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeRuns writes claimed runs back, each fenced on its claim's token (a
// run whose lease ended and was claimed again changes nothing here).
func writeRuns(ctx context.Context, db *qsql.DB, tx *qsql.Tx, runs []Run, now int64) error {
	for i := range runs {
		r := &runs[i]
		var guard, ended any = 1, nil
		if r.ended() {
			guard, ended = nil, now
			r.DueAt = nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE journey_runs SET node = ?, state = ?, due_at = ?, wait_event = ?, branch = ?, step = ?, attempts = ?, last_error = ?,
			lease_token = '', active_guard = ?, ended_at = ?, updated_at = ? WHERE id = ? AND lease_token = ?`,
			r.Node, r.State, r.DueAt, r.WaitEvent, r.Branch, r.Step, r.Attempts, r.LastError, guard, ended, now, r.ID, r.token); err != nil {
			return err
		}
	}
	return nil
}

var actionCols = []string{"run_id", "step", "node", "kind", "status", "detail", "at"}

// writeActions records actions; a step recorded before (a retried claim)
// is updated with the latest outcome.
func writeActions(ctx context.Context, db *qsql.DB, tx *qsql.Tx, acts []actionRecord) error {
	if len(acts) == 0 {
		return nil
	}
	args := make([]any, 0, len(acts)*len(actionCols))
	for _, a := range acts {
		args = append(args, a.Run, a.Step, a.Node, a.Kind, a.Status, a.Detail, a.At)
	}
	_, err := tx.ExecContext(ctx, db.UpsertRows("journey_actions", actionCols, []string{"run_id", "step"}, []string{"status", "detail", "at"}, len(acts)), args...)
	return err
}

var statCols = []string{"journey_id", "version", "node", "entered", "waiting", "completed", "failed", "conversions"}

// writeStats adds the counter changes: the nodes' in one upsert, then each
// journey's. Both in key order, so two transactions adding to the same
// counters lock them in one order and never deadlock.
func writeStats(ctx context.Context, db *qsql.DB, tx *qsql.Tx, st *stats) error {
	keys := slices.SortedFunc(maps.Keys(st.nodes), func(x, y nodeKey) int {
		return cmp.Or(cmp.Compare(x.journey, y.journey), cmp.Compare(x.version, y.version), cmp.Compare(x.node, y.node))
	})
	args := make([]any, 0, len(keys)*len(statCols))
	n := 0
	for _, k := range keys {
		if d := st.nodes[k]; *d != (nodeDelta{}) {
			args = append(args, k.journey, k.version, k.node, d.entered, d.waiting, d.completed, d.failed, d.conversions)
			n++
		}
	}
	if n > 0 {
		if _, err := tx.ExecContext(ctx, db.UpsertAdding("journey_node_stats", statCols, []string{"journey_id", "version", "node"}, statCols[3:], n), args...); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(st.journeys)) {
		d := st.journeys[id]
		if *d == (journeyDelta{}) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE journeys SET enrolled = enrolled + ?, active = active + ?, goals = goals + ?, exited = exited + ? WHERE id = ?`,
			d.enrolled, d.active, d.goals, d.exited, id); err != nil {
			return err
		}
	}
	return nil
}

// NodeStats are one node's counters.
type NodeStats struct {
	Version     int64  `db:"version" json:"version"`
	Node        string `db:"node" json:"node"`
	Entered     int64  `db:"entered" json:"entered"`
	Waiting     int64  `db:"waiting" json:"waiting"`
	Completed   int64  `db:"completed" json:"completed"`
	Failed      int64  `db:"failed" json:"failed"`
	Conversions int64  `db:"conversions" json:"conversions"`
}

func nodeStats(ctx context.Context, db *qsql.DB, journey int64) ([]NodeStats, error) {
	out := []NodeStats{}
	err := db.SelectContext(ctx, &out, `SELECT version, node, entered, waiting, completed, failed, conversions FROM journey_node_stats
		WHERE journey_id = ? ORDER BY version, node`, journey)
	return out, err
}

func runsOf(ctx context.Context, db *qsql.DB, journey int64, state string, after int64, limit int) ([]Run, error) {
	where := []string{"journey_id = ?", "id > ?"}
	args := []any{journey, after}
	if state != "" {
		where = append(where, "state = ?")
		args = append(args, state)
	}
	args = append(args, limit)
	out := []Run{}
	err := db.SelectContext(ctx, &out, `SELECT `+runCols+` FROM journey_runs WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`, args...)
	return out, err
}

// ActionRow is an action a run took.
type ActionRow struct {
	Step   int    `db:"step" json:"step"`
	Node   string `db:"node" json:"node"`
	Kind   string `db:"kind" json:"kind"`
	Status string `db:"status" json:"status"`
	Detail string `db:"detail" json:"detail,omitempty"`
	At     int64  `db:"at" json:"at"`
}

func actionsOf(ctx context.Context, db *qsql.DB, run int64) ([]ActionRow, error) {
	out := []ActionRow{}
	err := db.SelectContext(ctx, &out, `SELECT step, node, kind, status, detail, at FROM journey_actions WHERE run_id = ? ORDER BY step`, run)
	return out, err
}

// markRecheck asks the engine holding a run to check its goal again.
func markRecheck(ctx context.Context, tx *qsql.Tx, run int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE journey_runs SET recheck = 1 WHERE id = ? AND lease_token <> ''`, run)
	return err
}

// takeRechecks clears and returns the runs among ids marked for a recheck.
func takeRechecks(ctx context.Context, db *qsql.DB, ids []int64) ([]Run, error) {
	q, args, err := sqlx.In(`SELECT `+runCols+` FROM journey_runs WHERE id IN (?) AND recheck = 1`, ids)
	if err != nil {
		return nil, err
	}
	var out []Run
	if err := db.SelectContext(ctx, &out, db.Rebind(q), args...); err != nil || len(out) == 0 {
		return nil, err
	}
	marked := make([]int64, len(out))
	for i, r := range out {
		marked[i] = r.ID
	}
	q, args, err = sqlx.In(`UPDATE journey_runs SET recheck = 0 WHERE id IN (?)`, marked)
	if err != nil {
		return nil, err
	}
	_, err = db.ExecContext(ctx, db.Rebind(q), args...)
	return out, err
}

// readRun reads a run and whether an engine holds it.
func readRun(ctx context.Context, tx *qsql.Tx, id int64) (Run, bool, error) {
	var row struct {
		Run
		Token string `db:"lease_token"`
	}
	err := tx.GetContext(ctx, &row, `SELECT `+runCols+`, lease_token FROM journey_runs WHERE id = ?`, id)
	return row.Run, row.Token != "", err
}

// branchRuns pages through a journey's runs that took a split branch:
// their branch, state and lead, after the run id after.
func branchRuns(ctx context.Context, db *qsql.DB, journey, after int64, limit int) ([]Run, error) {
	var out []Run
	err := db.SelectContext(ctx, &out, `SELECT `+runCols+` FROM journey_runs WHERE journey_id = ? AND id > ? AND branch <> '' ORDER BY id LIMIT ?`,
		journey, after, limit)
	return out, err
}

// pauseShift moves a paused journey's timers out of the due index's way
// (a century on) and back on resume, each keeping its time: engines never
// read past a million paused runs to find due ones.
const pauseShift = int64(100 * 365 * 24 * time.Hour / time.Millisecond)

// shiftDue moves the due times of a journey's runs by by (paused runs are
// those at or beyond pauseShift).
func shiftDue(ctx context.Context, tx *qsql.Tx, journey, by int64) error {
	cond := "due_at < ?"
	if by < 0 {
		cond = "due_at >= ?"
	}
	_, err := tx.ExecContext(ctx, `UPDATE journey_runs SET due_at = due_at + ? WHERE journey_id = ? AND due_at IS NOT NULL AND `+cond, by, journey, pauseShift)
	return err
}

// activeRunsPage reads a journey's active runs in lead order after the
// lead id after (the active index: journey, lead, guard).
func activeRunsPage(ctx context.Context, db *qsql.DB, journey, after int64, limit int) ([]Run, error) {
	var out []Run
	err := db.SelectContext(ctx, &out, `SELECT `+runCols+` FROM journey_runs WHERE journey_id = ? AND lead_id > ? AND active_guard = 1 ORDER BY lead_id LIMIT ?`,
		journey, after, limit)
	return out, err
}
