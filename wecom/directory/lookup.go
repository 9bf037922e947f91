package directory

import (
	"context"
	"encoding/json"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// StaffNames returns the names of the live (not gone) staff among ids.
func (d *Directory) StaffNames(ctx context.Context, corpID string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT userid, name FROM staff WHERE corp_id = ? AND gone_at IS NULL AND userid IN (?)`, corpID, ids)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		UserID string `db:"userid"`
		Name   string `db:"name"`
	}
	if err := d.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.UserID] = r.Name
	}
	return out, nil
}

// MissingTags returns the ids among ids that are not live corp tags.
func (d *Directory) MissingTags(ctx context.Context, corpID string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q, args, err := sqlx.In(`SELECT id FROM tags WHERE corp_id = ? AND deleted_at IS NULL AND id IN (?)`, corpID, ids)
	if err != nil {
		return nil, err
	}
	var found []string
	if err := d.db.SelectContext(ctx, &found, q, args...); err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, f := range found {
		have[f] = true
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// ContactName returns a contact's name, or "" when unknown.
func (d *Directory) ContactName(ctx context.Context, corpID, externalUserID string) (string, error) {
	var name string
	err := d.db.GetContext(ctx, &name, `SELECT name FROM external_contacts WHERE corp_id = ? AND external_userid = ?`, corpID, externalUserID)
	if qsql.IsNoRows(err) {
		return "", nil
	}
	return name, err
}

// Tag is a live corp tag with its group.
type Tag struct {
	ID        string `db:"id" json:"id"`
	Name      string `db:"name" json:"name"`
	GroupID   string `db:"group_id" json:"group_id"`
	GroupName string `db:"group_name" json:"group_name"`
}

// ListTags lists the corp's live tags by group.
func (d *Directory) ListTags(ctx context.Context, corpID string) ([]Tag, error) {
	var out []Tag
	err := d.db.SelectContext(ctx, &out, `SELECT t.id, t.name, t.group_id, COALESCE(g.name, '') AS group_name FROM tags t
		LEFT JOIN tag_groups g ON g.corp_id = t.corp_id AND g.id = t.group_id
		WHERE t.corp_id = ? AND t.deleted_at IS NULL ORDER BY g.sort_order, t.group_id, t.sort_order, t.id`, corpID)
	return out, err
}

// FollowersOf lists the external contacts a staff member still follows.
func (d *Directory) FollowersOf(ctx context.Context, corpID, userID string) ([]string, error) {
	var out []string
	err := d.db.SelectContext(ctx, &out, `SELECT external_userid FROM follow_relations WHERE corp_id = ? AND userid = ? AND deleted_at IS NULL ORDER BY external_userid`, corpID, userID)
	return out, err
}

// GroupsOwnedBy lists the live customer groups a staff member owns.
func (d *Directory) GroupsOwnedBy(ctx context.Context, corpID, userID string) ([]string, error) {
	var out []string
	err := d.db.SelectContext(ctx, &out, `SELECT chat_id FROM group_chats WHERE corp_id = ? AND owner = ? AND dismissed_at IS NULL ORDER BY chat_id`, corpID, userID)
	return out, err
}

// GroupNames returns the name of each mirrored group among ids.
func (d *Directory) GroupNames(ctx context.Context, corpID string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT chat_id, name FROM group_chats WHERE corp_id = ? AND chat_id IN (?)`, corpID, ids)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ChatID string `db:"chat_id"`
		Name   string `db:"name"`
	}
	if err := d.db.SelectContext(ctx, &rows, d.db.Rebind(q), args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ChatID] = r.Name
	}
	return out, nil
}

// GroupMemberCounts returns the mirrored member count of each live group among ids.
func (d *Directory) GroupMemberCounts(ctx context.Context, corpID string, ids []string) (map[string]int, error) {
	out := map[string]int{}
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT chat_id, member_count FROM group_chats WHERE corp_id = ? AND dismissed_at IS NULL AND chat_id IN (?)`, corpID, ids)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ChatID string `db:"chat_id"`
		N      int    `db:"member_count"`
	}
	if err := d.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ChatID] = r.N
	}
	return out, nil
}

// StaffDepartments returns a staff member's departments, main one first,
// including staff who have left (their row is kept).
func (d *Directory) StaffDepartments(ctx context.Context, corpID, userID string) ([]int64, error) {
	var row struct {
		Main  int64     `db:"main_department"`
		Depts qsql.JSON `db:"department_ids"`
	}
	err := d.db.GetContext(ctx, &row, `SELECT main_department, department_ids FROM staff WHERE corp_id = ? AND userid = ?`, corpID, userID)
	if qsql.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var depts []int64
	_ = json.Unmarshal(row.Depts, &depts)
	out := []int64{}
	if row.Main != 0 {
		out = append(out, row.Main)
	}
	for _, d := range depts {
		if d != row.Main {
			out = append(out, d)
		}
	}
	return out, nil
}

// TagContact adds and removes corp tags on a contact as staff member
// userID sees them (WeCom's mark_tag acts on that follow relation), then
// mirrors the contact again: WeCom sends no callback for a change made
// through its API.
func (d *Directory) TagContact(ctx context.Context, corpID, userID, externalUserID string, add, remove []string) error {
	if err := d.wc.MarkTag(ctx, corpID, userID, externalUserID, add, remove); err != nil {
		return err
	}
	return d.RefreshContact(ctx, corpID, externalUserID)
}

// DepartmentNames is the corp's live departments' names by id (the
// console's staff picker shows them).
func (d *Directory) DepartmentNames(ctx context.Context, corpID string) (map[int64]string, error) {
	var rows []struct {
		ID   int64  `db:"id"`
		Name string `db:"name"`
	}
	if err := d.db.SelectContext(ctx, &rows, `SELECT id, name FROM departments WHERE corp_id = ? AND gone_at IS NULL`, corpID); err != nil {
		return nil, err
	}
	out := make(map[int64]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

// TagNamesOf is the names of the live corp tags each of the contacts has
// from any staff member who still follows them (segments and journeys
// match on tag names).
func (d *Directory) TagNamesOf(ctx context.Context, corpID string, externalUserIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(externalUserIDs) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT external_userid, tag_ids FROM follow_relations WHERE corp_id = ? AND external_userid IN (?) AND deleted_at IS NULL`,
		corpID, externalUserIDs)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		External string `db:"external_userid"`
		TagIDs   string `db:"tag_ids"`
	}
	if err := d.db.SelectContext(ctx, &rows, d.db.Rebind(q), args...); err != nil {
		return nil, err
	}
	idsOf := map[string]map[string]bool{}
	all := map[string]bool{}
	for _, r := range rows {
		var ids []string
		if json.Unmarshal([]byte(r.TagIDs), &ids) != nil {
			continue
		}
		if idsOf[r.External] == nil {
			idsOf[r.External] = map[string]bool{}
		}
		for _, id := range ids {
			idsOf[r.External][id] = true
			all[id] = true
		}
	}
	if len(all) == 0 {
		return out, nil
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	q, args, err = sqlx.In(`SELECT id, name FROM tags WHERE corp_id = ? AND deleted_at IS NULL AND id IN (?)`, corpID, ids)
	if err != nil {
		return nil, err
	}
	var tags []struct {
		ID   string `db:"id"`
		Name string `db:"name"`
	}
	if err := d.db.SelectContext(ctx, &tags, d.db.Rebind(q), args...); err != nil {
		return nil, err
	}
	for ext, set := range idsOf {
		for _, t := range tags {
			if set[t.ID] {
				out[ext] = append(out[ext], t.Name)
			}
		}
	}
	return out, nil
}
