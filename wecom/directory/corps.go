package directory

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/qiflow/qiflow/configs"
	qsql "github.com/qiflow/qiflow/sql"
)

// EnsureCorp records a configured corp; created is true the first time,
// when the caller starts its initial import.
func (d *Directory) EnsureCorp(ctx context.Context, corpID, name, timeZone string) (created bool, err error) {
	now := qsql.Millis(d.now())
	q := d.db.InsertIgnoreRows("corps", []string{"id", "name", "time_zone", "created_at", "updated_at"}, []string{"id"}, 1)
	res, err := d.db.ExecContext(ctx, q, corpID, name, timeZone, now, now)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		_, err = d.db.ExecContext(ctx, `UPDATE corps SET name = ?, time_zone = ?, updated_at = ? WHERE id = ?`, name, timeZone, now, corpID)
	}
	return n > 0, err
}

// SaveCalendar stores a corp's work calendar as an admin set it: it
// replaces the configuration file's (see Calendars).
func (d *Directory) SaveCalendar(ctx context.Context, corpID string, cc configs.CalendarConfig, by int64) error {
	b, err := json.Marshal(cc)
	if err != nil {
		return err
	}
	q := d.db.Upsert("corp_calendars", []string{"corp_id", "config", "updated_by", "updated_at"}, []string{"corp_id"}, []string{"config", "updated_by", "updated_at"})
	_, err = d.db.ExecContext(ctx, q, corpID, string(b), by, qsql.Millis(d.now()))
	return err
}

// Calendars are the work calendars admins set, by corp.
func (d *Directory) Calendars(ctx context.Context) (map[string]configs.CalendarConfig, error) {
	var rows []struct {
		Corp   string `db:"corp_id"`
		Config string `db:"config"`
	}
	if err := d.db.SelectContext(ctx, &rows, `SELECT corp_id, config FROM corp_calendars`); err != nil {
		return nil, err
	}
	out := make(map[string]configs.CalendarConfig, len(rows))
	for _, r := range rows {
		var cc configs.CalendarConfig
		if err := json.Unmarshal([]byte(r.Config), &cc); err != nil {
			return nil, fmt.Errorf("calendar of %s: %w", r.Corp, err)
		}
		out[r.Corp] = cc
	}
	return out, nil
}
