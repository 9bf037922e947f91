package sql_test

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// schema is a database's tables with their columns and indexes (by name,
// with their columns in order, "unique" marked); primary keys count as an
// index named "primary".
type schema map[string]table

type table struct {
	columns []string
	indexes map[string]string
}

func sqliteSchema(t *testing.T, db *qsql.DB) schema {
	out := schema{}
	var tables []string
	if err := db.Select(&tables, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`); err != nil {
		t.Fatal(err)
	}
	for _, name := range tables {
		tb := table{indexes: map[string]string{}}
		var cols []struct {
			CID     int     `db:"cid"`
			Name    string  `db:"name"`
			Type    string  `db:"type"`
			NotNull bool    `db:"notnull"`
			Default *string `db:"dflt_value"`
			PK      int     `db:"pk"`
		}
		if err := db.Select(&cols, `SELECT cid, name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)`, name); err != nil {
			t.Fatal(err)
		}
		pk := map[int]string{}
		for _, c := range cols {
			tb.columns = append(tb.columns, c.Name)
			if c.PK > 0 {
				pk[c.PK] = c.Name
			}
		}
		if len(pk) > 0 {
			var k []string
			for i := 1; i <= len(pk); i++ {
				k = append(k, pk[i])
			}
			tb.indexes["primary"] = "unique " + strings.Join(k, ",")
		}
		var idx []struct {
			Name   string `db:"name"`
			Unique bool   `db:"unique"`
			Origin string `db:"origin"`
		}
		if err := db.Select(&idx, `SELECT name, "unique", origin FROM pragma_index_list(?)`, name); err != nil {
			t.Fatal(err)
		}
		for _, ix := range idx {
			if ix.Origin == "pk" {
				continue
			}
			var ic []string
			if err := db.Select(&ic, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, ix.Name); err != nil {
				t.Fatal(err)
			}
			tb.indexes[ix.Name] = uniq(ix.Unique) + strings.Join(ic, ",")
		}
		sort.Strings(tb.columns)
		out[name] = tb
	}
	return out
}

func mysqlSchema(t *testing.T, db *qsql.DB) schema {
	out := schema{}
	var cols []struct {
		Table  string `db:"TABLE_NAME"`
		Column string `db:"COLUMN_NAME"`
	}
	if err := db.Select(&cols, `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'goose_db_version'`); err != nil {
		t.Fatal(err)
	}
	for _, c := range cols {
		tb, ok := out[c.Table]
		if !ok {
			tb = table{indexes: map[string]string{}}
		}
		tb.columns = append(tb.columns, c.Column)
		out[c.Table] = tb
	}
	var idx []struct {
		Table     string `db:"TABLE_NAME"`
		Index     string `db:"INDEX_NAME"`
		NonUnique int    `db:"NON_UNIQUE"`
		Columns   string `db:"COLS"`
	}
	if err := db.Select(&idx, `SELECT TABLE_NAME, INDEX_NAME, MAX(NON_UNIQUE) AS NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS COLS
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'goose_db_version' GROUP BY TABLE_NAME, INDEX_NAME`); err != nil {
		t.Fatal(err)
	}
	for _, ix := range idx {
		name := ix.Index
		if name == "PRIMARY" {
			name = "primary"
		}
		out[ix.Table].indexes[name] = uniq(ix.NonUnique == 0) + ix.Columns
	}
	for name, tb := range out {
		sort.Strings(tb.columns)
		out[name] = tb
	}
	return out
}

func uniq(u bool) string {
	if u {
		return "unique "
	}
	return ""
}

// The two schemas are written by hand, once per dialect: they must define
// the same tables, columns and indexes, or one storage path silently lacks
// what the other has.
func TestSchemas_MySQLAndSQLiteDefineTheSameTablesColumnsAndIndexes(t *testing.T) {
	if os.Getenv("QIFLOW_TEST_MYSQL_DSN") == "" {
		t.Skip("needs QIFLOW_TEST_MYSQL_DSN to compare against (CI sets it)")
	}
	lite := sqliteSchema(t, sqltest.OpenSQLite(t))
	my := mysqlSchema(t, sqltest.OpenMySQL(t))
	if len(lite["bus_deliveries"].indexes) < 2 || len(my["bus_deliveries"].columns) == 0 {
		t.Fatalf("the schemas were not read: %d and %d tables", len(lite), len(my))
	}
	unclusterMySQL(lite, my)
	var diffs []string
	for name, a := range lite {
		b, ok := my[name]
		if !ok {
			diffs = append(diffs, "table "+name+" only in SQLite")
			continue
		}
		if !slices.Equal(a.columns, b.columns) {
			diffs = append(diffs, fmt.Sprintf("%s columns: SQLite %v, MySQL %v", name, a.columns, b.columns))
		}
		for ix, def := range a.indexes {
			if b.indexes[ix] != def {
				diffs = append(diffs, fmt.Sprintf("%s index %s: SQLite %q, MySQL %q", name, ix, def, b.indexes[ix]))
			}
		}
		for ix, def := range b.indexes {
			if _, ok := a.indexes[ix]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s index %s (%s) only in MySQL", name, ix, def))
			}
		}
	}
	for name := range my {
		if _, ok := lite[name]; !ok {
			diffs = append(diffs, "table "+name+" only in MySQL")
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
}

// clusteredBy names the tables MySQL stores in the order of another key than
// id, with the SQLite index on that key: InnoDB keeps a table in its primary
// key's order, so a table read by person far more than by id has the primary
// key (that key, id) there and a unique index "<table>_id" on id, while
// SQLite keeps its rowid table and the index.
var clusteredBy = map[string]string{"activities": "activities_person"}

// unclusterMySQL rewrites those MySQL tables' keys as SQLite defines them, so
// the comparison sees any other difference; a table whose keys are not the
// expected shape is left as it is and reported.
func unclusterMySQL(lite, my schema) {
	for name, ix := range clusteredBy {
		key, ok := lite[name].indexes[ix]
		tb := my[name]
		if !ok || tb.indexes["primary"] != "unique "+key+",id" || tb.indexes[name+"_id"] != "unique id" {
			continue
		}
		tb.indexes[ix], tb.indexes["primary"] = key, "unique id"
		delete(tb.indexes, name+"_id")
	}
}
