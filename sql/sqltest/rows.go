package sqltest

import (
	"strings"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
)

// InsertRows inserts n rows into table, 500 a statement, row i's values
// being values(i) in the order of cols: for tests that need many rows.
func InsertRows(t testing.TB, db *qsql.DB, table string, cols []string, n int, values func(i int) []any) {
	t.Helper()
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for start := 0; start < n; start += 500 {
		end := min(n, start+500)
		rows := make([]string, 0, end-start)
		args := make([]any, 0, (end-start)*len(cols))
		for i := start; i < end; i++ {
			rows = append(rows, row)
			args = append(args, values(i)...)
		}
		if _, err := db.Exec(`INSERT INTO `+table+` (`+strings.Join(cols, ", ")+`) VALUES `+strings.Join(rows, ","), args...); err != nil {
			t.Fatalf("insert into %s: %v", table, err)
		}
	}
}
