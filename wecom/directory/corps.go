package directory

import (
	"context"

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
