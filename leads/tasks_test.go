package leads

import (
	"context"
	"testing"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// Tasks: made for the lead's owner (refused without one), once per key,
// in the lead's history; listed on the owner's agenda by due time; done by
// their assignee only (or a pool manager), which is also the owner's
// follow-up on the lead. Given by another, a task is a notice to its
// owner; one that falls due undone is a reminder, once.
func TestTasks_ForTheOwnerOncePerKeyAndDoneAsAFollowUp(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		ids := seed(t, s, 2)
		due := time.Now().Add(24 * time.Hour).UnixMilli()
		if _, _, err := s.CreateTask(ctx, "ww1", 0, TaskIn{LeadID: ids[0], Title: "回访", DueAt: due}); err != ErrNoOwner {
			t.Fatalf("a task on an unowned lead: %v", err)
		}
		if _, _, err := s.CreateTask(ctx, "ww1", 0, TaskIn{LeadID: ids[0], Title: " ", DueAt: 0}); fieldsOf(err)["title"] == "" || fieldsOf(err)["due_at"] == "" {
			t.Fatalf("a task without a title or due time: %v", err)
		}
		for _, id := range ids {
			if _, err := s.Claim(ctx, "ww1", id, 7); err != nil {
				t.Fatal(err)
			}
		}
		first, made, err := s.CreateTask(ctx, "ww1", 0, TaskIn{LeadID: ids[0], Title: "回访报价", DueAt: due + 1000, Key: "journey:1:2"})
		if err != nil || !made || first.UserID != 7 {
			t.Fatalf("task %+v %v %v", first, made, err)
		}
		again, made, err := s.CreateTask(ctx, "ww1", 0, TaskIn{LeadID: ids[0], Title: "回访报价", DueAt: due + 1000, Key: "journey:1:2"})
		if err != nil || made || again.ID != first.ID {
			t.Fatalf("the same key again: %+v %v %v", again, made, err)
		}
		sooner, _, err := s.CreateTask(ctx, "ww1", 3, TaskIn{LeadID: ids[1], Title: "发资料", DueAt: due})
		if err != nil {
			t.Fatal(err)
		}
		// Given by user 3 (and by a journey, actor 0): two notices to 7.
		var notices int
		db.Get(&notices, `SELECT COUNT(*) FROM lead_notices WHERE user_id = 7 AND text LIKE '%A new task%'`)
		if notices != 2 {
			t.Fatalf("%d new-task notices, want 2", notices)
		}
		a, err := s.AgendaOf(ctx, "ww1", 7, 2)
		if err != nil || len(a.Tasks) != 2 || a.Tasks[0].ID != sooner.ID || a.Tasks[1].ID != first.ID {
			t.Fatalf("agenda tasks %+v %v", a.Tasks, err)
		}
		_, h, _ := s.Get(ctx, "ww1", ids[0], all)
		if last := h[len(h)-1]; last.Kind != HistoryTask || last.To != "回访报价" {
			t.Fatalf("history %+v", last)
		}

		// Nothing is due yet; then the sooner task falls due: one reminder, however often the job runs.
		if n, err := s.RemindTasks(ctx); err != nil || n != 0 {
			t.Fatalf("reminded %d (%v) before anything was due", n, err)
		}
		s.SetClock(func() time.Time { return time.UnixMilli(due) })
		for _, want := range []int{1, 0} {
			if n, err := s.RemindTasks(ctx); err != nil || n != want {
				t.Fatalf("reminded %d (%v), want %d", n, err, want)
			}
		}
		db.Get(&notices, `SELECT COUNT(*) FROM lead_notices WHERE user_id = 7 AND text LIKE '%is due: 发资料%'`)
		if notices != 1 {
			t.Fatalf("%d due reminders, want 1", notices)
		}
		if _, err := s.CompleteTask(ctx, "ww1", first.ID, 8, false); err != ErrTaskNotFound {
			t.Fatalf("done by someone else: %v", err)
		}
		done, err := s.CompleteTask(ctx, "ww1", first.ID, 7, false)
		if err != nil || done.DoneAt == nil || done.DoneBy != 7 {
			t.Fatalf("done %+v %v", done, err)
		}
		if _, err := s.CompleteTask(ctx, "ww1", first.ID, 7, false); err != ErrTaskDone {
			t.Fatalf("done twice: %v", err)
		}
		_, h, _ = s.Get(ctx, "ww1", ids[0], all)
		if last := h[len(h)-1]; last.Kind != HistoryTouch || last.To != "task" || last.Reason != "回访报价" {
			t.Fatalf("the follow-up %+v", last)
		}
		// A manager closes another's task: no follow-up of the owner's is made up.
		if _, err := s.CompleteTask(ctx, "ww1", sooner.ID, 99, true); err != nil {
			t.Fatal(err)
		}
		_, h, _ = s.Get(ctx, "ww1", ids[1], all)
		if last := h[len(h)-1]; last.Kind == HistoryTouch {
			t.Fatalf("a manager's close counted as the owner's follow-up: %+v", last)
		}
		if open, _ := s.TasksOf(ctx, "ww1", 7, false, 10); len(open) != 0 {
			t.Fatalf("open tasks left %+v", open)
		}
		if closed, _ := s.TasksOf(ctx, "ww1", 7, true, 10); len(closed) != 2 {
			t.Fatalf("done tasks %+v", closed)
		}
	})
}
