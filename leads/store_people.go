package leads

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// This file holds the statements of people, identities, companies, merges
// and upsert keys.

// identityOwners maps [kind, value] identities of a corp to their people.
func (st *store) identityOwners(ctx context.Context, q sqlx.QueryerContext, corp string, ids []Identity) (map[Identity]int64, error) {
	out := map[Identity]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([][]any, len(ids))
	for i, id := range ids {
		keys[i] = []any{corp, id.Kind, id.Value}
	}
	var rows []struct {
		Kind   string `db:"kind"`
		Value  string `db:"value"`
		Person int64  `db:"person_id"`
	}
	in, args := st.db.KeysIn([]string{"corp_id", "kind", "value"}, keys)
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT kind, value, person_id FROM person_identities WHERE `+in, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[Identity{r.Kind, r.Value}] = r.Person
	}
	return out, nil
}

// identitiesOf lists a person's identities.
func (st *store) identitiesOf(ctx context.Context, q sqlx.QueryerContext, corp string, person int64) ([]Identity, error) {
	out := []Identity{}
	err := sqlx.SelectContext(ctx, q, &out, `SELECT kind, value FROM person_identities WHERE corp_id = ? AND person_id = ? ORDER BY kind, value`, corp, person)
	return out, err
}

// personIdentity is an identity and the person it belongs to.
type personIdentity struct {
	person int64
	Identity
}

// identitiesOf pairs identities with their person.
func identitiesOf(person int64, ids []Identity) []personIdentity {
	out := make([]personIdentity, len(ids))
	for i, id := range ids {
		out[i] = personIdentity{person, id}
	}
	return out
}

// addIdentities gives people identities, in one statement; a duplicate key
// means another transaction took one meanwhile (the caller starts over).
func (st *store) addIdentities(ctx context.Context, tx *qsql.Tx, corp string, ids []personIdentity, now int64) error {
	if len(ids) == 0 {
		return nil
	}
	rows := make([]string, len(ids))
	args := make([]any, 0, 5*len(ids))
	for i, id := range ids {
		rows[i] = "(?, ?, ?, ?, ?)"
		args = append(args, corp, id.Kind, id.Value, id.person, now)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO person_identities (corp_id, kind, value, person_id, created_at) VALUES `+strings.Join(rows, ","), args...)
	return err
}

// moveIdentities moves the listed identities from one person to another.
func (st *store) moveIdentities(ctx context.Context, tx *qsql.Tx, corp string, from, to int64, ids []Identity) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE person_identities SET person_id = ? WHERE corp_id = ? AND kind = ? AND value = ? AND person_id = ?`,
			to, corp, id.Kind, id.Value, from); err != nil {
			return err
		}
	}
	return nil
}

const personCols = `p.id, p.corp_id, p.name, p.title, p.region, p.company_id, COALESCE(c.name, '') AS company, COALESCE(c.industry, '') AS industry,
	COALESCE(c.size, 0) AS company_size, p.merged_into, p.needs_review, p.review_reasons, p.test_data, p.created_at, p.updated_at`

// person reads one person of a corp.
func (st *store) person(ctx context.Context, q sqlx.QueryerContext, corp string, id int64) (*Person, error) {
	var p Person
	err := sqlx.GetContext(ctx, q, &p, `SELECT `+personCols+` FROM people p LEFT JOIN companies c ON c.id = p.company_id
		WHERE p.corp_id = ? AND p.id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrPersonNotFound
	}
	if err != nil {
		return nil, err
	}
	p.Reviews = []Review{}
	if p.ReviewReasons != "" {
		_ = json.Unmarshal([]byte(p.ReviewReasons), &p.Reviews)
	}
	return &p, nil
}

// personRow is a person to insert.
type personRow struct {
	in      *PersonIn
	reviews string // as stored: "" for none
	test    bool
	company int64
}

// insertPeople inserts people and returns their ids in order: in one
// statement when the server gives a multi-row insert consecutive ids,
// else one at a time (people have no other key to read them back by).
func (st *store) insertPeople(ctx context.Context, tx *qsql.Tx, corp string, ps []personRow, now int64) ([]int64, error) {
	const insert = `INSERT INTO people (corp_id, name, title, region, company_id, needs_review, review_reasons, test_data, created_at, updated_at) VALUES `
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	argsOf := func(p personRow) []any {
		return []any{corp, p.in.Name, p.in.Title, p.in.Region, p.company, p.reviews != "", p.reviews, p.test, now, now}
	}
	ids := make([]int64, len(ps))
	if len(ps) > 1 && st.db.ConsecutiveIDs() {
		args := make([]any, 0, 10*len(ps))
		for _, p := range ps {
			args = append(args, argsOf(p)...)
		}
		res, err := tx.ExecContext(ctx, insert+strings.Repeat(row+",", len(ps)-1)+row, args...)
		if err != nil {
			return nil, err
		}
		first, ok := st.db.InsertedIDs(res, len(ps))
		if !ok {
			return nil, fmt.Errorf("insert of %d people: the server did not tell their ids", len(ps))
		}
		for i := range ids {
			ids[i] = first + int64(i)
		}
		return ids, nil
	}
	for i, p := range ps {
		res, err := tx.ExecContext(ctx, insert+row, argsOf(p)...)
		if err != nil {
			return nil, err
		}
		if ids[i], err = res.LastInsertId(); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// updatePerson sets the fields given (empty ones keep what is stored), the
// review reasons when there are new ones, and the test flag once raised.
func (st *store) updatePerson(ctx context.Context, tx *qsql.Tx, corp string, id int64, in *PersonIn, reviews string, test bool, company, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE people SET
		name = CASE WHEN ? = '' THEN name ELSE ? END,
		title = CASE WHEN ? = '' THEN title ELSE ? END,
		region = CASE WHEN ? = '' THEN region ELSE ? END,
		company_id = CASE WHEN ? = 0 THEN company_id ELSE ? END,
		needs_review = CASE WHEN ? = '' THEN needs_review ELSE 1 END,
		review_reasons = CASE WHEN ? = '' THEN review_reasons ELSE ? END,
		test_data = CASE WHEN ? THEN 1 ELSE test_data END,
		updated_at = ?
		WHERE corp_id = ? AND id = ?`,
		in.Name, in.Name, in.Title, in.Title, in.Region, in.Region, company, company, reviews, reviews, reviews, test, now, corp, id)
	return err
}

// companyIn is a company as an upsert names it.
type companyIn struct {
	name, norm, industry string
	size                 int
}

// companies returns the ids of the corp's companies of the normalised names
// of cs, by normalised name, making those there are none of (named as the
// first of cs names them); made lists, in cs's order, the ones it made.
// The industry and size given are set (the last given of each).
func (st *store) companies(ctx context.Context, tx *qsql.Tx, corp string, cs []companyIn, now int64) (ids map[string]int64, made []string, err error) {
	want := map[string]*companyIn{}
	var norms []string
	for _, c := range cs {
		w, ok := want[c.norm]
		if !ok {
			w = &companyIn{name: c.name, norm: c.norm}
			want[c.norm] = w
			norms = append(norms, c.norm)
		}
		w.industry = cmp.Or(c.industry, w.industry)
		w.size = cmp.Or(c.size, w.size)
	}
	read := func(lock string) (map[string]int64, error) {
		q, args, err := sqlx.In(`SELECT id, norm_name FROM companies WHERE corp_id = ? AND norm_name IN (?)`+lock, corp, norms)
		if err != nil {
			return nil, err
		}
		var rows []struct {
			ID   int64  `db:"id"`
			Norm string `db:"norm_name"`
		}
		if err := tx.SelectContext(ctx, &rows, tx.Rebind(q), args...); err != nil {
			return nil, err
		}
		out := make(map[string]int64, len(rows))
		for _, r := range rows {
			out[r.Norm] = r.ID
		}
		return out, nil
	}
	if ids, err = read(""); err != nil {
		return nil, nil, err
	}
	var args []any
	for _, n := range norms {
		if w := want[n]; ids[n] == 0 {
			made = append(made, n)
			args = append(args, corp, w.name, w.norm, w.industry, w.size, now, now)
		} else if w.industry != "" || w.size > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE companies SET industry = CASE WHEN ? = '' THEN industry ELSE ? END,
				size = CASE WHEN ? = 0 THEN size ELSE ? END, updated_at = ? WHERE id = ?`, w.industry, w.industry, w.size, w.size, now, ids[n]); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(made) == 0 {
		return ids, nil, nil
	}
	// Another transaction may make one of them meanwhile: the insert skips
	// it, and only a locking read sees it (a plain one reads the snapshot).
	q := st.db.InsertIgnoreRows("companies", []string{"corp_id", "name", "norm_name", "industry", "size", "created_at", "updated_at"}, []string{"corp_id", "norm_name"}, len(made))
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return nil, nil, err
	}
	if ids, err = read(st.db.ForShare()); err != nil {
		return nil, nil, err
	}
	for _, n := range made {
		if ids[n] == 0 {
			return nil, nil, fmt.Errorf("company %q vanished after insert", n)
		}
	}
	return ids, made, nil
}

