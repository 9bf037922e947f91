package leads

import (
	"context"
	"fmt"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// HistoryTask is a task made on a lead (its title; the reason says for whom
// and when it is due).
const HistoryTask = "task"

// Errors of tasks.
var (
	ErrTaskNotFound = apperr.NotFound("task not found")
	ErrNoOwner      = apperr.Conflict("no_owner", "the lead has no owner to give the task to")
	ErrTaskDone     = apperr.Conflict("task_done", "the task is done already")
)

// Task is a follow-up on a lead for a user.
type Task struct {
	ID        int64  `db:"id" json:"id"`
	CorpID    string `db:"corp_id" json:"-"`
	LeadID    int64  `db:"lead_id" json:"lead_id"`
	Name      string `db:"name" json:"name"` // the lead's person
	UserID    int64  `db:"user_id" json:"user_id"`
	Title     string `db:"title" json:"title"`
	DueAt     int64  `db:"due_at" json:"due_at"`
	DoneAt    *int64 `db:"done_at" json:"done_at,omitempty"`
	DoneBy    int64  `db:"done_by" json:"done_by,omitempty"`
	CreatedBy int64  `db:"created_by" json:"created_by,omitempty"`
	CreatedAt int64  `db:"created_at" json:"created_at"`
}

// TaskIn is a task to make: for UserID (0: the lead's owner), due at DueAt
// (Unix ms). Key, when set, makes it once: the same key again answers the
// task it made.
type TaskIn struct {
	LeadID int64
	UserID int64
	Title  string
	DueAt  int64
	Key    string
}

const taskCols = `t.id, t.corp_id, t.lead_id, COALESCE(p.name, '') AS name, t.user_id, t.title, t.due_at, t.done_at, t.done_by, t.created_by, t.created_at`

// CreateTask makes a task on a live lead, in the lead's history. It
// answers the task and whether it is new (false: the key's earlier one).
func (s *Service) CreateTask(ctx context.Context, corp string, actor int64, in TaskIn) (*Task, bool, error) {
	in.Title = strings.TrimSpace(in.Title)
	f := apperr.Fields{}
	if in.Title == "" || len([]rune(in.Title)) > 255 {
		f.Add("title", "is required, at most 255 characters")
	}
	if in.DueAt <= 0 {
		f.Add("due_at", "is required")
	}
	if len(in.Key) > 64 {
		f.Add("key", "is at most 64 characters")
	}
	if len(f) > 0 {
		return nil, false, f.Err()
	}
	var id int64
	created := false
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if in.Key != "" {
			err := tx.GetContext(ctx, &id, `SELECT id FROM lead_tasks WHERE corp_id = ? AND idem_key = ?`, corp, in.Key)
			if err == nil || !qsql.IsNoRows(err) {
				return err
			}
		}
		l, err := s.store.lead(ctx, tx, corp, in.LeadID)
		if err != nil {
			return err
		}
		if l.MergedInto != 0 {
			return ErrMerged
		}
		user := in.UserID
		if user == 0 {
			if user = l.OwnerUserID; user == 0 {
				return ErrNoOwner
			}
		}
		ms := qsql.Millis(s.now())
		var key any
		if in.Key != "" {
			key = in.Key
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO lead_tasks (corp_id, lead_id, user_id, title, due_at, created_by, idem_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			corp, in.LeadID, user, in.Title, in.DueAt, actor, key, ms)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		created = true
		due := qsql.FromMillis(in.DueAt).In(s.calendars.For(corp).Location()).Format("2006-01-02 15:04")
		if actor != user { // a task someone (or a journey) gives: its owner hears of it
			if err := s.store.addNotices(ctx, tx, []notice{{corp, user, fmt.Sprintf("新任务「%s」：%s，%s 前完成 / A new task on %s: %s, due %s. %s",
				displayName(l), in.Title, due, displayName(l), in.Title, due, s.leadLink(in.LeadID))}}, ms); err != nil {
				return err
			}
		}
		return s.store.addHistory(ctx, tx, corp, in.LeadID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryTask, To: truncate(in.Title, 64),
			Reason: fmt.Sprintf("for user %d, due %s", user, due)})
	})
	if err != nil {
		if in.Key != "" && qsql.IsDuplicate(err) { // the same key at the same moment
			t, gerr := s.taskByKey(ctx, corp, in.Key)
			return t, false, gerr
		}
		return nil, false, err
	}
	t, err := s.Task(ctx, corp, id)
	return t, created, err
}

