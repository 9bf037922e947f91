package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jmoiron/sqlx"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// JobSync is the kind of the import/reconcile job.
const JobSync = "directory.sync"

// syncCheckpoint is where a sync is; a restarted job resumes here.
type syncCheckpoint struct {
	Step       string   `json:"step"` // departments, staff, tags, contacts, groups, finish
	StartedAt  int64    `json:"started_at"`
	SeenStaff  []string `json:"seen_staff,omitempty"`
	FollowUser []string `json:"follow_users,omitempty"`
	Batch      int      `json:"batch"`  // index into FollowUser, by 100
	Cursor     string   `json:"cursor"` // within the batch or the group list
	Contacts   int64    `json:"contacts"`
	Groups     int64    `json:"groups"`
}

// SyncResult is the job's result.
type SyncResult struct {
	Departments int   `json:"departments"`
	Staff       int   `json:"staff"`
	StaffGone   int64 `json:"staff_gone"`
	Contacts    int64 `json:"contacts"`
	FollowsGone int64 `json:"follows_gone"`
	Groups      int64 `json:"groups"`
}

// EnqueueSync queues an import/reconcile of the corp unless one is already queued or running.
func (d *Directory) EnqueueSync(ctx context.Context, r *jobs.Runner, corpID string, createdBy int64) (int64, error) {
	return r.Enqueue(ctx, corpID, JobSync, JobSync+":"+corpID, map[string]string{"corp_id": corpID}, createdBy)
}

// RunSync imports the corp's directory step by step, checkpointing after
// each page so a crash resumes where it stopped. Removals (staff gone, follow
// relations missing) are applied only in the last step, after every list was
// read completely: a failed or partial sync removes nobody.
func (d *Directory) RunSync(ctx context.Context, j *jobs.Job) (any, error) {
	corpID := j.CorpID
	var cp syncCheckpoint
	if ok, err := j.LoadCheckpoint(&cp); err != nil {
		return nil, err
	} else if !ok {
		cp = syncCheckpoint{Step: "departments", StartedAt: qsql.Millis(d.now())}
	}
	var res SyncResult
	save := func() error { return j.Checkpoint(ctx, cp, cp.Contacts+cp.Groups, 0) }
	for {
		switch cp.Step {
		case "departments":
			n, err := d.syncDepartments(ctx, corpID)
			if err != nil {
				return nil, err
			}
			res.Departments = n
			cp.Step = "staff"
		case "staff":
			seen, err := d.syncStaff(ctx, corpID)
			if err != nil {
				return nil, err
			}
			cp.SeenStaff, cp.Step = seen, "tags"
		case "tags":
			if err := d.SyncTags(ctx, corpID); err != nil {
				return nil, err
			}
			cp.Step = "contacts"
			users, err := d.wc.ListFollowUsers(ctx, corpID)
			if err != nil {
				return nil, fmt.Errorf("list follow users: %w", err)
			}
			sort.Strings(users)
			cp.FollowUser, cp.Batch, cp.Cursor = users, 0, ""
		case "contacts":
			done, err := d.syncContactsPage(ctx, corpID, &cp)
			if err != nil {
				return nil, err
			}
			if done {
				cp.Step, cp.Batch, cp.Cursor = "groups", 0, ""
			}
		case "groups":
			done, err := d.syncGroupsPage(ctx, corpID, &cp)
			if err != nil {
				return nil, err
			}
			if done {
				cp.Step = "finish"
			}
		case "finish":
			gone, lost, err := d.applyRemovals(ctx, corpID, cp)
			if err != nil {
				return nil, err
			}
			res.Staff, res.StaffGone, res.Contacts, res.FollowsGone, res.Groups = len(cp.SeenStaff), gone, cp.Contacts, lost, cp.Groups
			return res, nil
		default:
			return nil, jobs.Permanent(fmt.Errorf("unknown sync step %q", cp.Step))
		}
		if err := save(); err != nil {
			return nil, err
		}
	}
}

func (d *Directory) syncDepartments(ctx context.Context, corpID string) (int, error) {
	depts, err := d.wc.ListDepartments(ctx, corpID)
	if err != nil {
		return 0, fmt.Errorf("list departments: %w", err)
	}
	now := qsql.Millis(d.now())
	q := d.db.Upsert("departments", []string{"corp_id", "id", "name", "parent_id", "sort_order", "gone_at", "synced_at"}, []string{"corp_id", "id"},
		[]string{"name", "parent_id", "sort_order", "gone_at", "synced_at"})
	err = d.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for _, dp := range depts {
			if _, err := tx.ExecContext(ctx, q, corpID, dp.ID, dp.Name, dp.ParentID, dp.Order, nil, now); err != nil {
				return err
			}
		}
		// The department list is complete in one call.
		_, err := tx.ExecContext(ctx, `UPDATE departments SET gone_at = ? WHERE corp_id = ? AND synced_at < ? AND gone_at IS NULL`, now, corpID, now)
		return err
	})
	return len(depts), err
}

