package leads

import (
	"context"
	"net/url"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// View is a user's saved filter of the lead pool: a name and the list's
// query string (?pool=&owner=&grade=...), as the console's pool page
// reads it.
type View struct {
	ID        int64  `db:"id" json:"id"`
	CorpID    string `db:"corp_id" json:"-"`
	UserID    int64  `db:"user_id" json:"user_id"`
	Name      string `db:"name" json:"name"`
	Query     string `db:"query" json:"query"`
	CreatedAt int64  `db:"created_at" json:"created_at"`
}

// viewKeys are the filter's parameters a view keeps (nothing else: no
// cursor, no stray parameter).
var viewKeys = []string{"pool", "owner", "stage", "grade", "status", "source", "channel", "code"}

// maxViews bounds one user's saved views.
const maxViews = 50

// SaveView saves (or replaces, by name) a user's view of the pool.
func (s *Service) SaveView(ctx context.Context, corp string, user int64, name, query string) (*View, error) {
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 64 {
		return nil, apperr.Field("name", "is required, at most 64 characters")
	}
	parsed, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
	if err != nil {
		return nil, apperr.Field("query", "is not a query string")
	}
	kept := url.Values{}
	for _, k := range viewKeys {
		if v := parsed.Get(k); v != "" {
			kept.Set(k, v)
		}
	}
	v := View{CorpID: corp, UserID: user, Name: name, Query: kept.Encode(), CreatedAt: qsql.Millis(s.now())}
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM lead_views WHERE corp_id = ? AND user_id = ? AND name <> ?`, corp, user, name); err != nil {
		return nil, err
	}
	if n >= maxViews {
		return nil, apperr.Field("name", "you have as many saved views as allowed: delete one first")
	}
	q := s.db.Upsert("lead_views", []string{"corp_id", "user_id", "name", "query", "created_at"}, []string{"corp_id", "user_id", "name"}, []string{"query"})
	if _, err := s.db.ExecContext(ctx, q, v.CorpID, v.UserID, v.Name, v.Query, v.CreatedAt); err != nil {
		return nil, err
	}
	return &v, nil
}

// Views lists a user's saved views by name.
func (s *Service) Views(ctx context.Context, corp string, user int64) ([]View, error) {
	out := []View{}
	err := s.db.SelectContext(ctx, &out, `SELECT id, corp_id, user_id, name, query, created_at FROM lead_views WHERE corp_id = ? AND user_id = ? ORDER BY name`, corp, user)
	return out, err
}

// DeleteView removes one of a user's views.
func (s *Service) DeleteView(ctx context.Context, corp string, user, id int64) error {
	ok, err := changedOne(s.db.ExecContext(ctx, `DELETE FROM lead_views WHERE corp_id = ? AND user_id = ? AND id = ?`, corp, user, id))
	if err != nil {
		return err
	}
	if !ok {
		return apperr.NotFound("saved view not found")
	}
	return nil
}
