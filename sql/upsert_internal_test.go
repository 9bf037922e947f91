package sql

import "testing"

func TestSupportsRowAlias_ByServerVersion(t *testing.T) {
	for version, want := range map[string]bool{
		"8.0.18":                    false,
		"8.0.19":                    true,
		"8.0.36":                    true,
		"8.4.3":                     true,
		"9.1.0":                     true,
		"5.7.44-log":                false,
		"10.11.6-MariaDB-0+deb12u1": false,
		"11.4.2-MariaDB":            false,
		"8.0.11-TiDB-v7.5.1":        false,
		"":                          false,
	} {
		if got := supportsRowAlias(version); got != want {
			t.Errorf("supportsRowAlias(%q) = %v, want %v", version, got, want)
		}
	}
}

// A read-back that must see other transactions' commits takes a shared
// lock where the server has one, and TiDB's exclusive lock where it has not.
func TestForShare_ByServer(t *testing.T) {
	for version, want := range map[string]string{
		"10.11.6-MariaDB-0+deb12u1": " LOCK IN SHARE MODE",
		"8.0.36":                    " LOCK IN SHARE MODE",
		"8.0.11-TiDB-v7.5.1":        " FOR UPDATE",
	} {
		db := &DB{Dialect: MySQL, shareLock: shareLockOf(version)}
		if got := db.ForShare(); got != want {
			t.Errorf("ForShare on %q = %q, want %q", version, got, want)
		}
	}
	if got := (&DB{Dialect: SQLite}).ForShare(); got != "" {
		t.Errorf("ForShare on SQLite = %q", got)
	}
}

// MySQL 8 names the incoming row by an alias (VALUES(col) is deprecated
// there); MariaDB keeps VALUES(col); SQLite says excluded.
func TestUpsert_NamesTheIncomingRowPerServer(t *testing.T) {
	cols, key := []string{"k", "n"}, []string{"k"}
	for _, tc := range []struct {
		db   *DB
		want string
	}{
		{&DB{Dialect: MySQL, rowAlias: true}, "INSERT INTO t (k,n) VALUES (?,?),(?,?) AS incoming ON DUPLICATE KEY UPDATE n = incoming.n"},
		{&DB{Dialect: MySQL}, "INSERT INTO t (k,n) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE n = VALUES(n)"},
		{&DB{Dialect: SQLite}, "INSERT INTO t (k,n) VALUES (?,?),(?,?) ON CONFLICT(k) DO UPDATE SET n = excluded.n"},
	} {
		if got := tc.db.UpsertRows("t", cols, key, []string{"n"}, 2); got != tc.want {
			t.Errorf("%s alias=%v:\n got %s\nwant %s", tc.db.Dialect, tc.db.rowAlias, got, tc.want)
		}
	}
	if got, want := (&DB{Dialect: MySQL, rowAlias: true}).UpsertAdding("t", cols, key, []string{"n"}, 2),
		"INSERT INTO t (k,n) VALUES (?,?),(?,?) AS incoming ON DUPLICATE KEY UPDATE n = n + incoming.n"; got != want {
		t.Errorf("adding:\n got %s\nwant %s", got, want)
	}
}

func TestKeysIn_OneConditionPerServer(t *testing.T) {
	keys := [][]any{{"x", 1}, {"y", 2}}
	for _, tc := range []struct {
		db   *DB
		want string
	}{
		{&DB{Dialect: MySQL}, "(a, b) IN ((?,?),(?,?))"},
		{&DB{Dialect: SQLite}, "((a = ? AND b = ?) OR (a = ? AND b = ?))"},
	} {
		q, args := tc.db.KeysIn([]string{"a", "b"}, keys)
		if q != tc.want || len(args) != 4 || args[0] != "x" || args[3] != 2 {
			t.Errorf("%s: %s %v, want %s", tc.db.Dialect, q, args, tc.want)
		}
	}
}

// UpdateRows's derived table: MariaDB's rows after the first as a table
// value constructor, other MySQL servers' (MySQL 8, TiDB) as SELECTs.
func TestUpdateRows_OneStatementPerServer(t *testing.T) {
	for _, tc := range []struct {
		db   *DB
		want string
	}{
		{&DB{Dialect: MySQL, valuesList: true}, "UPDATE (SELECT ? AS k, ? AS c0 UNION ALL VALUES (?,?), (?,?)) v STRAIGHT_JOIN t t ON t.id = v.k SET t.a = v.c0"},
		{&DB{Dialect: MySQL}, "UPDATE (SELECT ? AS k, ? AS c0 UNION ALL SELECT ?, ? UNION ALL SELECT ?, ?) v STRAIGHT_JOIN t t ON t.id = v.k SET t.a = v.c0"},
		{&DB{Dialect: SQLite}, "UPDATE t SET a = v.column2 FROM (VALUES (?,?),(?,?),(?,?)) AS v WHERE t.id = v.column1"},
	} {
		if q := tc.db.UpdateRows("t", "id", []string{"a"}, 3); q != tc.want {
			t.Errorf("%s (values list %v): %s\nwant %s", tc.db.Dialect, tc.db.valuesList, q, tc.want)
		}
	}
}
