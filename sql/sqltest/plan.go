package sqltest

import (
	"fmt"
	"strings"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
)

// Plan is how the database would run query: on MySQL "table:index:type"
// per table EXPLAIN lists (index empty for a scan; type "index" for a scan
// of the whole index, "range" or "ref" for lookups), on SQLite the lines of
// EXPLAIN QUERY PLAN ("SEARCH … USING INDEX i (a=?)" for lookups, "SCAN"
// for scans); for tests that a hot query reads through its index.
func Plan(t testing.TB, db *qsql.DB, query string, args ...any) string {
	t.Helper()
	prefix := "EXPLAIN QUERY PLAN "
	if db.Dialect == qsql.MySQL {
		prefix = "EXPLAIN "
	}
	rows, err := db.Queryx(prefix+query, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		row := map[string]any{}
		if err := rows.MapScan(row); err != nil {
			t.Fatal(err)
		}
		if db.Dialect == qsql.MySQL {
			out = append(out, fmt.Sprintf("%s:%s:%s", text(row["table"]), text(row["key"]), text(row["type"])))
		} else {
			out = append(out, text(row["detail"]))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "; ")
}

// text is a scanned column as a string (drivers give []byte, string or nil).
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}
