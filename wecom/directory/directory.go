// Package directory is Qiflow's mirror of a corp's WeCom directory: staff,
// departments, corp tags, external contacts and their follow relations, and
// customer groups. It keeps them current from callbacks (as inbox
// subscribers), imports them when a corp is first connected, and reconciles
// them on a schedule, because WeCom gives up on a callback after 3 tries.
// It owns the departments, staff, tag_groups, tags, external_contacts,
// follow_relations and group_chats tables.
package directory

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// ErrNotFound is returned for unknown contacts or staff.
var ErrNotFound = apperr.NotFound("not found")

// Directory is the mirror's service.
type Directory struct {
	db  *qsql.DB
	wc  wecom.Client
	log *slog.Logger
	now func() time.Time
	bus *jobs.Bus // publishes ContactSaved; set by Subscribe
}

func New(db *qsql.DB, wc wecom.Client, log *slog.Logger) *Directory {
	return &Directory{db: db, wc: wc, log: log, now: time.Now}
}

// Staff is a staff member as mirrored.
type Staff struct {
	CorpID         string `db:"corp_id" json:"corp_id"`
	UserID         string `db:"userid" json:"userid"`
	Name           string `db:"name" json:"name"`
	Mobile         string `db:"mobile" json:"mobile"`
	Email          string `db:"email" json:"email"`
	Status         int    `db:"status" json:"status"`
	DepartmentIDs  string `db:"department_ids" json:"-"`
	MainDepartment int64  `db:"main_department" json:"main_department"`
	GoneAt         *int64 `db:"gone_at" json:"gone_at,omitempty"`
	SyncedAt       int64  `db:"synced_at" json:"synced_at"`
}

// Contact is an external contact with its follow relations.
type Contact struct {
	CorpID         string   `db:"corp_id" json:"corp_id"`
	ExternalUserID string   `db:"external_userid" json:"external_userid"`
	Name           string   `db:"name" json:"name"`
	Type           int      `db:"type" json:"type"`
	Gender         int      `db:"gender" json:"gender"`
	UnionID        string   `db:"unionid" json:"unionid,omitempty"`
	Avatar         string   `db:"avatar" json:"avatar,omitempty"`
	CorpName       string   `db:"corp_name" json:"corp_name,omitempty"`
	CreatedAt      int64    `db:"created_at" json:"created_at"`
	UpdatedAt      int64    `db:"updated_at" json:"updated_at"`
	Follows        []Follow `db:"-" json:"follows,omitempty"`
}

// Follow is one staff member's relation to a contact. Losses are kept:
// DeletedAt with DeletedBy customer, staff, transfer or sync (found missing
// by reconciliation).
type Follow struct {
	ExternalUserID string    `db:"external_userid" json:"-"`
	UserID         string    `db:"userid" json:"userid"`
	Remark         string    `db:"remark" json:"remark"`
	Description    string    `db:"description" json:"description"`
	RemarkMobiles  qsql.JSON `db:"remark_mobiles" json:"remark_mobiles"`
	TagIDs         qsql.JSON `db:"tag_ids" json:"tag_ids"`
	State          string    `db:"state" json:"state"`
	AddWay         int       `db:"add_way" json:"add_way"`
	OperUserID     string    `db:"oper_userid" json:"oper_userid,omitempty"`
	AddedAt        int64     `db:"added_at" json:"added_at"`
	DeletedAt      *int64    `db:"deleted_at" json:"deleted_at,omitempty"`
	DeletedBy      string    `db:"deleted_by" json:"deleted_by,omitempty"`
	TransferFail   string    `db:"transfer_fail" json:"transfer_fail,omitempty"`
}

// Who deleted a follow relation.
const (
	DeletedByCustomer = "customer"
	DeletedByStaff    = "staff"
	DeletedByTransfer = "transfer"
	DeletedBySync     = "sync"
)

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

var contactCols = []string{"corp_id", "external_userid", "name", "type", "gender", "unionid", "avatar", "corp_name", "created_at", "updated_at"}

var followCols = []string{"corp_id", "external_userid", "userid", "remark", "description", "remark_mobiles", "tag_ids", "state", "add_way", "oper_userid", "added_at", "deleted_at", "deleted_by", "updated_at"}

// contactWrite is a contact as WeCom reports it, with follow relations to record.
type contactWrite struct {
	CorpID  string
	Contact wecom.ExternalContact
	Follows []wecom.FollowUser
}

// rowsPerStatement bounds a multi-row upsert (placeholders stay far below
// both servers' limits).
const rowsPerStatement = 200

