package livecode

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// StatsFilter selects statistics rows.
type StatsFilter struct {
	CorpID  string
	From    string // YYYY-MM-DD, corp-local, inclusive
	To      string // inclusive
	GroupBy string // code | staff | channel | day
	CodeID  int64  // optional
	Owner   int64  // optional: only this owner's codes
}

// StatsRow is one group's figures over the range.
type StatsRow struct {
	Key          string  `db:"k" json:"key"`
	Visits       int     `db:"visits" json:"visits"`
	Adds         int     `db:"adds" json:"adds"`
	ReAdds       int     `db:"readds" json:"readds"`
	LostCustomer int     `db:"lost_customer" json:"lost_customer"`
	LostStaff    int     `db:"lost_staff" json:"lost_staff"`
	NetAdds      int     `db:"-" json:"net_adds"`
	WelcomeSent  int     `db:"welcome_sent" json:"welcome_sent"`
	WelcomeMiss  int     `db:"welcome_missed" json:"welcome_missed"`
	Retained7d   float64 `db:"-" json:"retained_7d"`  // share of adds still connected 7 days later (adds old enough)
	Retained30d  float64 `db:"-" json:"retained_30d"` // same after 30 days
}

var groupExpr = map[string]string{
	"code":    "CAST(s.code_id AS CHAR)", // CHAR gives TEXT affinity in SQLite too
	"staff":   "s.userid",
	"channel": "COALESCE(c.channel, '')",
	"day":     "s.day",
	"store":   "COALESCE(st.name, '')",
}

// Stats returns figures per group over a date range.
func (s *Service) Stats(ctx context.Context, f StatsFilter) ([]StatsRow, error) {
	expr, ok := groupExpr[f.GroupBy]
	if !ok {
		return nil, apperr.Field("group_by", "must be code, staff, channel, store or day")
	}
	errs := apperr.Fields{}
	for _, p := range []struct{ field, v string }{{"from", f.From}, {"to", f.To}} {
		if _, err := time.Parse(time.DateOnly, p.v); err != nil {
			errs.Add(p.field, "must be a YYYY-MM-DD date")
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	q := statsQuery{expr: expr, where: "s.corp_id = ? AND s.day >= ? AND s.day <= ?", args: []any{f.CorpID, f.From, f.To}}
	if f.CodeID != 0 {
		q.where += " AND s.code_id = ?"
		q.args = append(q.args, f.CodeID)
	}
	if f.Owner != 0 {
		q.where += " AND c.owner_user_id = ?"
		q.args = append(q.args, f.Owner)
	}
	rows, err := s.store.statsRows(ctx, q)
	if err != nil {
		return nil, err
	}
	ret7, err := s.retention(ctx, q, 7)
	if err != nil {
		return nil, err
	}
	ret30, err := s.retention(ctx, q, 30)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		r.NetAdds = r.Adds + r.ReAdds - r.LostCustomer - r.LostStaff
		r.Retained7d, r.Retained30d = ret7[r.Key], ret30[r.Key]
	}
	return rows, nil
}

// retention is, per group, the share of adds at least `days` old that were
// still connected `days` after the add.
func (s *Service) retention(ctx context.Context, q statsQuery, days int) (map[string]float64, error) {
	horizon := int64(days) * 24 * 3600 * 1000
	rows, err := s.store.retentionRows(ctx, q, horizon, qsql.Millis(s.now()))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, r := range rows {
		if r.Total > 0 {
			out[r.K] = float64(r.Kept) / float64(r.Total)
		}
	}
	return out, nil
}

// WriteCSV writes rows as CSV for Excel: UTF-8 with a BOM, and cells that
// start with =, +, - or @ escaped so a spreadsheet never runs them as formulas.
func WriteCSV(w io.Writer, groupBy string, rows []StatsRow) error {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{groupBy, "visits", "adds", "readds", "lost_customer", "lost_staff", "net_adds", "welcome_sent", "welcome_missed", "retained_7d", "retained_30d"})
	for _, r := range rows {
		cw.Write([]string{CSVCell(r.Key), fmt.Sprint(r.Visits), fmt.Sprint(r.Adds), fmt.Sprint(r.ReAdds), fmt.Sprint(r.LostCustomer),
			fmt.Sprint(r.LostStaff), fmt.Sprint(r.NetAdds), fmt.Sprint(r.WelcomeSent), fmt.Sprint(r.WelcomeMiss),
			fmt.Sprintf("%.3f", r.Retained7d), fmt.Sprintf("%.3f", r.Retained30d)})
	}
	cw.Flush()
	return cw.Error()
}

// CSVCell neutralizes spreadsheet formulas.
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Sources lists the contacts that came through a code, newest first.
type Source struct {
	ID             int64  `db:"id" json:"id"`
	ExternalUserID string `db:"external_userid" json:"external_userid"`
	UserID         string `db:"userid" json:"userid"`
	Channel        string `db:"channel" json:"channel"`
	ReAdd          bool   `db:"is_readd" json:"re_add"`
	OutOfPeriod    bool   `db:"out_of_period" json:"out_of_period"`
	AddedAt        int64  `db:"added_at" json:"added_at"`
	LostAt         *int64 `db:"lost_at" json:"lost_at,omitempty"`
	LostBy         string `db:"lost_by" json:"lost_by,omitempty"`
}

// CodeContacts lists a code's contacts, before cursor (a source id).
func (s *Service) CodeContacts(ctx context.Context, corp string, code, before int64, limit int) ([]Source, error) {
	if before <= 0 {
		before = 1 << 62
	}
	return s.store.codeContacts(ctx, corp, code, before, limit)
}