// updateCompanyOf sets the industry and size given of a person's company.
func (st *store) updateCompanyOf(ctx context.Context, tx *qsql.Tx, corp string, person int64, industry string, size int, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE companies SET industry = CASE WHEN ? = '' THEN industry ELSE ? END,
		size = CASE WHEN ? = 0 THEN size ELSE ? END, updated_at = ?
		WHERE corp_id = ? AND id = (SELECT company_id FROM people WHERE corp_id = ? AND id = ?)`, industry, industry, size, size, now, corp, corp, person)
	return err
}

// companiesLike lists the corp's companies made before company whose
// normalised names start like prefix (the candidates for a near-duplicate:
// of two alike, the newer is proposed, once).
func (st *store) companiesLike(ctx context.Context, tx *qsql.Tx, corp, prefix string, company int64) ([]Company, error) {
	var out []Company
	err := tx.SelectContext(ctx, &out, `SELECT id, name, norm_name FROM companies WHERE corp_id = ? AND norm_name LIKE ? AND id < ? ORDER BY id LIMIT 50`,
		corp, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(prefix)+"%", company)
	return out, err
}

// proposeCompanies records near-duplicate pairs for review.
func (st *store) proposeCompanies(ctx context.Context, tx *qsql.Tx, corp string, company int64, similar []Company, now int64) error {
	q := st.db.InsertIgnoreRows("company_reviews", []string{"corp_id", "company_id", "similar_id", "reason", "created_at"}, []string{"corp_id", "company_id", "similar_id"}, 1)
	for _, c := range similar {
		if _, err := tx.ExecContext(ctx, q, corp, company, c.ID, "name alike: "+c.Name, now); err != nil {
			return err
		}
	}
	return nil
}

// companyReviews lists the near-duplicate pairs of a corp.
func (st *store) companyReviews(ctx context.Context, corp string) ([]CompanyReview, error) {
	out := []CompanyReview{}
	err := st.db.SelectContext(ctx, &out, `SELECT r.company_id, a.name AS company, r.similar_id, b.name AS similar, r.reason, r.created_at
		FROM company_reviews r JOIN companies a ON a.id = r.company_id JOIN companies b ON b.id = r.similar_id
		WHERE r.corp_id = ? ORDER BY r.created_at, r.company_id`, corp)
	return out, err
}

// leadOfPerson reads a person's lead (nil when they have none).
func (st *store) leadOfPerson(ctx context.Context, q sqlx.QueryerContext, corp string, person int64) (*Lead, error) {
	var l Lead
	err := sqlx.GetContext(ctx, q, &l, `SELECT `+leadCols+` FROM leads l JOIN people p ON p.id = l.person_id WHERE l.corp_id = ? AND l.person_id = ?`, corp, person)
	if qsql.IsNoRows(err) {
		return nil, nil
	}
	return &l, err
}

// setQualification sets a lead's BANT fields that are given.
func (st *store) setQualification(ctx context.Context, tx *qsql.Tx, corp string, lead int64, q Qualification, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE leads SET
		budget = CASE WHEN ? = '' THEN budget ELSE ? END,
		authority = CASE WHEN ? = '' THEN authority ELSE ? END,
		need = CASE WHEN ? = '' THEN need ELSE ? END,
		timeline = CASE WHEN ? = '' THEN timeline ELSE ? END,
		version = version + 1, updated_at = ?
		WHERE corp_id = ? AND id = ?`, q.Budget, q.Budget, q.Authority, q.Authority, q.Need, q.Need, q.Timeline, q.Timeline, now, corp, lead)
	return err
}

// markPersonMerged marks a person merged into another; false when they
// were merged already.
func (st *store) markPersonMerged(ctx context.Context, tx *qsql.Tx, corp string, person, into, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE people SET merged_into = ?, updated_at = ? WHERE corp_id = ? AND id = ? AND merged_into = 0`, into, now, corp, person))
}

// unmarkPersonMerged restores a merged person; false when they are not
// merged into that person (any more).
func (st *store) unmarkPersonMerged(ctx context.Context, tx *qsql.Tx, corp string, person, into, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE people SET merged_into = 0, updated_at = ? WHERE corp_id = ? AND id = ? AND merged_into = ?`, now, corp, person, into))
}

// setLeadMerged marks a lead merged into another (0: restores it) if it is
// still at version; false when it changed meanwhile (a claim, say).
func (st *store) setLeadMerged(ctx context.Context, tx *qsql.Tx, corp string, lead, version, into, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET merged_into = ?, version = version + 1, updated_at = ? WHERE corp_id = ? AND id = ? AND version = ?`,
		into, now, corp, lead, version))
}

// recountOpen puts a lead back on its owner's open count, restored by an
// unmerge or moved to another pool (neither is a claim: caps are not
// checked).
func (st *store) recountOpen(ctx context.Context, tx *qsql.Tx, corp string, pool, user int64) error {
	q := st.db.InsertIgnoreRows("lead_claim_counters", []string{"corp_id", "pool_id", "user_id"}, []string{"corp_id", "pool_id", "user_id"}, 1)
	if _, err := tx.ExecContext(ctx, q, corp, pool, user); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE lead_claim_counters SET open_leads = open_leads + 1 WHERE corp_id = ? AND pool_id = ? AND user_id = ?`, corp, pool, user)
	return err
}

// recordMerge stores a merge and returns its id.
func (st *store) recordMerge(ctx context.Context, tx *qsql.Tx, m *Merge) (int64, error) {
	ids, _ := json.Marshal(m.Identities)
	res, err := tx.ExecContext(ctx, `INSERT INTO person_merges (corp_id, survivor_id, merged_id, reason, identities, lead_id, engagement_milli, actor_user_id, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.CorpID, m.SurvivorID, m.MergedID, truncate(m.Reason, 255), string(ids), m.LeadID, m.EngagementMilli, m.ActorUserID, m.At)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

const mergeCols = `id, corp_id, survivor_id, merged_id, reason, identities, lead_id, engagement_milli, actor_user_id, at, undone_at, undone_by`

// merge reads one merge of a corp.
func (st *store) merge(ctx context.Context, q sqlx.QueryerContext, corp string, id int64) (*Merge, error) {
	var m Merge
	err := sqlx.GetContext(ctx, q, &m, `SELECT `+mergeCols+` FROM person_merges WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrMergeNotFound
	}
	if err != nil {
		return nil, err
	}
	return &m, json.Unmarshal([]byte(m.IdentitiesJSON), &m.Identities)
}