// writeContacts upserts contacts and their live follow relations, many rows
// a statement. A relation deleted after it was added stays deleted: events
// and syncs may arrive out of order. A contact listed twice is written once.
func (d *Directory) writeContacts(ctx context.Context, tx sqlx.ExtContext, ws []contactWrite, now int64) error {
	type key struct{ corp, ext string }
	seen := map[key]bool{}
	var contacts, follows []any
	for _, w := range ws {
		c := w.Contact
		if k := (key{w.CorpID, c.ExternalUserID}); !seen[k] {
			seen[k] = true
			contacts = append(contacts, []any{w.CorpID, c.ExternalUserID, c.Name, c.Type, c.Gender, c.UnionID, c.Avatar, c.CorpName, now, now})
		}
		for _, f := range w.Follows {
			tagIDs := f.TagIDs
			for _, t := range f.Tags {
				tagIDs = append(tagIDs, t.TagID)
			}
			follows = append(follows, []any{w.CorpID, c.ExternalUserID, f.UserID, f.Remark, f.Description, jsonList(f.RemarkMobiles), jsonList(tagIDs),
				f.State, f.AddWay, f.OperUserID, f.CreateTime * 1000, nil, "", now})
		}
	}
	if err := d.upsertRows(ctx, tx, contacts, func(n int) string {
		return d.db.UpsertRows("external_contacts", contactCols, []string{"corp_id", "external_userid"},
			[]string{"name", "type", "gender", "unionid", "avatar", "corp_name", "updated_at"}, n)
	}); err != nil {
		return err
	}
	in := d.db.Incoming
	return d.upsertRows(ctx, tx, follows, func(n int) string {
		// A row read from WeCom before the stored one was (two refreshes of
		// one contact racing: the event's and a tagging's) must not undo
		// it: every column changes only when the incoming read is not older
		// (updated_at is when it was read). MySQL assigns in order: each
		// guard reads the stored updated_at, assigned last; deleted_by reads
		// the stored deleted_at before deleted_at changes, and both read
		// added_at before it does.
		fresh := func(col, expr string) string {
			return col + " = CASE WHEN updated_at <= " + in("updated_at") + " THEN " + expr + " ELSE " + col + " END"
		}
		return d.db.UpsertSet("follow_relations", followCols, []string{"corp_id", "external_userid", "userid"}, n,
			fresh("remark", in("remark")), fresh("description", in("description")), fresh("remark_mobiles", in("remark_mobiles")),
			fresh("tag_ids", in("tag_ids")),
			fresh("state", "CASE WHEN "+in("state")+" <> '' THEN "+in("state")+" ELSE state END"),
			fresh("add_way", in("add_way")), fresh("oper_userid", in("oper_userid")),
			fresh("deleted_by", "CASE WHEN deleted_at IS NOT NULL AND deleted_at > "+in("added_at")+" THEN deleted_by ELSE '' END"),
			fresh("deleted_at", "CASE WHEN deleted_at IS NOT NULL AND deleted_at > "+in("added_at")+" THEN deleted_at ELSE NULL END"),
			fresh("added_at", in("added_at")), fresh("updated_at", in("updated_at")))
	})
}

// upsertRows runs the statement query(n) over rows (each a []any of one
// row's values), rowsPerStatement rows at a time.
func (d *Directory) upsertRows(ctx context.Context, tx sqlx.ExtContext, rows []any, query func(n int) string) error {
	for start := 0; start < len(rows); start += rowsPerStatement {
		chunk := rows[start:min(start+rowsPerStatement, len(rows))]
		var args []any
		for _, r := range chunk {
			args = append(args, r.([]any)...)
		}
		if _, err := tx.ExecContext(ctx, query(len(chunk)), args...); err != nil {
			return err
		}
	}
	return nil
}

// markFollowDeleted records a loss at the event's time, unless the relation
// was (re-)added after it.
func (d *Directory) markFollowDeleted(ctx context.Context, corpID, externalUserID, userID, by string, at time.Time) error {
	ms := qsql.Millis(at)
	res, err := d.db.ExecContext(ctx, `UPDATE follow_relations SET deleted_at = ?, deleted_by = ?, updated_at = ?
		WHERE corp_id = ? AND external_userid = ? AND userid = ? AND added_at <= ? AND (deleted_at IS NULL OR deleted_at > ?)`,
		ms, by, qsql.Millis(d.now()), corpID, externalUserID, userID, ms, ms)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Unknown relation (added before Qiflow knew the corp): record the loss anyway.
		q := d.db.InsertIgnoreRows("follow_relations", followCols, []string{"corp_id", "external_userid", "userid"}, 1)
		now := qsql.Millis(d.now())
		_, err = d.db.ExecContext(ctx, q, corpID, externalUserID, userID, "", "", "[]", "[]", "", 0, "", 0, ms, by, now)
	}
	return err
}