func (s *Service) taskByKey(ctx context.Context, corp, key string) (*Task, error) {
	var id int64
	if err := s.db.GetContext(ctx, &id, `SELECT id FROM lead_tasks WHERE corp_id = ? AND idem_key = ?`, corp, key); err != nil {
		return nil, err
	}
	return s.Task(ctx, corp, id)
}

// Task reads one task.
func (s *Service) Task(ctx context.Context, corp string, id int64) (*Task, error) {
	var t Task
	err := s.db.GetContext(ctx, &t, `SELECT `+taskCols+` FROM lead_tasks t JOIN leads l ON l.id = t.lead_id LEFT JOIN people p ON p.id = l.person_id
		WHERE t.corp_id = ? AND t.id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrTaskNotFound
	}
	return &t, err
}

// TasksOf lists a user's tasks: open ones by due time, or (done) the
// latest done first; at most limit.
func (s *Service) TasksOf(ctx context.Context, corp string, user int64, done bool, limit int) ([]Task, error) {
	out := []Task{}
	cond, order := "t.done_at IS NULL", "t.due_at, t.id"
	if done {
		cond, order = "t.done_at IS NOT NULL", "t.done_at DESC, t.id DESC"
	}
	err := s.db.SelectContext(ctx, &out, `SELECT `+taskCols+` FROM lead_tasks t JOIN leads l ON l.id = t.lead_id LEFT JOIN people p ON p.id = l.person_id
		WHERE t.corp_id = ? AND t.user_id = ? AND `+cond+` ORDER BY `+order+` LIMIT ?`, corp, user, limit)
	return out, err
}

// TasksOfLead lists a lead's tasks, newest first.
func (s *Service) TasksOfLead(ctx context.Context, corp string, lead int64) ([]Task, error) {
	out := []Task{}
	err := s.db.SelectContext(ctx, &out, `SELECT `+taskCols+` FROM lead_tasks t JOIN leads l ON l.id = t.lead_id LEFT JOIN people p ON p.id = l.person_id
		WHERE t.lead_id = ? AND t.corp_id = ? ORDER BY t.id DESC LIMIT 100`, lead, corp)
	return out, err
}

// CompleteTask marks a task done by user: its assignee, or (manager) anyone
// who manages pools. Done by the lead's owner, it is also their follow-up
// (a "task" touch: it meets the first-touch SLA and holds off recycling).
func (s *Service) CompleteTask(ctx context.Context, corp string, id, user int64, manager bool) (*Task, error) {
	t, err := s.Task(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if t.UserID != user && !manager {
		return nil, ErrTaskNotFound // not theirs to see
	}
	ms := qsql.Millis(s.now())
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE lead_tasks SET done_at = ?, done_by = ? WHERE corp_id = ? AND id = ? AND done_at IS NULL`, ms, user, corp, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrTaskDone
		}
		_, err = s.touchTx(ctx, tx, corp, t.LeadID, user, "task", t.Title, ms) // not their lead: no follow-up of its owner
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.Task(ctx, corp, id)
}

// RemindTasks tells the owners of open tasks that have fallen due (cron,
// each minute): each task once, the reminder written in the transaction
// that marks it reminded, so a second instance or a second pass reminds
// nobody again. It returns how many it reminded.
func (s *Service) RemindTasks(ctx context.Context) (int, error) {
	ms := qsql.Millis(s.now())
	var due []Task
	if err := s.db.SelectContext(ctx, &due, `SELECT `+taskCols+` FROM lead_tasks t JOIN leads l ON l.id = t.lead_id LEFT JOIN people p ON p.id = l.person_id
		WHERE t.reminded_at IS NULL AND t.done_at IS NULL AND t.due_at <= ? ORDER BY t.due_at LIMIT 500`, ms); err != nil {
		return 0, err
	}
	n := 0
	for _, t := range due {
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE lead_tasks SET reminded_at = ? WHERE id = ? AND reminded_at IS NULL AND done_at IS NULL`, ms, t.ID)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				return nil // reminded or done meanwhile
			}
			n++
			name := t.Name
			if name == "" {
				name = fmt.Sprintf("#%d", t.LeadID)
			}
			return s.store.addNotices(ctx, tx, []notice{{t.CorpID, t.UserID, fmt.Sprintf("任务到期「%s」：%s / A task on %s is due: %s. %s",
				name, t.Title, name, t.Title, s.leadLink(t.LeadID))}}, ms)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