// mergesOf lists the merges a person took part in, either side.
func (st *store) mergesOf(ctx context.Context, corp string, person int64) ([]Merge, error) {
	out := []Merge{}
	if err := st.db.SelectContext(ctx, &out, `SELECT `+mergeCols+` FROM person_merges WHERE corp_id = ? AND (survivor_id = ? OR merged_id = ?) ORDER BY id`,
		corp, person, person); err != nil {
		return nil, err
	}
	for i := range out {
		if err := json.Unmarshal([]byte(out[i].IdentitiesJSON), &out[i].Identities); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// undoMerge marks a merge undone; false when it was already.
func (st *store) undoMerge(ctx context.Context, tx *qsql.Tx, corp string, id, actor, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE person_merges SET undone_at = ?, undone_by = ? WHERE corp_id = ? AND id = ? AND undone_at IS NULL`, now, actor, corp, id))
}

// absorbed lists the people merged into any of people (one level).
func (st *store) absorbed(ctx context.Context, corp string, people []int64) ([]int64, error) {
	by, err := st.absorbedBy(ctx, st.db, corp, people)
	out := make([]int64, 0, len(by))
	for id := range by {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, err
}

// mergedInto maps people to whom they were merged into (0 when live).
func (st *store) mergedInto(ctx context.Context, q sqlx.QueryerContext, corp string, people []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	if len(people) == 0 {
		return out, nil
	}
	var rows []struct {
		ID   int64 `db:"id"`
		Into int64 `db:"merged_into"`
	}
	query, args, err := sqlx.In(`SELECT id, merged_into FROM people WHERE corp_id = ? AND id IN (?)`, corp, people)
	if err != nil {
		return nil, err
	}
	if err := sqlx.SelectContext(ctx, q, &rows, query, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = r.Into
	}
	return out, nil
}

// historiesOf lists the history of several leads, oldest first.
func (st *store) historiesOf(ctx context.Context, corp string, leads []int64) ([]HistoryEntry, error) {
	out := []HistoryEntry{}
	q, args, err := sqlx.In(`SELECT id, at, actor_user_id, kind, from_value, to_value, reason FROM lead_history
		WHERE corp_id = ? AND lead_id IN (?) ORDER BY id`, corp, leads)
	if err != nil {
		return nil, err
	}
	err = st.db.SelectContext(ctx, &out, q, args...)
	return out, err
}

// leadIDsOfPeople lists the leads of people.
func (st *store) leadIDsOfPeople(ctx context.Context, corp string, people []int64) ([]int64, error) {
	var out []int64
	q, args, err := sqlx.In(`SELECT id FROM leads WHERE corp_id = ? AND person_id IN (?) ORDER BY id`, corp, people)
	if err != nil {
		return nil, err
	}
	err = st.db.SelectContext(ctx, &out, q, args...)
	return out, err
}

// upsertKey claims an idempotency key for a call (false: it was used).
func (st *store) upsertKey(ctx context.Context, tx *qsql.Tx, corp, key, hash string, now int64) (bool, error) {
	q := st.db.InsertIgnoreRows("lead_upserts", []string{"corp_id", "idem_key", "body_hash", "person_id", "lead_id", "created_at"}, []string{"corp_id", "idem_key"}, 1)
	return changedOne(tx.ExecContext(ctx, q, corp, key, hash, 0, 0, now))
}

// settleUpsertKey records what the call with the key made.
func (st *store) settleUpsertKey(ctx context.Context, tx *qsql.Tx, corp, key string, person, lead int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE lead_upserts SET person_id = ?, lead_id = ? WHERE corp_id = ? AND idem_key = ?`, person, lead, corp, key)
	return err
}

// usedUpsertKey reads what an earlier call with the key made.
func (st *store) usedUpsertKey(ctx context.Context, corp, key string) (hash string, person, lead int64, err error) {
	var row struct {
		Hash   string `db:"body_hash"`
		Person int64  `db:"person_id"`
		Lead   int64  `db:"lead_id"`
	}
	err = st.db.GetContext(ctx, &row, `SELECT body_hash, person_id, lead_id FROM lead_upserts WHERE corp_id = ? AND idem_key = ?`, corp, key)
	return row.Hash, row.Person, row.Lead, err
}

func (st *store) createFitRule(ctx context.Context, r *FitRule) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO fit_rules (corp_id, name, cond, points, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		r.CorpID, r.Name, r.Condition, r.Points, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return err
	}
	r.ID, err = res.LastInsertId()
	return err
}

func (st *store) deleteFitRule(ctx context.Context, corp string, id int64) (bool, error) {
	return changedOne(st.db.ExecContext(ctx, `DELETE FROM fit_rules WHERE corp_id = ? AND id = ?`, corp, id))
}

func (st *store) fitRules(ctx context.Context, q sqlx.QueryerContext, corp string) ([]FitRule, error) {
	rules, err := st.fitRulesOf(ctx, q, []string{corp})
	return append([]FitRule{}, rules[corp]...), err
}

// fitRulesOf reads the fit rules of corps (a batch of adds spans many) in
// one statement, by corp in id order.
func (st *store) fitRulesOf(ctx context.Context, q sqlx.QueryerContext, corps []string) (map[string][]FitRule, error) {
	query, args, err := sqlx.In(`SELECT id, corp_id, name, cond, points, created_at, updated_at FROM fit_rules WHERE corp_id IN (?) ORDER BY id`, corps)
	if err != nil {
		return nil, err
	}
	var rows []FitRule
	if err := sqlx.SelectContext(ctx, q, &rows, st.db.Rebind(query), args...); err != nil {
		return nil, err
	}
	out := map[string][]FitRule{}
	for _, r := range rows {
		out[r.CorpID] = append(out[r.CorpID], r)
	}
	return out, nil
}

// engagementVersion names the state of what a corp's engagement is
// computed by: its engagement rules (as rulesVersion counts them) and its
// half-life.
func (st *store) engagementVersion(ctx context.Context, corp string) (string, error) {
	var v struct {
		N        int64 `db:"n"`
		Max      int64 `db:"max_id"`
		HalfLife int   `db:"half_life"`
	}
	err := st.db.GetContext(ctx, &v, `SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS max_id,
		COALESCE((SELECT half_life_days FROM lead_settings WHERE corp_id = ?), ?) AS half_life FROM scoring_rules WHERE corp_id = ?`,
		corp, defaultSettings.HalfLifeDays, corp)
	return fmt.Sprintf("%d/%d/%d", v.N, v.Max, v.HalfLife), err
}

// replayedVersion is the engagement version a corp's leads were last
// replayed with ("" when never).
func (st *store) replayedVersion(ctx context.Context, corp string) (string, error) {
	var v string
	err := st.db.GetContext(ctx, &v, `SELECT COALESCE(MAX(version), '') FROM lead_replays WHERE corp_id = ?`, corp)
	return v, err
}

func (st *store) setReplayedVersion(ctx context.Context, corp, version string, now int64) error {
	_, err := st.db.ExecContext(ctx, st.db.Upsert("lead_replays", []string{"corp_id", "version", "updated_at"}, []string{"corp_id"}, []string{"version", "updated_at"}),
		corp, version, now)
	return err
}

