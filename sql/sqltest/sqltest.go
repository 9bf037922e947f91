// Package sqltest gives tests a migrated database: SQLite always, and a fresh
// database on the MySQL/MariaDB server at QIFLOW_TEST_MYSQL_DSN when set. Each
// test gets its own database, so packages and tests may run in parallel.
package sqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"

	qsql "github.com/qiflow/qiflow/sql"
)

// Backend is one database flavour a test runs against.
type Backend struct {
	Name string
	Open func(t testing.TB) *qsql.DB
}

// Backends lists SQLite and, when QIFLOW_TEST_MYSQL_DSN is set, MySQL.
func Backends() []Backend {
	out := []Backend{{Name: "sqlite", Open: OpenSQLite}}
	if os.Getenv("QIFLOW_TEST_MYSQL_DSN") != "" {
		out = append(out, Backend{Name: "mysql", Open: OpenMySQL})
	}
	return out
}

// Each runs fn once per backend as a subtest.
func Each(t *testing.T, fn func(t *testing.T, db *qsql.DB)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.Open(t)) })
	}
}

// OpenSQLite returns a migrated SQLite database in the test's temp dir.
func OpenSQLite(t testing.TB) *qsql.DB {
	t.Helper()
	db, err := qsql.Open("sqlite", filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := qsql.Migrate(context.Background(), db, nil); err != nil {
		t.Fatal(err)
	}
	return db
}

// OpenMySQL creates a fresh database on the test server, migrates it and
// drops it after the test.
func OpenMySQL(t testing.TB) *qsql.DB { return OpenMySQLWith(t, nil) }

// OpenMySQLWith is OpenMySQL with session variables set on every
// connection ("auto_increment_increment": "2", as Galera sets it).
func OpenMySQLWith(t testing.TB, vars map[string]string) *qsql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range vars {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params[k] = v
	}
	db, err := qsql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := qsql.Migrate(context.Background(), db, nil); err != nil {
		t.Fatal(err)
	}
	return db
}

// MySQLDSN creates an empty database on the test server and returns its DSN;
// the database is dropped when the test ends.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("QIFLOW_TEST_MYSQL_DSN")
	if base == "" {
		t.Fatal("QIFLOW_TEST_MYSQL_DSN is not set")
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("QIFLOW_TEST_MYSQL_DSN: %v", err)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "qiflow_t_" + hex.EncodeToString(b)
	admin, err := qsql.Open("mysql", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// Reopen opens a second handle on db's database, as another instance of
// Qiflow would; it is closed when the test ends.
func Reopen(t testing.TB, db *qsql.DB) *qsql.DB {
	t.Helper()
	dsn := db.Path
	if db.Dialect != qsql.SQLite {
		var name string
		if err := db.Get(&name, "SELECT DATABASE()"); err != nil {
			t.Fatal(err)
		}
		cfg, err := mysql.ParseDSN(os.Getenv("QIFLOW_TEST_MYSQL_DSN"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DBName = name
		dsn = cfg.FormatDSN()
	}
	other, err := qsql.Open(string(db.Dialect), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}
