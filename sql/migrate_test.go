package sql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

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
		if _, err := db.Exec(`INSERT INTO ur (id, a, b, c) VALUES (1, 0, 0, 'x'), (2, 0, 0, 'x'), (3, 0, 0, 'x'), (4, 0, 0, 'x'), (5, 0, 0, 'x')`); err != nil {
			t.Fatal(err)
		}
		// One row; two; three (the rows after the first, joined).
		for _, set := range [][]any{{2, 20, 200, "two"}, {1, 10, nil, "one", 3, 30, 300, "three"}, {5, 50, 500, "five", 4, 40, nil, "four", 1, 11, 110, "again"}} {
			if _, err := db.Exec(db.UpdateRows("ur", "id", []string{"a", "b", "c"}, len(set)/4), set...); err != nil {
				t.Fatal(err)
			}
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
		var got []string
		for _, r := range rows {
			b := "NULL"
			if r.B != nil {
				b = fmt.Sprint(*r.B)
			}
			got = append(got, fmt.Sprintf("%d:%d,%s,%s", r.ID, r.A, b, r.C))
		}
		if want := []string{"1:11,110,again", "2:20,200,two", "3:30,300,three", "4:40,NULL,four", "5:50,500,five"}; !slices.Equal(got, want) {
			t.Fatalf("rows %v, want %v", got, want)
		}
	})
}

// A batch's lookup by composite keys finds exactly the rows of its keys
// (not those of one key's corp with another's subject), more than a
// hundred of them (SQLite's ORs are grouped), through the key's index; no
// keys find no row.
func TestKeysIn_FindsExactlyTheKeyedRowsThroughTheIndex(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		corps := []string{"wwA", "wwB", "wwC"}
		sqltest.InsertRows(t, db, "bus_subject_locks", []string{"corp_id", "subscriber", "subject", "delivery_id", "token", "expires_at"}, 3000, func(i int) []any {
			return []any{corps[i%3], "contacts", fmt.Sprint("ext:", i), i, "t", 1}
		})
		var keys [][]any
		want := map[int64]bool{}
		for i := 0; i < 3000; i += 2 { // every other row: 1,500 keys
			keys = append(keys, []any{corps[i%3], "contacts", fmt.Sprint("ext:", i)})
			want[int64(i)] = true
		}
		// Keys of no row: a corp with a subject only another corp has (a
		// cross product of the columns' values would find it), and a
		// subject nobody has.
		keys = append(keys, []any{"wwA", "contacts", "ext:1"}, []any{"wwB", "contacts", "ext:none"})
		cond, args := db.KeysIn([]string{"corp_id", "subscriber", "subject"}, keys)
		var got []int64
		if err := db.Select(&got, `SELECT delivery_id FROM bus_subject_locks WHERE `+cond, args...); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("found %d rows, want %d", len(got), len(want))
		}
		for _, id := range got {
			if !want[id] {
				t.Errorf("found row %d, whose key was not asked for", id)
			}
		}
		none, noArgs := db.KeysIn([]string{"corp_id", "subscriber", "subject"}, nil)
		var n int
		if err := db.Get(&n, `SELECT COUNT(*) FROM bus_subject_locks WHERE `+none, noArgs...); err != nil || n != 0 {
			t.Errorf("no keys: %d rows, %v", n, err)
		}
		plan := sqltest.Plan(t, db, `SELECT delivery_id FROM bus_subject_locks WHERE `+cond, args...)
		if plan != "bus_subject_locks:PRIMARY:range" && !strings.HasPrefix(plan, "MULTI-INDEX OR; INDEX 1; SEARCH bus_subject_locks USING INDEX sqlite_autoindex_bus_subject_locks_1 (corp_id=? AND subscriber=? AND subject=?)") {
			t.Errorf("plan %q, want lookups through the primary key", plan)
		}
	})
}

// A multi-row insert that inserted every row tells their ids (consecutive,
// in row order) without reading them back; one that skipped a row does not.
func TestInsertedIDs_AreTheRowsIdsOnlyWhenEveryRowWasInserted(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		cols := []string{"corp_id", "source", "dedup_key", "event", "change_type", "type", "subject", "payload", "event_time", "received_at"}
		insert := func(keys ...string) (int64, bool) {
			t.Helper()
			var args []any
			for _, k := range keys {
				args = append(args, "ww1", "test", k, "e", "", "e", "", "{}", 1, 1)
			}
			res, err := db.Exec(db.InsertIgnoreRows("bus_events", cols, []string{"dedup_key", "corp_id"}, len(keys)), args...)
			if err != nil {
				t.Fatal(err)
			}
			return db.InsertedIDs(res, len(keys))
		}
		idOf := func(key string) int64 {
			t.Helper()
			var id int64
			if err := db.Get(&id, "SELECT id FROM bus_events WHERE dedup_key = ?", key); err != nil {
				t.Fatal(err)
			}
			return id
		}
		insert("k0") // ids do not start at 1
		first, ok := insert("k1", "k2", "k3")
		consecutive := db.Dialect == qsql.SQLite
		if db.Dialect == qsql.MySQL {
			var mode, increment int // MariaDB's defaults: 1 and 1 (no Galera here)
			consecutive = db.QueryRow("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment").Scan(&mode, &increment) == nil && mode <= 1 && increment == 1
		}
		if consecutive && !ok {
			t.Fatal("the ids of a fully inserted batch were not told")
		}
		if ok {
			for i, k := range []string{"k1", "k2", "k3"} {
				if got := idOf(k); got != first+int64(i) {
					t.Fatalf("%s has id %d, InsertedIDs said %d", k, got, first+int64(i))
				}
			}
		}
		if _, ok := insert("k4", "k2", "k5"); ok {
			t.Fatal("ids told for an insert that skipped a row")
		}
	})
}