// rulesVersion names the state of a corp's fit and engagement rules and
// its settings: it changes when a rule is added (a higher id) or removed (a
// smaller count) or the settings are saved.
func (st *store) rulesVersion(ctx context.Context, corp string) (string, error) {
	var v struct {
		N       int64 `db:"n"`
		Max     int64 `db:"max_id"`
		EN      int64 `db:"en"`
		EMax    int64 `db:"emax"`
		Updated int64 `db:"updated"`
	}
	err := st.db.GetContext(ctx, &v, `SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS max_id,
		(SELECT COUNT(*) FROM scoring_rules WHERE corp_id = ?) AS en, (SELECT COALESCE(MAX(id), 0) FROM scoring_rules WHERE corp_id = ?) AS emax,
		COALESCE((SELECT updated_at FROM lead_settings WHERE corp_id = ?), 0) AS updated FROM fit_rules WHERE corp_id = ?`, corp, corp, corp, corp)
	return fmt.Sprintf("%d/%d/%d/%d/%d", v.N, v.Max, v.EN, v.EMax, v.Updated), err
}

// fitInputs reads what the fit of leads is computed from.
func (st *store) fitInputs(ctx context.Context, db sqlx.QueryerContext, corp string, leads []int64) ([]fitInput, error) {
	var out []fitInput
	q, args, err := sqlx.In(`SELECT l.id, l.stage, l.fit_points, l.grade, l.engagement_milli, l.engagement_at,
		p.title, p.region, COALESCE(c.industry, '') AS industry, COALESCE(c.size, 0) AS company_size,
		l.budget, l.authority, l.need, l.timeline, l.source, l.channel, l.code_id
		FROM leads l JOIN people p ON p.id = l.person_id LEFT JOIN companies c ON c.id = p.company_id
		WHERE l.corp_id = ? AND l.id IN (?) ORDER BY l.id`, corp, leads)
	if err != nil {
		return nil, err
	}
	err = sqlx.SelectContext(ctx, db, &out, q, args...)
	return out, err
}

// setFits stores new fits: one statement per distinct (points, grade),
// which a handful of rules keep to a few (a CASE over every lead would be
// evaluated row by row, quadratic in the page).
func (st *store) setFits(ctx context.Context, tx *qsql.Tx, corp string, cs []fitChange, now int64) error {
	type fit struct {
		points int
		grade  string
	}
	byFit := map[fit][]any{}
	var order []fit
	for _, c := range cs {
		k := fit{c.points, c.grade}
		if byFit[k] == nil {
			order = append(order, k)
		}
		byFit[k] = append(byFit[k], c.lead)
	}
	for _, k := range order {
		ids := byFit[k]
		args := append([]any{k.points, k.grade, now, corp}, ids...)
		if _, err := tx.ExecContext(ctx, `UPDATE leads SET fit_points = ?, grade = ?, updated_at = ? WHERE corp_id = ? AND id IN (`+placeholders(len(ids))+`)`, args...); err != nil {
			return err
		}
	}
	return nil
}

func (st *store) countLeads(ctx context.Context, corp string) (int64, error) {
	var n int64
	err := st.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM leads WHERE corp_id = ?`, corp)
	return n, err
}

func (st *store) leadIDsAfter(ctx context.Context, corp string, after int64, limit int) ([]int64, error) {
	var out []int64
	err := st.db.SelectContext(ctx, &out, `SELECT id FROM leads WHERE corp_id = ? AND id > ? ORDER BY id LIMIT ?`, corp, after, limit)
	return out, err
}

// dueCooling is a lead whose engagement is due to fall below the threshold.
type dueCooling struct {
	ID      int64  `db:"id"`
	CorpID  string `db:"corp_id"`
	CoolsAt int64  `db:"cools_at"`
}

func (st *store) coolingDue(ctx context.Context, now int64, limit int) ([]dueCooling, error) {
	var out []dueCooling
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id, cools_at FROM leads WHERE cools_at <= ? ORDER BY cools_at LIMIT ?`, now, limit)
	return out, err
}

// setCoolsAt moves a lead's cooling moment if it is still was (nil: none).
func (st *store) setCoolsAt(ctx context.Context, tx *qsql.Tx, corp string, lead int64, was, at *int64) error {
	if was == nil {
		_, err := tx.ExecContext(ctx, `UPDATE leads SET cools_at = ? WHERE corp_id = ? AND id = ? AND cools_at IS NULL`, at, corp, lead)
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE leads SET cools_at = ? WHERE corp_id = ? AND id = ? AND cools_at = ?`, at, corp, lead, *was)
	return err
}

// markCooling marks a lead cooling (with its new stage and owner) if it is
// still at version.
func (st *store) markCooling(ctx context.Context, tx *qsql.Tx, corp string, lead, version int64, stage string, owner, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET cooling = 1, cools_at = NULL, stage = ?, owner_user_id = ?,
		claimed_at = CASE WHEN ? = 0 THEN NULL ELSE claimed_at END, last_touch_at = CASE WHEN ? = 0 THEN NULL ELSE last_touch_at END,
		version = version + 1, updated_at = ? WHERE corp_id = ? AND id = ? AND version = ?`, stage, owner, owner, owner, now, corp, lead, version))
}

// noticeRow is a notice claimed to send.
type noticeRow struct {
	ID   int64  `db:"id"`
	Corp string `db:"corp_id"`
	User int64  `db:"user_id"`
	Text string `db:"text"`
}

// addNotices writes notices in tx.
func (st *store) addNotices(ctx context.Context, tx *qsql.Tx, ns []notice, now int64) error {
	if len(ns) == 0 {
		return nil
	}
	rows := make([]string, len(ns))
	args := make([]any, 0, 4*len(ns))
	for i, n := range ns {
		rows[i] = "(?, ?, ?, ?)"
		args = append(args, n.Corp, n.User, truncate(n.Text, 1000), now)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO lead_notices (corp_id, user_id, text, created_at) VALUES `+strings.Join(rows, ","), args...)
	return err
}

// claimNotices claims unsent notices whose claim (if any) expired: a read
// of candidates, one conditional update stamping the token, a read back by
// token (correct without SKIP LOCKED).
func (st *store) claimNotices(ctx context.Context, token string, now, until int64, limit int) ([]noticeRow, error) {
	var ids []int64
	if err := st.db.SelectContext(ctx, &ids, `SELECT id FROM lead_notices WHERE sent_at IS NULL AND claimed_until <= ? ORDER BY id LIMIT ?`, now, limit); err != nil || len(ids) == 0 {
		return nil, err
	}
	q, args, err := sqlx.In(`UPDATE lead_notices SET claim_token = ?, claimed_until = ?, attempts = attempts + 1
		WHERE id IN (?) AND sent_at IS NULL AND claimed_until <= ?`, token, until, ids, now)
	if err != nil {
		return nil, err
	}
	if _, err := st.db.ExecContext(ctx, q, args...); err != nil {
		return nil, err
	}
	var out []noticeRow
	err = st.db.SelectContext(ctx, &out, `SELECT id, corp_id, user_id, text FROM lead_notices WHERE claim_token = ? AND sent_at IS NULL ORDER BY id`, token)
	return out, err
}

// settleNotices marks claimed notices sent (done), or leaves them for a
// retry with the error, giving up after noticeAttempts.
func (st *store) settleNotices(ctx context.Context, token string, ids []int64, now int64, errText string, done bool) error {
	var q string
	var args []any
	var err error
	if done {
		q, args, err = sqlx.In(`UPDATE lead_notices SET sent_at = ?, error = ? WHERE claim_token = ? AND id IN (?)`, now, errText, token, ids)
	} else {
		q, args, err = sqlx.In(`UPDATE lead_notices SET error = ?, sent_at = CASE WHEN attempts >= ? THEN ? ELSE NULL END
			WHERE claim_token = ? AND id IN (?)`, errText, noticeAttempts, now, token, ids)
	}
	if err != nil {
		return err
	}
	_, err = st.db.ExecContext(ctx, q, args...)
	return err
}

func (st *store) createHandoff(ctx context.Context, tx *qsql.Tx, h *Handoff) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO lead_handoffs (corp_id, lead_id, from_user_id, to_user_id, note, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		h.CorpID, h.LeadID, h.FromUserID, h.ToUserID, truncate(h.Note, 1000), h.Status, h.CreatedAt)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

const handoffCols = `h.id, h.corp_id, h.lead_id, COALESCE(p.name, '') AS name, h.from_user_id, h.to_user_id, h.note, h.status, h.reason, h.created_at, h.answered_at`
const handoffFrom = ` FROM lead_handoffs h LEFT JOIN leads l ON l.id = h.lead_id LEFT JOIN people p ON p.id = l.person_id`

func (st *store) handoff(ctx context.Context, q sqlx.QueryerContext, corp string, id int64) (*Handoff, error) {
	var h Handoff
	err := sqlx.GetContext(ctx, q, &h, `SELECT `+handoffCols+handoffFrom+` WHERE h.corp_id = ? AND h.id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrHandoffNotFound
	}
	return &h, err
}

