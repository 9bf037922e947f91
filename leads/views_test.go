package leads

import (
	"context"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// A user's saved views keep only the pool's filter, are replaced by name,
// and are theirs alone.
func TestViews_SavedPerUserByName(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		v, err := s.SaveView(ctx, "ww1", 7, " A leads ", "?grade=A&owner=none&after=99&evil=1")
		if err != nil || v.Query != "grade=A&owner=none" || v.Name != "A leads" {
			t.Fatalf("save: %+v %v", v, err)
		}
		if _, err := s.SaveView(ctx, "ww1", 7, "A leads", "grade=A&channel=expo"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveView(ctx, "ww1", 8, "mine", "owner=me"); err != nil {
			t.Fatal(err)
		}
		views, err := s.Views(ctx, "ww1", 7)
		if err != nil || len(views) != 1 || views[0].Query != "channel=expo&grade=A" {
			t.Fatalf("views: %+v %v", views, err)
		}
		if _, err := s.SaveView(ctx, "ww1", 7, "", "grade=B"); err == nil {
			t.Fatal("a view without a name was saved")
		}
		others, _ := s.Views(ctx, "ww1", 8)
		if err := s.DeleteView(ctx, "ww1", 7, others[0].ID); err == nil {
			t.Fatal("another user's view was deleted")
		}
		if err := s.DeleteView(ctx, "ww1", 7, views[0].ID); err != nil {
			t.Fatal(err)
		}
		if views, _ := s.Views(ctx, "ww1", 7); len(views) != 0 {
			t.Fatalf("after deleting: %+v", views)
		}
	})
}
