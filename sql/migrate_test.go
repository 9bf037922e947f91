package sql_test

import (
	"context"
	"sync"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

func TestMigrate_ConcurrentStartsApplyOnce(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t) // already migrated once
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A second handle on the same database, as another instance would have.
					other := reopen(t, db)
					errs <- qsql.Migrate(ctx, other, nil)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("concurrent migrate: %v", err)
				}
			}
			cur, latest, err := qsql.Version(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if cur != latest || latest < 1 {
				t.Fatalf("version %d, latest %d", cur, latest)
			}
			var n int
			if err := db.Get(&n, "SELECT COUNT(*) FROM schema_migrations WHERE version_id = ?", latest); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("latest migration recorded %d times", n)
			}
		})
	}
}

func TestUpsert_UpdatesNamedColumnsOnly(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		q := db.Upsert("corps", []string{"id", "name", "time_zone", "created_at", "updated_at"}, []string{"id"}, []string{"name", "updated_at"})
		if _, err := db.Exec(q, "wwA", "one", "Asia/Shanghai", 1, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(q, "wwA", "two", "UTC", 2, 2); err != nil {
			t.Fatal(err)
		}
		// WeCom ids are case-sensitive: wwa is another corp.
		if _, err := db.Exec(q, "wwa", "lower", "UTC", 3, 3); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Name     string `db:"name"`
			TimeZone string `db:"time_zone"`
			Created  int64  `db:"created_at"`
		}
		if err := db.Get(&got, "SELECT name, time_zone, created_at FROM corps WHERE id = ?", "wwA"); err != nil {
			t.Fatal(err)
		}
		if got.Name != "two" || got.TimeZone != "Asia/Shanghai" || got.Created != 1 {
			t.Fatalf("upsert changed the wrong columns: %+v", got)
		}
		var n int
		db.Get(&n, "SELECT COUNT(*) FROM corps")
		if n != 2 {
			t.Fatalf("ids not compared case-sensitively: %d rows", n)
		}
	})
}

func TestUpdateRows_SetsEachRowItsOwnValues(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		if _, err := db.Exec(`CREATE TABLE ur (id BIGINT NOT NULL PRIMARY KEY, a BIGINT NOT NULL, b BIGINT NULL, c VARCHAR(8) NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO ur (id, a, b, c) VALUES (1, 0, 0, 'x'), (2, 0, 0, 'x'), (3, 0, 0, 'x')`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(db.UpdateRows("ur", "id", []string{"a", "b", "c"}, 2), 1, 10, nil, "one", 3, 30, 300, "three"); err != nil {
			t.Fatal(err)
		}
		var rows []struct {
			ID int64  `db:"id"`
			A  int64  `db:"a"`
			B  *int64 `db:"b"`
			C  string `db:"c"`
		}
		if err := db.Select(&rows, `SELECT id, a, b, c FROM ur ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		if rows[0].A != 10 || rows[0].B != nil || rows[0].C != "one" || rows[1].A != 0 || rows[2].A != 30 || *rows[2].B != 300 || rows[2].C != "three" {
			t.Fatalf("rows %+v", rows)
		}
	})
}