// answerHandoff answers a pending handoff; false when it was answered.
func (st *store) answerHandoff(ctx context.Context, tx *qsql.Tx, corp string, id int64, status, reason string, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE lead_handoffs SET status = ?, reason = ?, answered_at = ? WHERE corp_id = ? AND id = ? AND status = ?`,
		status, truncate(reason, 500), now, corp, id, HandoffPending))
}

func (st *store) handoffs(ctx context.Context, f HandoffFilter) ([]Handoff, error) {
	out := []Handoff{}
	err := st.db.SelectContext(ctx, &out, `SELECT `+handoffCols+handoffFrom+`
		WHERE h.corp_id = ? AND (? = 0 OR h.to_user_id = ?) AND (? = 0 OR h.from_user_id = ?) AND (? = '' OR h.status = ?)
		ORDER BY h.id DESC LIMIT ?`, f.CorpID, f.ToUser, f.ToUser, f.FromUser, f.FromUser, f.Status, f.Status, f.Limit)
	return out, err
}

// withdrawHandoffs withdraws a lead's pending handoffs.
func (st *store) withdrawHandoffs(ctx context.Context, tx *qsql.Tx, corp string, lead, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE lead_handoffs SET status = ?, answered_at = ? WHERE corp_id = ? AND lead_id = ? AND status = ?`,
		HandoffWithdrawn, now, corp, lead, HandoffPending)
	return err
}

func (st *store) createSLARule(ctx context.Context, r *SLARule) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO sla_rules (corp_id, position, name, cond, hours, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.CorpID, r.Position, r.Name, r.Condition, r.Hours, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return err
	}
	r.ID, err = res.LastInsertId()
	return err
}

func (st *store) slaRules(ctx context.Context, q sqlx.QueryerContext, corp string) ([]SLARule, error) {
	out := []SLARule{}
	err := sqlx.SelectContext(ctx, q, &out, `SELECT id, corp_id, position, name, cond, hours, created_at, updated_at FROM sla_rules
		WHERE corp_id = ? ORDER BY position, id`, corp)
	return out, err
}

func (st *store) createSLA(ctx context.Context, tx *qsql.Tx, corp string, lead int64, kind string, owner, rule, started, half, due int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO lead_slas (corp_id, lead_id, kind, owner_user_id, rule_id, status, started_at, half_at, due_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, corp, lead, kind, owner, rule, SLAOpen, started, half, due)
	return err
}

// closeSLAs ends a lead's open SLAs with a status.
func (st *store) closeSLAs(ctx context.Context, tx *qsql.Tx, lead int64, status string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE lead_slas SET status = ?, ended_at = ? WHERE lead_id = ? AND status = ?`, status, now, lead, SLAOpen)
	return err
}

// meetSLAs marks a lead's open SLAs of a kind owed by user met.
func (st *store) meetSLAs(ctx context.Context, tx *qsql.Tx, lead, user int64, kind string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE lead_slas SET status = ?, ended_at = ? WHERE lead_id = ? AND status = ? AND owner_user_id = ? AND kind = ?`,
		SLAMet, now, lead, SLAOpen, user, kind)
	return err
}

// dueSLA is an open SLA at or past a moment.
type dueSLA struct {
	ID     int64  `db:"id"`
	CorpID string `db:"corp_id"`
	LeadID int64  `db:"lead_id"`
	Kind   string `db:"kind"`
	Owner  int64  `db:"owner_user_id"`
	DueAt  int64  `db:"due_at"`
}

func (st *store) slasHalfDue(ctx context.Context, now int64, limit int) ([]dueSLA, error) {
	var out []dueSLA
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id, lead_id, kind, owner_user_id, due_at FROM lead_slas
		WHERE status = ? AND half_sent = 0 AND half_at <= ? ORDER BY half_at LIMIT ?`, SLAOpen, now, limit)
	return out, err
}

func (st *store) slasBreachDue(ctx context.Context, now int64, limit int) ([]dueSLA, error) {
	var out []dueSLA
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id, lead_id, kind, owner_user_id, due_at FROM lead_slas
		WHERE status = ? AND due_at <= ? ORDER BY due_at LIMIT ?`, SLAOpen, now, limit)
	return out, err
}

// markSLAHalf records the half-time notice of an open SLA; false when it
// was sent or the SLA ended.
func (st *store) markSLAHalf(ctx context.Context, tx *qsql.Tx, id int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE lead_slas SET half_sent = 1 WHERE id = ? AND half_sent = 0 AND status = ?`, id, SLAOpen))
}

// endSLA ends an open SLA; false when it ended already.
func (st *store) endSLA(ctx context.Context, tx *qsql.Tx, id int64, status string, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE lead_slas SET status = ?, ended_at = ? WHERE id = ? AND status = ?`, status, now, id, SLAOpen))
}

func (st *store) slaReport(ctx context.Context, corp string, from, to int64) ([]SLARow, error) {
	out := []SLARow{}
	err := st.db.SelectContext(ctx, &out, `SELECT owner_user_id,
		SUM(CASE WHEN status = 'met' THEN 1 ELSE 0 END) AS met, SUM(CASE WHEN status = 'breached' THEN 1 ELSE 0 END) AS breached,
		SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_now, SUM(CASE WHEN status = 'closed' THEN 1 ELSE 0 END) AS closed
		FROM lead_slas WHERE corp_id = ? AND started_at >= ? AND started_at < ? GROUP BY owner_user_id ORDER BY owner_user_id`, corp, from, to)
	return out, err
}

// escalationCandidate is a claimed lead in a pool with a ladder.
type escalationCandidate struct {
	ID          int64  `db:"id"`
	CorpID      string `db:"corp_id"`
	Owner       int64  `db:"owner_user_id"`
	LastTouchAt int64  `db:"last_touch_at"`
	Escalations string `db:"escalations"`
	RecycleDays int    `db:"recycle_days"`
}

// escalationCandidates lists claimed leads of pools with a ladder untouched
// for at least a calendar day (a working day is at least that).
func (st *store) escalationCandidates(ctx context.Context, now int64, limit int) ([]escalationCandidate, error) {
	var out []escalationCandidate
	err := st.db.SelectContext(ctx, &out, `SELECT l.id, l.corp_id, l.owner_user_id, l.last_touch_at, p.escalations, p.recycle_days
		FROM lead_pools p JOIN leads l ON l.pool_id = p.id
		WHERE p.escalations <> '[]' AND l.owner_user_id <> 0 AND l.merged_into = 0 AND l.last_touch_at <= ?
		ORDER BY l.last_touch_at LIMIT ?`, now-86400000, limit)
	return out, err
}