// A server that steps ids by more than one (auto_increment_increment, as
// Galera sets it to the cluster's size) does not have its ids told: they
// are not consecutive.
func TestInsertedIDs_NotToldWhereIdsStepByMoreThanOne(t *testing.T) {
	if os.Getenv("QIFLOW_TEST_MYSQL_DSN") == "" {
		t.Skip("needs MySQL/MariaDB (QIFLOW_TEST_MYSQL_DSN): the increment is an InnoDB setting")
	}
	db := sqltest.OpenMySQLWith(t, map[string]string{"auto_increment_increment": "2"}) // set on each connection
	cols := []string{"corp_id", "source", "dedup_key", "event", "change_type", "type", "subject", "payload", "event_time", "received_at"}
	res, err := db.Exec(db.InsertIgnoreRows("bus_events", cols, []string{"dedup_key", "corp_id"}, 2),
		"ww1", "test", "a", "e", "", "e", "", "{}", 1, 1, "ww1", "test", "b", "e", "", "e", "", "{}", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	if err := db.Select(&ids, "SELECT id FROM bus_events ORDER BY id"); err != nil || len(ids) != 2 || ids[1]-ids[0] != 2 {
		t.Fatalf("ids %v (%v): the server did not step by 2", ids, err)
	}
	if _, ok := db.InsertedIDs(res, 2); ok {
		t.Fatal("ids told on a server that steps them by 2")
	}
}

// MariaDB rewrites an IN list of 1,000 values or more into a join with a
// table of them, which may scan a whole table where the list's keys would
// have been looked up; Qiflow's connections turn that off, every one of them.
func TestOpen_MariaDBLooksUpTheKeysOfLongInLists(t *testing.T) {
	if os.Getenv("QIFLOW_TEST_MYSQL_DSN") == "" {
		t.Skip("needs MariaDB (QIFLOW_TEST_MYSQL_DSN): the rewrite is MariaDB's")
	}
	db := sqltest.OpenMySQL(t)
	var version string
	if err := db.Get(&version, "SELECT VERSION()"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(version, "MariaDB") {
		t.Skipf("%s is not MariaDB: MySQL keeps IN lists as they are", version)
	}
	ctx := context.Background()
	for i, c := range heldConns(t, db, 3) {
		var threshold int64
		if err := c.GetContext(ctx, &threshold, "SELECT @@in_predicate_conversion_threshold"); err != nil {
			t.Fatal(err)
		}
		if threshold != 0 {
			t.Errorf("connection %d: in_predicate_conversion_threshold %d, want 0 (off)", i, threshold)
		}
	}
}

// SQLite plans by guesses until it has statistics: with them, a page of
// ids of a corp with many rows is looked up by id, not found by walking
// every row of the corp.
func TestOptimize_SQLiteLooksUpAPageOfIdsInABigCorp(t *testing.T) {
	db := sqltest.OpenSQLite(t)
	ctx := context.Background()
	if err := db.Optimize(ctx); err != nil { // on empty tables: nothing to learn
		t.Fatal(err)
	}
	sqltest.InsertRows(t, db, "people", []string{"corp_id", "name", "created_at", "updated_at"}, 50_000, func(i int) []any {
		return []any{"ww1", fmt.Sprint("P", i), 1, 1}
	})
	ids := make([]int64, 2000)
	for i := range ids {
		ids[i] = int64(10 * (i + 1))
	}
	q, args, err := sqlx.In(`SELECT id, name FROM people WHERE corp_id = 'ww1' AND id IN (?)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before: %s", sqltest.Plan(t, db, q, args...))
	if err := db.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	// Every connection of the pool plans with the new statistics.
	for i, c := range heldConns(t, db, 4) {
		var plan []struct {
			ID      int    `db:"id"`
			Parent  int    `db:"parent"`
			NotUsed int    `db:"notused"`
			Detail  string `db:"detail"`
		}
		if err := c.SelectContext(ctx, &plan, "EXPLAIN QUERY PLAN "+q, args...); err != nil {
			t.Fatal(err)
		}
		if len(plan) != 1 || !strings.Contains(plan[0].Detail, "PRIMARY KEY") {
			t.Errorf("connection %d plans %+v, want a lookup by id", i, plan)
		}
	}
}

// heldConns takes n connections of db's pool at once (so they are n
// different ones, not one reused), given back when the test ends.
func heldConns(t *testing.T, db *qsql.DB, n int) []*sqlx.Conn {
	t.Helper()
	var conns []*sqlx.Conn
	for range n {
		c, err := db.Connx(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return conns
}

// Migration 00033 moves the record of who released a lead out of the
// history's index: a release made before it still keeps its former owner
// out for the cool-down, and only releases move.
func TestMigrate_ReleasesMadeBeforeKeepTheirCooldown(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		if err := qsql.MigrateTo(ctx, db, 32); err != nil {
			t.Fatal(err)
		}
		for _, h := range []struct {
			lead, actor, at int64
			kind            string
		}{{1, 7, 100, "released"}, {1, 7, 300, "released"}, {1, 8, 200, "released"}, {1, 9, 400, "claimed"}, {2, 7, 500, "released"}} {
			if _, err := db.Exec(db.Rebind(`INSERT INTO lead_history (corp_id, lead_id, at, actor_user_id, kind) VALUES ('ww1', ?, ?, ?, ?)`), h.lead, h.at, h.actor, h.kind); err != nil {
				t.Fatal(err)
			}
		}
		if err := qsql.MigrateTo(ctx, db, 33); err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := db.Select(&got, `SELECT CONCAT(corp_id, '/', lead_id, '/', user_id, '@', at) FROM lead_releases ORDER BY lead_id, user_id`); err != nil {
			t.Fatal(err)
		}
		if want := []string{"ww1/1/7@300", "ww1/1/8@200", "ww1/2/7@500"}; !slices.Equal(got, want) {
			t.Fatalf("releases after the migration: %v, want the last of each former owner %v", got, want)
		}
		// And back: the index returns, the table goes.
		if err := qsql.MigrateTo(ctx, db, 32); err != nil {
			t.Fatal(err)
		}
		if err := db.Get(new(int), `SELECT COUNT(*) FROM lead_releases`); err == nil {
			t.Fatal("lead_releases still there after migrating down")
		}
		if err := qsql.Migrate(ctx, db, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// Migration 00034 moves what each engagement rule has given a lead into
// the lead's row, and back down.
func TestMigrate_RulePointsMoveIntoTheLeadsRows(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		if err := qsql.MigrateTo(ctx, db, 33); err != nil {
			t.Fatal(err)
		}
		for lead := 1; lead <= 3; lead++ {
			if _, err := db.Exec(db.Rebind(`INSERT INTO leads (id, corp_id, person_id, pool_id, stage, source, created_at, updated_at) VALUES (?, 'ww1', ?, 1, 'lead', 'api', 1, 1)`), lead, lead); err != nil {
				t.Fatal(err)
			}
		}
		rows := [][4]int64{{1, 3, 4, 1}, {1, 5, 30, 2}, {2, 5, 15, 1}} // lead 3: nothing given
		for _, r := range rows {
			if _, err := db.Exec(db.Rebind(`INSERT INTO lead_rule_points (lead_id, rule_id, points, times) VALUES (?, ?, ?, ?)`), r[0], r[1], r[2], r[3]); err != nil {
				t.Fatal(err)
			}
		}
		if err := qsql.MigrateTo(ctx, db, 34); err != nil {
			t.Fatal(err)
		}
		var leads []struct {
			ID    int64   `db:"id"`
			Given *string `db:"rule_points"`
		}
		if err := db.Select(&leads, `SELECT id, rule_points FROM leads ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		var got [][4]int64
		for _, l := range leads {
			if l.Given == nil {
				continue
			}
			var rs [][3]int64
			if err := json.Unmarshal([]byte(*l.Given), &rs); err != nil {
				t.Fatalf("lead %d: rule points %q: %v", l.ID, *l.Given, err)
			}
			for _, r := range rs {
				got = append(got, [4]int64{l.ID, r[0], r[1], r[2]})
			}
		}
		slices.SortFunc(got, func(a, b [4]int64) int { return slices.Compare(a[:], b[:]) })
		if !slices.Equal(got, rows) || len(leads) != 3 || leads[2].Given != nil {
			t.Fatalf("rule points in the leads' rows %v (lead 3: %v), want %v", got, leads[2].Given, rows)
		}
		if err := qsql.MigrateTo(ctx, db, 33); err != nil {
			t.Fatal(err)
		}
		var back [][4]int64
		var table []struct{ Lead, Rule, Points, Times int64 }
		if err := db.Select(&table, `SELECT lead_id AS lead, rule_id AS rule, points, times FROM lead_rule_points ORDER BY lead_id, rule_id`); err != nil {
			t.Fatal(err)
		}
		for _, r := range table {
			back = append(back, [4]int64{r.Lead, r.Rule, r.Points, r.Times})
		}
		if !slices.Equal(back, rows) {
			t.Fatalf("rule points after migrating down %v, want %v", back, rows)
		}
		if err := qsql.Migrate(ctx, db, nil); err != nil {
			t.Fatal(err)
		}
	})
}
