package sql_test

import (
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// reopen opens a second handle on db's database, as another instance would.
func reopen(t *testing.T, db *qsql.DB) *qsql.DB { return sqltest.Reopen(t, db) }