// markEscalated records a ladder step sent for a follow-up; false when it was.
func (st *store) markEscalated(ctx context.Context, tx *qsql.Tx, lead int64, step int, touch, now int64) (bool, error) {
	q := st.db.InsertIgnoreRows("lead_escalations", []string{"lead_id", "step", "touch_at", "sent_at"}, []string{"lead_id", "step", "touch_at"}, 1)
	return changedOne(tx.ExecContext(ctx, q, lead, step, touch, now))
}

const formCols = `id, corp_id, slug, title, intro, fields, consent_text, consent_required, thanks, channel, active, created_at, updated_at`

func (st *store) createForm(ctx context.Context, f *Form) error {
	res, err := st.db.ExecContext(ctx, `INSERT INTO lead_forms (corp_id, slug, title, intro, fields, consent_text, consent_required, thanks, channel, active, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, f.CorpID, f.Slug, strings.TrimSpace(f.Title), f.Intro, f.FieldsJSON, f.ConsentText, f.ConsentRequired,
		f.Thanks, f.Channel, f.Active, f.CreatedAt, f.UpdatedAt)
	if err != nil {
		return err
	}
	f.ID, err = res.LastInsertId()
	return err
}

func (st *store) updateForm(ctx context.Context, f *Form) (bool, error) {
	return changedOne(st.db.ExecContext(ctx, `UPDATE lead_forms SET slug = ?, title = ?, intro = ?, fields = ?, consent_text = ?, consent_required = ?, thanks = ?,
		channel = ?, active = ?, updated_at = ? WHERE corp_id = ? AND id = ?`, f.Slug, strings.TrimSpace(f.Title), f.Intro, f.FieldsJSON, f.ConsentText,
		f.ConsentRequired, f.Thanks, f.Channel, f.Active, f.UpdatedAt, f.CorpID, f.ID))
}

// form reads one form by a condition of the caller's (a fixed string).
func (st *store) form(ctx context.Context, where string, args ...any) (*Form, error) {
	var f Form
	err := st.db.GetContext(ctx, &f, `SELECT `+formCols+` FROM lead_forms WHERE `+where, args...)
	if qsql.IsNoRows(err) {
		return nil, ErrFormNotFound
	}
	if err != nil {
		return nil, err
	}
	return &f, json.Unmarshal([]byte(f.FieldsJSON), &f.Fields)
}

func (st *store) forms(ctx context.Context, corp string) ([]Form, error) {
	out := []Form{}
	if err := st.db.SelectContext(ctx, &out, `SELECT `+formCols+` FROM lead_forms WHERE corp_id = ? ORDER BY id`, corp); err != nil {
		return nil, err
	}
	for i := range out {
		if err := json.Unmarshal([]byte(out[i].FieldsJSON), &out[i].Fields); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (st *store) createImport(ctx context.Context, im *Import) (int64, error) {
	res, err := st.db.ExecContext(ctx, `INSERT INTO lead_imports (corp_id, filename, encoding, mapping, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		im.CorpID, im.Filename, im.Encoding, im.MappingJSON, im.CreatedBy, im.CreatedAt)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (st *store) addImportChunk(ctx context.Context, id int64, seq int, data []byte) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO lead_import_chunks (import_id, seq, data) VALUES (?, ?, ?)`, id, seq, data)
	return err
}

func (st *store) importChunk(ctx context.Context, id int64, seq int) ([]byte, bool, error) {
	var data []byte
	err := st.db.GetContext(ctx, &data, `SELECT data FROM lead_import_chunks WHERE import_id = ? AND seq = ?`, id, seq)
	if qsql.IsNoRows(err) {
		return nil, false, nil
	}
	return data, err == nil, err
}

func (st *store) deleteImport(ctx context.Context, id int64) error {
	if _, err := st.db.ExecContext(ctx, `DELETE FROM lead_import_chunks WHERE import_id = ?`, id); err != nil {
		return err
	}
	_, err := st.db.ExecContext(ctx, `DELETE FROM lead_imports WHERE id = ?`, id)
	return err
}

// setImportJob records an import's job, encoding found and sizes.
func (st *store) setImportJob(ctx context.Context, im *Import) error {
	_, err := st.db.ExecContext(ctx, `UPDATE lead_imports SET job_id = ?, encoding = ?, bytes = ?, rows_estimate = ? WHERE id = ?`,
		im.JobID, im.Encoding, im.Bytes, im.RowsEstimate, im.ID)
	return err
}

func (st *store) importOf(ctx context.Context, corp string, id int64) (*Import, error) {
	var im Import
	err := st.db.GetContext(ctx, &im, `SELECT id, corp_id, filename, encoding, mapping, bytes, rows_estimate, job_id, created_by, created_at
		FROM lead_imports WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrImportNotFound
	}
	if err != nil {
		return nil, err
	}
	return &im, json.Unmarshal([]byte(im.MappingJSON), &im.Mapping)
}

// imports is a corp's newest imports.
func (st *store) imports(ctx context.Context, corp string, limit int) ([]Import, error) {
	out := []Import{}
	err := st.db.SelectContext(ctx, &out, `SELECT id, corp_id, filename, encoding, mapping, bytes, rows_estimate, job_id, created_by, created_at
		FROM lead_imports WHERE corp_id = ? ORDER BY id DESC LIMIT ?`, corp, limit)
	return out, err
}

// addReportLines records report lines (again after a resumed batch: kept once).
func (st *store) addReportLines(ctx context.Context, tx *qsql.Tx, id int64, lines []reportLine) error {
	if len(lines) == 0 {
		return nil
	}
	args := make([]any, 0, 6*len(lines))
	for _, l := range lines {
		args = append(args, id, l.Line, l.Outcome, truncate(l.Field, 64), truncate(l.Reason, 500), l.Person)
	}
	q := st.db.InsertIgnoreRows("lead_import_lines", []string{"import_id", "line", "outcome", "field", "reason", "person_id"},
		[]string{"import_id", "line", "outcome"}, len(lines))
	_, err := tx.ExecContext(ctx, q, args...)
	return err
}

// reportLines pages through a report after a line and outcome.
func (st *store) reportLines(ctx context.Context, id, afterLine int64, afterOutcome string, limit int) ([]reportLine, error) {
	var out []reportLine
	err := st.db.SelectContext(ctx, &out, `SELECT line, outcome, field, reason, person_id FROM lead_import_lines
		WHERE import_id = ? AND (line > ? OR (line = ? AND outcome > ?)) ORDER BY line, outcome LIMIT ?`, id, afterLine, afterLine, afterOutcome, limit)
	return out, err
}

// setStatus sets a lead's status if it is still at version.
func (st *store) setStatus(ctx context.Context, tx *qsql.Tx, corp string, lead, version int64, status, reason string, now int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `UPDATE leads SET status = ?, status_reason = ?, version = version + 1, updated_at = ? WHERE corp_id = ? AND id = ? AND version = ?`,
		status, reason, now, corp, lead, version))
}