// syncStaff reads every department's staff and stores them; it returns the
// ids seen. Nobody is marked gone here.
func (d *Directory) syncStaff(ctx context.Context, corpID string) ([]string, error) {
	var deptIDs []int64
	if err := d.db.SelectContext(ctx, &deptIDs, `SELECT id FROM departments WHERE corp_id = ? AND gone_at IS NULL ORDER BY id`, corpID); err != nil {
		return nil, err
	}
	now := qsql.Millis(d.now())
	q := d.db.Upsert("staff", []string{"corp_id", "userid", "name", "mobile", "email", "status", "department_ids", "main_department", "gone_at", "synced_at", "created_at"},
		[]string{"corp_id", "userid"}, []string{"name", "mobile", "email", "status", "department_ids", "main_department", "gone_at", "synced_at"})
	seen := map[string]bool{}
	for _, dept := range deptIDs {
		staff, err := d.wc.ListStaff(ctx, corpID, dept)
		if err != nil {
			return nil, fmt.Errorf("list staff of department %d: %w", dept, err)
		}
		for _, s := range staff {
			if seen[s.UserID] {
				continue
			}
			seen[s.UserID] = true
			depts, _ := json.Marshal(s.Department)
			if _, err := d.db.ExecContext(ctx, q, corpID, s.UserID, s.Name, s.Mobile, s.Email, s.Status, string(depts), s.MainDepartment, nil, now, now); err != nil {
				return nil, err
			}
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// syncContactsPage imports one page of batch/get_by_user for the current
// batch of up to 100 follow users; done is true after the last page.
func (d *Directory) syncContactsPage(ctx context.Context, corpID string, cp *syncCheckpoint) (bool, error) {
	start := cp.Batch * 100
	if start >= len(cp.FollowUser) {
		return true, nil
	}
	users := cp.FollowUser[start:min(start+100, len(cp.FollowUser))]
	list, next, err := d.wc.BatchGetExternalContacts(ctx, corpID, users, cp.Cursor, 100)
	if err != nil {
		return false, fmt.Errorf("batch get contacts: %w", err)
	}
	now := qsql.Millis(d.now())
	ws := make([]contactWrite, len(list))
	for i, cf := range list {
		ws[i] = contactWrite{CorpID: corpID, Contact: cf.ExternalContact, Follows: []wecom.FollowUser{cf.FollowInfo}}
	}
	err = d.db.WriteTx(ctx, func(tx *qsql.Tx) error { return d.writeContacts(ctx, tx, ws, now) })
	if err != nil {
		return false, err
	}
	cp.Contacts += int64(len(list))
	if next != "" {
		cp.Cursor = next
		return false, nil
	}
	cp.Batch++
	cp.Cursor = ""
	return cp.Batch*100 >= len(cp.FollowUser), nil
}

// syncGroupsPage imports one page of the groups owned by one batch of (at
// most 100) staff with the customer-contact permission: WeCom refuses an
// unfiltered list once the app sees more than 1,000 staff (81017).
func (d *Directory) syncGroupsPage(ctx context.Context, corpID string, cp *syncCheckpoint) (bool, error) {
	start := cp.Batch * wecom.MaxGroupOwners
	if start >= len(cp.FollowUser) {
		return true, nil
	}
	owners := cp.FollowUser[start:min(start+wecom.MaxGroupOwners, len(cp.FollowUser))]
	refs, next, err := d.wc.ListGroupChats(ctx, corpID, owners, cp.Cursor, 100)
	if err != nil {
		return false, fmt.Errorf("list group chats: %w", err)
	}
	for _, r := range refs {
		if err := d.RefreshGroup(ctx, corpID, r.ChatID); err != nil {
			return false, err
		}
		cp.Groups++
	}
	cp.Cursor = next
	if next == "" {
		cp.Batch++
	}
	return cp.Batch*wecom.MaxGroupOwners >= len(cp.FollowUser), nil
}

// applyRemovals runs after every list was read completely: staff not seen are
// gone, and live follow relations of listed staff that the contact pass did
// not touch were lost while we were not told (deleted_by sync).
func (d *Directory) applyRemovals(ctx context.Context, corpID string, cp syncCheckpoint) (staffGone, followsGone int64, err error) {
	now := qsql.Millis(d.now())
	err = d.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		q, args, err := sqlx.In(`UPDATE staff SET gone_at = ? WHERE corp_id = ? AND gone_at IS NULL AND userid NOT IN (?)`, now, corpID, append(cp.SeenStaff, "\x00"))
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		staffGone, _ = res.RowsAffected()
		if len(cp.FollowUser) == 0 {
			return nil
		}
		q, args, err = sqlx.In(`UPDATE follow_relations SET deleted_at = ?, deleted_by = ? WHERE corp_id = ? AND deleted_at IS NULL AND updated_at < ? AND userid IN (?)`,
			now, DeletedBySync, corpID, cp.StartedAt, cp.FollowUser)
		if err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		followsGone, _ = res.RowsAffected()
		return nil
	})
	return staffGone, followsGone, err
}