// GetContact returns a contact with every follow relation, deleted ones included.
func (d *Directory) GetContact(ctx context.Context, corpID, externalUserID string) (Contact, error) {
	var c Contact
	err := d.db.GetContext(ctx, &c, `SELECT `+strings.Join(contactCols, ",")+` FROM external_contacts WHERE corp_id = ? AND external_userid = ?`, corpID, externalUserID)
	if qsql.IsNoRows(err) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, err
	}
	err = d.db.SelectContext(ctx, &c.Follows, `SELECT external_userid, userid, remark, description, remark_mobiles, tag_ids, state, add_way, oper_userid, added_at, deleted_at, deleted_by, transfer_fail
		FROM follow_relations WHERE corp_id = ? AND external_userid = ? ORDER BY added_at`, corpID, externalUserID)
	return c, err
}

// Group is a customer group as mirrored.
type Group struct {
	ChatID      string `db:"chat_id" json:"chat_id"`
	Name        string `db:"name" json:"name"`
	Owner       string `db:"owner" json:"owner"`
	MemberCount int    `db:"member_count" json:"member_count"`
	CreatedAt   int64  `db:"created_at" json:"created_at"`
	UpdatedAt   int64  `db:"updated_at" json:"updated_at"`
}

// ListGroups pages through the corp's live customer groups by chat id,
// optionally those of one owner (the picker for group codes).
func (d *Directory) ListGroups(ctx context.Context, corpID, owner, after string, limit int) ([]Group, error) {
	q := `SELECT chat_id, name, owner, member_count, created_at, updated_at FROM group_chats WHERE corp_id = ? AND dismissed_at IS NULL AND chat_id > ?`
	args := []any{corpID, after}
	if owner != "" {
		q += ` AND owner = ?`
		args = append(args, owner)
	}
	var out []Group
	err := d.db.SelectContext(ctx, &out, q+` ORDER BY chat_id LIMIT ?`, append(args, limit)...)
	return out, err
}

// ListContacts pages contacts by external_userid (cursor = the last id seen).
func (d *Directory) ListContacts(ctx context.Context, corpID, after string, limit int) ([]Contact, error) {
	var out []Contact
	err := d.db.SelectContext(ctx, &out, `SELECT `+strings.Join(contactCols, ",")+` FROM external_contacts WHERE corp_id = ? AND external_userid > ? ORDER BY external_userid LIMIT ?`, corpID, after, limit)
	return out, err
}

// ListStaff returns the corp's staff, gone ones included (GoneAt set).
func (d *Directory) ListStaff(ctx context.Context, corpID string) ([]Staff, error) {
	var out []Staff
	err := d.db.SelectContext(ctx, &out, `SELECT corp_id, userid, name, mobile, email, status, department_ids, main_department, gone_at, synced_at FROM staff WHERE corp_id = ? ORDER BY userid`, corpID)
	return out, err
}

// Counts summarizes the mirror.
type Counts struct {
	Departments int `json:"departments"`
	Staff       int `json:"staff"`
	Tags        int `json:"tags"`
	Contacts    int `json:"contacts"`
	Follows     int `json:"follows"`
	Groups      int `json:"groups"`
}

// Count returns how much of the corp is mirrored (live rows only).
func (d *Directory) Count(ctx context.Context, corpID string) (Counts, error) {
	var c Counts
	for _, q := range []struct {
		dst *int
		sql string
	}{
		{&c.Departments, `SELECT COUNT(*) FROM departments WHERE corp_id = ? AND gone_at IS NULL`},
		{&c.Staff, `SELECT COUNT(*) FROM staff WHERE corp_id = ? AND gone_at IS NULL`},
		{&c.Tags, `SELECT COUNT(*) FROM tags WHERE corp_id = ? AND deleted_at IS NULL`},
		{&c.Contacts, `SELECT COUNT(*) FROM external_contacts WHERE corp_id = ?`},
		{&c.Follows, `SELECT COUNT(*) FROM follow_relations WHERE corp_id = ? AND deleted_at IS NULL`},
		{&c.Groups, `SELECT COUNT(*) FROM group_chats WHERE corp_id = ? AND dismissed_at IS NULL`},
	} {
		if err := d.db.GetContext(ctx, q.dst, q.sql, corpID); err != nil {
			return c, err
		}
	}
	return c, nil
}
