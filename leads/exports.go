package leads

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
)

// Exports: the leads a user may see, by the list's filter, as CSV (UTF-8
// with a BOM, as Excel opens it; cells that a spreadsheet would run as a
// formula escaped), with mobiles and emails masked unless the user may see
// them. Every export is audited: who, when, which filter, how many rows,
// masked or not. Rows are read a page at a time, so memory stays flat.

// Export is the audit of one export.
type Export struct {
	ID       int64  `db:"id" json:"id"`
	UserID   int64  `db:"user_id" json:"user_id"`
	Filter   string `db:"filter" json:"filter"`
	RowCount int64  `db:"row_count" json:"rows"`
	Masked   bool   `db:"masked" json:"masked"`
	At       int64  `db:"at" json:"at"`
}

// Mask hides the middle of a mobile or the local part of an email.
type Mask func(kind, value string) string

// ExportLeads writes the leads of filter f (paging is the export's own) as
// CSV to w and records the export; mask is nil for a user who may see
// mobiles and emails.
func (s *Service) ExportLeads(ctx context.Context, f ListFilter, actor int64, mask Mask, w io.Writer) (int64, error) {
	return s.export(ctx, f, nil, "", actor, mask, w)
}

// Page is the next page of lead ids of a set another package keeps (a
// segment's members), in id order: at most limit after the id after.
type Page func(ctx context.Context, after int64, limit int) ([]int64, error)

// ExportLeadsOf is ExportLeads of the leads next pages through (those the
// viewer of f may see), audited under label ("segment 7").
func (s *Service) ExportLeadsOf(ctx context.Context, f ListFilter, next Page, label string, actor int64, mask Mask, w io.Writer) (int64, error) {
	return s.export(ctx, f, next, label, actor, mask, w)
}

func (s *Service) export(ctx context.Context, f ListFilter, next Page, label string, actor int64, mask Mask, w io.Writer) (int64, error) {
	loc := s.calendars.For(f.CorpID).Location()
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return 0, err
	}
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "name", "mobile", "email", "company", "title", "region", "stage", "status", "pool_id", "owner_user_id",
		"source", "channel", "code_id", "grade", "fit", "engagement", "created_at"})
	var rows int64
	f.After, f.Limit = 0, 200
	var after int64 // the cursor of next
	for {
		var ids []int64
		if next != nil {
			var err error
			if ids, err = next(ctx, after, f.Limit); err != nil {
				return rows, err
			}
			f.IDs, f.After = ids, 0
			if len(ids) > 0 {
				after = ids[len(ids)-1]
			}
		}
		page, err := s.List(ctx, f)
		if err != nil {
			return rows, err
		}
		people := make([]int64, len(page))
		for i, l := range page {
			people[i] = l.PersonID
		}
		details, err := s.store.exportDetails(ctx, f.CorpID, people)
		if err != nil {
			return rows, err
		}
		for _, l := range page {
			d := details[l.PersonID]
			mobile, email := d.Mobile, d.Email
			if mask != nil {
				mobile, email = mask(IdentityMobile, mobile), mask(IdentityEmail, email)
			}
			rec := []string{fmt.Sprint(l.ID), l.Name, mobile, email, d.Company, d.Title, d.Region, l.Stage, l.Status, fmt.Sprint(l.PoolID),
				fmt.Sprint(l.OwnerUserID), l.Source, l.Channel, fmt.Sprint(l.CodeID), l.Grade, fmt.Sprint(l.FitPoints), fmt.Sprintf("%.1f", l.Engagement),
				qsql.FromMillis(l.CreatedAt).In(loc).Format(time.DateTime)}
			for i := range rec {
				rec[i] = CSVCell(rec[i])
			}
			if err := cw.Write(rec); err != nil {
				return rows, err
			}
			rows++
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return rows, err
		}
		if next != nil {
			if len(ids) < f.Limit {
				break
			}
			continue
		}
		if len(page) < f.Limit {
			break
		}
		f.After = page[len(page)-1].ID
	}
	what := map[string]any{"pool": f.PoolID, "owner": f.Owner, "stage": f.Stage}
	if label != "" {
		what = map[string]any{"of": label}
	}
	filter, _ := json.Marshal(what)
	return rows, s.store.recordExport(ctx, f.CorpID, actor, string(filter), rows, mask != nil, qsql.Millis(s.now()))
}

// Exports lists a corp's exports, newest first.
func (s *Service) Exports(ctx context.Context, corp string) ([]Export, error) {
	return s.store.exports(ctx, corp)
}
