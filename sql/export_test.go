package sql_test

import (
	"os"

	"github.com/go-sql-driver/mysql"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
)

// reopen opens a second handle on db's database, as another instance would.
func reopen(t *testing.T, db *qsql.DB) *qsql.DB {
	var dsn string
	if db.Dialect == qsql.SQLite {
		dsn = db.Path
	} else {
		var name string
		if err := db.Get(&name, "SELECT DATABASE()"); err != nil {
			t.Error(err)
			return db
		}
		dsn = replaceDB(t, name)
	}
	other, err := qsql.Open(string(db.Dialect), dsn)
	if err != nil {
		t.Error(err)
		return db
	}
	t.Cleanup(func() { other.Close() })
	return other
}

func replaceDB(t *testing.T, name string) string {
	cfg, err := mysql.ParseDSN(os.Getenv("QIFLOW_TEST_MYSQL_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	return cfg.FormatDSN()
}