// openCounts reads how many open leads each user holds in a pool from
// their claim counters (counted by claims and assignments, uncounted by
// releases, recycling and closing stages), locking them. A least-loaded
// pick, made under its rule's lock once every earlier pick has committed,
// must read the counts as committed: a plain read under REPEATABLE READ
// counts from the transaction's snapshot, taken before it waited, and gave
// the leads other instances had just assigned to the same user again. Only
// counter rows are locked (the pick's own count locks one of them anyway),
// never the leads: transactions holding leads go on to wait for rule locks.
// A user without a counter holds none.
func (st *store) openCounts(ctx context.Context, tx *qsql.Tx, corp string, pool int64, users []int64) (map[int64]int, error) {
	var rows []struct {
		User int64 `db:"user_id"`
		N    int   `db:"open_leads"`
	}
	q, args, err := sqlx.In(`SELECT user_id, open_leads FROM lead_claim_counters WHERE corp_id = ? AND pool_id = ? AND user_id IN (?)
		ORDER BY user_id`+st.db.ForUpdate(), corp, pool, users)
	if err != nil {
		return nil, err
	}
	if err := tx.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := map[int64]int{}
	for _, r := range rows {
		out[r.User] = r.N
	}
	return out, nil
}

func (st *store) corpsWithRules(ctx context.Context, kind string) ([]string, error) {
	var out []string
	err := st.db.SelectContext(ctx, &out, `SELECT DISTINCT corp_id FROM assignment_rules WHERE kind = ? ORDER BY corp_id`, kind)
	return out, err
}

// waitingMQLs lists a corp's unowned MQLs, oldest first.
func (st *store) waitingMQLs(ctx context.Context, corp string, limit int) ([]int64, error) {
	var out []int64
	err := st.db.SelectContext(ctx, &out, `SELECT id FROM leads WHERE corp_id = ? AND owner_user_id = 0 AND stage = ? AND merged_into = 0 ORDER BY id LIMIT ?`,
		corp, StageMQL, limit)
	return out, err
}

// exportDetail is what an export shows of a person besides the lead.
type exportDetail struct {
	Person  int64  `db:"id"`
	Mobile  string `db:"mobile"`
	Email   string `db:"email"`
	Company string `db:"company"`
	Title   string `db:"title"`
	Region  string `db:"region"`
}

func (st *store) exportDetails(ctx context.Context, corp string, people []int64) (map[int64]exportDetail, error) {
	out := map[int64]exportDetail{}
	if len(people) == 0 {
		return out, nil
	}
	var rows []exportDetail
	q, args, err := sqlx.In(`SELECT p.id, p.title, p.region, COALESCE(c.name, '') AS company,
		COALESCE((SELECT MIN(value) FROM person_identities i WHERE i.corp_id = p.corp_id AND i.person_id = p.id AND i.kind = 'mobile'), '') AS mobile,
		COALESCE((SELECT MIN(value) FROM person_identities i WHERE i.corp_id = p.corp_id AND i.person_id = p.id AND i.kind = 'email'), '') AS email
		FROM people p LEFT JOIN companies c ON c.id = p.company_id WHERE p.corp_id = ? AND p.id IN (?)`, corp, people)
	if err != nil {
		return nil, err
	}
	if err := st.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.Person] = r
	}
	return out, nil
}

func (st *store) recordExport(ctx context.Context, corp string, user int64, filter string, rows int64, masked bool, now int64) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO lead_exports (corp_id, user_id, filter, row_count, masked, at) VALUES (?, ?, ?, ?, ?, ?)`,
		corp, user, truncate(filter, 1000), rows, masked, now)
	return err
}

func (st *store) exports(ctx context.Context, corp string) ([]Export, error) {
	out := []Export{}
	err := st.db.SelectContext(ctx, &out, `SELECT id, user_id, filter, row_count, masked, at FROM lead_exports WHERE corp_id = ? ORDER BY id DESC LIMIT 200`, corp)
	return out, err
}

// leadScore is what a rescore writes of a lead.
type leadScore struct {
	ID           int64   `db:"id"`
	FitPoints    int     `db:"fit_points"`
	Grade        string  `db:"grade"`
	Milli        int64   `db:"engagement_milli"`
	At           int64   `db:"engagement_at"`
	CoolsAt      *int64  `db:"cools_at"`
	Cooling      bool    `db:"cooling"`
	Stage        string  `db:"stage"`
	Status       string  `db:"status"`
	StatusReason string  `db:"status_reason"`
	Version      int64   `db:"version"`
	RulePoints   *string `db:"rule_points"` // what each engagement rule has given it (encodeGiven)
}

// rescoreRow is a lead as a rescore reads it: what it holds, whose it is,
// and what its fit is computed from.
type rescoreRow struct {
	leadScore
	Person int64 `db:"person_id"`
	Merged int64 `db:"merged_into"`
	fitEnv
}

// rescoreRows reads leads of a corp for a rescore, in id order, and locks
// them (MySQL) in that order.
func (st *store) rescoreRows(ctx context.Context, tx *qsql.Tx, corp string, leads []int64) ([]rescoreRow, error) {
	rows := make([]rescoreRow, 0, len(leads)) // scanned rows are appended: no growing
	q, args, err := sqlx.In(`SELECT id, fit_points, grade, engagement_milli, engagement_at, cools_at, cooling, stage, status, status_reason, version, rule_points,
		person_id, merged_into, budget, authority, need, timeline, source, channel, code_id
		FROM leads WHERE corp_id = ? AND id IN (?) ORDER BY id`+st.db.ForUpdate(), corp, leads)
	if err != nil {
		return nil, err
	}
	if err := tx.SelectContext(ctx, &rows, q, args...); err != nil || len(rows) == 0 {
		return rows, err
	}
	// The person's side of the fit, read apart: locking it with the leads
	// would hold a company's row (shared by thousands) for the page.
	people := make([]int64, len(rows))
	for i, r := range rows {
		people[i] = r.Person
	}
	ps := make([]struct {
		ID int64 `db:"id"`
		fitEnv
	}, 0, len(rows))
	q, args, err = sqlx.In(`SELECT p.id, p.title, p.region, COALESCE(c.industry, '') AS industry, COALESCE(c.size, 0) AS company_size
		FROM people p LEFT JOIN companies c ON c.id = p.company_id WHERE p.corp_id = ? AND p.id IN (?)`, corp, people)
	if err != nil {
		return nil, err
	}
	if err := tx.SelectContext(ctx, &ps, q, args...); err != nil {
		return nil, err
	}
	byID := make(map[int64]int, len(ps))
	for i, p := range ps {
		byID[p.ID] = i
	}
	for i := range rows {
		if j, ok := byID[rows[i].Person]; ok {
			e := &rows[i].fitEnv
			e.Title, e.Region, e.Industry, e.CompanySize = ps[j].Title, ps[j].Region, ps[j].Industry, ps[j].CompanySize
		}
	}
	return rows, nil
}

// setScores writes leads' new scores (and stages), a statement per
// thousand leads.
func (st *store) setScores(ctx context.Context, tx *qsql.Tx, us []leadScore, now int64) error {
	cols := []string{"fit_points", "grade", "engagement_milli", "engagement_at", "cools_at", "cooling", "stage", "status", "status_reason", "version", "rule_points", "updated_at"}
	for start := 0; start < len(us); start += 1000 {
		chunk := us[start:min(start+1000, len(us))]
		args := make([]any, 0, (len(cols)+1)*len(chunk))
		for _, u := range chunk {
			args = append(args, u.ID, u.FitPoints, u.Grade, u.Milli, u.At, u.CoolsAt, u.Cooling, u.Stage, u.Status, u.StatusReason, u.Version, u.RulePoints, now)
		}
		if _, err := tx.ExecContext(ctx, st.db.UpdateRows("leads", "id", cols, len(chunk)), args...); err != nil {
			return err
		}
	}
	return nil
}

// absorbedBy maps the people merged into any of people to whom.
func (st *store) absorbedBy(ctx context.Context, q sqlx.QueryerContext, corp string, people []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	if len(people) == 0 {
		return out, nil
	}
	var rows []struct {
		ID   int64 `db:"id"`
		Into int64 `db:"merged_into"`
	}
	query, args, err := st.absorbedByQuery(corp, people)
	if err != nil {
		return nil, err
	}
	if err := sqlx.SelectContext(ctx, q, &rows, query, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = r.Into
	}
	return out, nil
}

// absorbedByQuery is absorbedBy's statement. The index is named: nearly
// every person has merged_into 0, so statistics (MySQL's, used instead of
// index dives for lists longer than eq_range_index_dive_limit, 200) count
// every person for each value, and SQLite without statistics prefers the
// corp's name index; either read all of the corp's people for each page
// of a rescore (with MariaDB's rewrite of long IN lists, which the
// connection turns off, naming the index was not enough: see sql.Open).
func (st *store) absorbedByQuery(corp string, people []int64) (string, []any, error) {
	return sqlx.In(`SELECT id, merged_into FROM people`+st.db.ForceIndex("people_merged")+` WHERE merged_into IN (?) AND corp_id = ?`, people, corp)
}

// replayActivity is what a replay reads of an activity.
type replayActivity struct {
	Person int64
	At     int64
	Type   string
	Props  string
}

// eachActivityOfPeople hands visit the activities of some types of people,
// each person's in the order they happened (the index's order: no sort),
// as they are read: a rescore reads millions, and a slice of a page's
// (tens of thousands) was much of its garbage.
func (st *store) eachActivityOfPeople(ctx context.Context, tx *qsql.Tx, corp string, people []int64, types []string, visit func(replayActivity)) error {
	if len(types) == 0 || len(people) == 0 {
		return nil
	}
	q, args, err := sqlx.In(`SELECT person_id, type, at, properties FROM activities
		WHERE person_id IN (?) AND corp_id = ? AND type IN (?) ORDER BY person_id, at, id`, people, corp, types)
	if err != nil {
		return err
	}
	// Scanned by hand, four columns a row. Types and properties repeat (a
	// webinar's attendees), so each distinct one is kept once: fewer
	// allocations, and the replay's per-properties caches hit.
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	seen := map[string]string{}
	intern := func(b sql.RawBytes) string {
		if s, ok := seen[string(b)]; ok {
			return s
		}
		s := string(b)
		seen[s] = s
		return s
	}
	var typ, props sql.RawBytes
	for rows.Next() {
		var a replayActivity
		if err := rows.Scan(&a.Person, &typ, &a.At, &props); err != nil {
			return err
		}
		a.Type, a.Props = intern(typ), intern(props)
		visit(a)
	}
	return rows.Err()
}

func (st *store) deleteRule(ctx context.Context, corp string, id int64) (bool, error) {
	return changedOne(st.db.ExecContext(ctx, `DELETE FROM scoring_rules WHERE corp_id = ? AND id = ?`, corp, id))
}

// dropCompanyReview removes a proposal; false when there was none.
func (st *store) dropCompanyReview(ctx context.Context, tx *qsql.Tx, corp string, company, similar int64) (bool, error) {
	return changedOne(tx.ExecContext(ctx, `DELETE FROM company_reviews WHERE corp_id = ? AND company_id = ? AND similar_id = ?`, corp, company, similar))
}

// mergeCompanies moves the people of company from to company into and
// removes from, with the proposals that name it.
func (st *store) mergeCompanies(ctx context.Context, tx *qsql.Tx, corp string, into, from, now int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE people SET company_id = ?, updated_at = ? WHERE corp_id = ? AND company_id = ?`, into, now, corp, from); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM company_reviews WHERE corp_id = ? AND (company_id = ? OR similar_id = ?)`, corp, from, from); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM companies WHERE corp_id = ? AND id = ?`, corp, from)
	return err
}

// profiles reads live leads with their person and company: those among ids,
// or (ids nil) those after the lead id after, at most limit, in id order.
func (st *store) profiles(ctx context.Context, corp string, after int64, limit int, ids []int64) ([]Profile, error) {
	const cols = `SELECT l.id, l.person_id, p.name, p.title, p.region, COALESCE(c.industry, '') AS industry, COALESCE(c.size, 0) AS company_size,
		l.budget, l.authority, l.need, l.timeline, l.source, l.channel, l.code_id, l.staff_userid, l.stage, l.status, l.grade, l.fit_points,
		l.cooling, l.owner_user_id, l.pool_id, l.created_at, l.engagement_milli, l.engagement_at,
		COALESCE((SELECT MIN(i.value) FROM person_identities i WHERE i.person_id = l.person_id AND i.corp_id = l.corp_id AND i.kind = 'wecom'), '') AS external_userid
		FROM leads l JOIN people p ON p.id = l.person_id LEFT JOIN companies c ON c.id = p.company_id`
	out := []Profile{}
	if ids == nil {
		err := st.db.SelectContext(ctx, &out, cols+` WHERE l.corp_id = ? AND l.id > ? AND l.merged_into = 0 ORDER BY l.id LIMIT ?`, corp, after, limit)
		return out, err
	}
	q, args, err := sqlx.In(cols+` WHERE l.corp_id = ? AND l.id IN (?) AND l.merged_into = 0 ORDER BY l.id`, corp, ids)
	if err != nil {
		return nil, err
	}
	err = st.db.SelectContext(ctx, &out, st.db.Rebind(q), args...)
	return out, err
}

type activityCountRow struct {
	Lead   int64 `db:"lead_id"`
	N      int   `db:"n"`
	Oldest int64 `db:"oldest"`
}

// countActivities counts the activities of typ ("" any) at or after since
// of each lead among ids' person.
func (st *store) countActivities(ctx context.Context, corp string, ids []int64, typ string, since int64) ([]activityCountRow, error) {
	cond := ""
	args := []any{corp, ids, since}
	if typ != "" {
		cond = " AND a.type = ?"
		args = append(args, typ)
	}
	q, qargs, err := sqlx.In(`SELECT l.id AS lead_id, COUNT(*) AS n, MIN(a.at) AS oldest
		FROM leads l JOIN activities a ON a.person_id = l.person_id
		WHERE l.corp_id = ? AND l.id IN (?) AND a.at >= ?`+cond+` GROUP BY l.id`, args...)
	if err != nil {
		return nil, err
	}
	var out []activityCountRow
	err = st.db.SelectContext(ctx, &out, st.db.Rebind(q), qargs...)
	return out, err
}

// leadsOfContacts maps external contacts to the live leads of their people.
func (st *store) leadsOfContacts(ctx context.Context, contacts []Contact) (map[Contact]int64, error) {
	out := map[Contact]int64{}
	if len(contacts) == 0 {
		return out, nil
	}
	keys := make([][]any, len(contacts))
	for i, c := range contacts {
		keys[i] = []any{c.CorpID, IdentityWeCom, c.ExternalUserID}
	}
	cond, args := st.db.KeysIn([]string{"i.corp_id", "i.kind", "i.value"}, keys)
	var rows []struct {
		Corp     string `db:"corp_id"`
		External string `db:"external_userid"`
		Lead     int64  `db:"id"`
	}
	if err := st.db.SelectContext(ctx, &rows, `SELECT i.corp_id, i.value AS external_userid, l.id FROM person_identities i
		JOIN leads l ON l.corp_id = i.corp_id AND l.person_id = i.person_id
		WHERE `+cond+` AND l.merged_into = 0`, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[Contact{r.Corp, r.External}] = r.Lead
	}
	return out, nil
}
