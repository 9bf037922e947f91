// Package sql holds Qiflow's migrations for MySQL/MariaDB and SQLite (embedded
// in the binary) and the small dialect helper: opening a database with the
// right settings, the few statements that differ, and write transactions.
package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// Dialect names the SQL flavour.
type Dialect string

const (
	MySQL  Dialect = "mysql"
	SQLite Dialect = "sqlite"
)

// DB is a sqlx handle that knows its dialect.
type DB struct {
	*sqlx.DB
	Dialect Dialect
	// Path is the SQLite file (empty for MySQL); the migration lock sits beside it.
	Path string
	// rowAlias: the server names an upsert's incoming row by an alias
	// (MySQL 8.0.19+, where VALUES(col) is deprecated); MariaDB and TiDB
	// keep VALUES(col).
	rowAlias bool
	// writer queues this process's writers to SQLite's one write lock (nil
	// on MySQL); see writerQueue.
	writer *writerQueue
	// consecutiveIDs: a multi-row insert that inserts every row gives them
	// consecutive ids in row order (SQLite, one writer; InnoDB with
	// innodb_autoinc_lock_mode 0 or 1, MariaDB's default, and an increment
	// of 1); see consecutiveIDs and InsertedIDs.
	consecutiveIDs bool
	// shareLock is the suffix of a locking read that shares the rows
	// (MySQL); see ForShare.
	shareLock string
	// valuesList: the server reads a table value constructor after a
	// SELECT in a UNION, "SELECT ? AS k, … UNION ALL VALUES (…), (…)"
	// (MariaDB 10.3 on); see UpdateRows.
	valuesList bool
}

// ExecContext runs a statement outside a transaction; on SQLite it waits
// its turn among the process's writers.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (dbsql.Result, error) {
	release, err := db.takeWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return db.DB.ExecContext(ctx, query, args...)
}

// Exec is ExecContext without a context (tests and seeders).
func (db *DB) Exec(query string, args ...any) (dbsql.Result, error) {
	return db.ExecContext(context.Background(), query, args...)
}

// Open connects and applies the connection settings Qiflow relies on.
// SQLite: WAL, a busy timeout, immediate write transactions, foreign keys off
// (integrity is kept by the services). MySQL: UTC, utf8mb4, strict mode.
func Open(driver, dsn string) (*DB, error) {
	return OpenWith(driver, dsn, 0)
}

// OpenWith is Open with a bound on MySQL connections (0: 32). Every instance
// opens up to this many: keep instances × maxConns under the server's
// max_connections (151 by default).
func OpenWith(driver, dsn string, maxConns int) (*DB, error) {
	switch Dialect(driver) {
	case SQLite:
		return openSQLite(dsn)
	case MySQL:
		if maxConns <= 0 {
			maxConns = 32
		}
		return openMySQL(dsn, maxConns)
	}
	return nil, fmt.Errorf("unknown database driver %q", driver)
}

func openSQLite(path string) (*DB, error) {
	path = strings.TrimPrefix(path, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(0)"
	db, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// SQLite has one writer at a time; a handful of connections lets reads run
	// beside it under WAL while writers queue on the busy timeout.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxLifetime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &DB{DB: db, Dialect: SQLite, Path: path, writer: &writerQueue{}, consecutiveIDs: true}, nil
}

func openMySQL(dsn string, maxConns int) (*DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse mysql dsn: %w", err)
	}
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Params["sql_mode"] = "'STRICT_TRANS_TABLES,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO'"
	cfg.Collation = "utf8mb4_bin"
	// Interpolate arguments client-side: one round trip per statement instead
	// of prepare, execute and close (safe with utf8mb4).
	cfg.InterpolateParams = true
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 30 * time.Second
		cfg.WriteTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := connectMySQL(ctx, cfg, maxConns)
	if err != nil {
		return nil, err
	}
	var version string
	if err := db.GetContext(ctx, &version, "SELECT VERSION()"); err != nil {
		db.Close()
		return nil, fmt.Errorf("read the mysql server version: %w", err)
	}
	if keepsInLists(ctx, db, version, cfg) { // the setting is the connections': connect again with it
		db.Close()
		if db, err = connectMySQL(ctx, cfg, maxConns); err != nil {
			return nil, err
		}
	}
	return &DB{DB: db, Dialect: MySQL, rowAlias: supportsRowAlias(version), consecutiveIDs: consecutiveIDs(ctx, db, version, cfg),
		shareLock: shareLockOf(version), valuesList: strings.Contains(version, "MariaDB")}, nil
}

// connectMySQL opens a pool of up to maxConns connections and checks that
// the server answers.
func connectMySQL(ctx context.Context, cfg *mysql.Config, maxConns int) (*sqlx.DB, error) {
	db, err := sqlx.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to mysql at %s: %w", cfg.Addr, err)
	}
	return db, nil
}

// keepsInLists turns off, for Qiflow's connections, MariaDB's rewriting of
// an IN list of 1,000 values or more into a join with a table of them
// (in_predicate_conversion_threshold, MariaDB 10.3.18 on): Qiflow reads
// pages of a few thousand keys with IN lists, and the rewritten query may
// scan the whole table instead of looking each key up (a rescore page read
// every person of the corp to find the few merged into its 2,000). It adds
// the setting to cfg and says whether it did; the caller reconnects.
func keepsInLists(ctx context.Context, db *sqlx.DB, version string, cfg *mysql.Config) bool {
	if !strings.Contains(version, "MariaDB") {
		return false
	}
	var threshold int64
	if err := db.GetContext(ctx, &threshold, "SELECT @@in_predicate_conversion_threshold"); err != nil || threshold == 0 {
		return false // an older MariaDB, or already off
	}
	cfg.Params["in_predicate_conversion_threshold"] = "0"
	return true
}

// consecutiveIDs says whether the server gives the rows of one multi-row
// insert consecutive ids: InnoDB's lock mode 0 or 1 (not 2, interleaved,
// MySQL 8's default), an increment of 1, no Galera (which sets the
// increment to the cluster's size, and may change it as nodes join), not
// TiDB (ids come from per-node ranges). A server that cannot say is not
// trusted. The increment is a setting a DBA may change while Qiflow runs;
// restart Qiflow after doing so.
func consecutiveIDs(ctx context.Context, db *sqlx.DB, version string, cfg *mysql.Config) bool {
	if strings.Contains(version, "TiDB") || cfg.ClientFoundRows {
		return false
	}
	var v struct {
		LockMode  int `db:"lock_mode"`
		Increment int `db:"increment"`
	}
	if err := db.GetContext(ctx, &v, "SELECT @@innodb_autoinc_lock_mode AS lock_mode, @@auto_increment_increment AS increment"); err != nil {
		return false
	}
	var wsrep []struct {
		Name  string `db:"Variable_name"`
		Value string `db:"Value"`
	}
	if err := db.SelectContext(ctx, &wsrep, "SHOW VARIABLES LIKE 'wsrep_on'"); err != nil {
		return false
	}
	for _, w := range wsrep {
		if strings.EqualFold(w.Value, "ON") {
			return false
		}
	}
	return v.LockMode <= 1 && v.Increment == 1
}

// ConsecutiveIDs says whether the rows of a multi-row insert that inserts
// every row get consecutive ids in row order, so that InsertedIDs can
// tell them; when not, a caller with no other key to read rows back by
// inserts them one at a time.
func (db *DB) ConsecutiveIDs() bool { return db.consecutiveIDs }

// InsertedIDs is the id of the first of the n rows a multi-row insert
// proposed, when it inserted all n and they have consecutive ids in row
// order (ok false otherwise: read them back by key). An insert that may
// skip rows (InsertIgnoreRows) saves its caller the read-back whenever it
// skipped none, which is nearly always. Not for upserts that update
// existing rows: MySQL counts an updated row twice.
func (db *DB) InsertedIDs(res dbsql.Result, n int) (first int64, ok bool) {
	if !db.consecutiveIDs || n < 1 {
		return 0, false
	}
	if affected, err := res.RowsAffected(); err != nil || affected != int64(n) {
		return 0, false
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, false
	}
	if db.Dialect == SQLite { // the last row's id; MySQL gives the first's
		return id - int64(n) + 1, true
	}
	return id, true
}

// supportsRowAlias says whether a server of this VERSION() takes
// "INSERT … AS alias ON DUPLICATE KEY UPDATE c = alias.c": MySQL from
// 8.0.19 on. MariaDB ("10.11.6-MariaDB-…") and TiDB ("8.0.11-TiDB-v7.5.0")
// don't, and keep VALUES(c).
func supportsRowAlias(version string) bool {
	if strings.Contains(version, "MariaDB") || strings.Contains(version, "TiDB") {
		return false
	}
	var major, minor, patch int
	if n, _ := fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &patch); n < 2 {
		return false
	}
	return major > 8 || major == 8 && (minor > 0 || patch >= 19)
}

// incomingAlias names the incoming row where the server takes an alias.
const incomingAlias = "incoming"

// Incoming names column c of the row an upsert proposes, for its update
// expressions: excluded.c (SQLite), incoming.c (MySQL 8), VALUES(c)
// (MariaDB, TiDB). A bare column name is the stored row's value.
func (db *DB) Incoming(c string) string {
	switch {
	case db.Dialect == SQLite:
		return "excluded." + c
	case db.rowAlias:
		return incomingAlias + "." + c
	}
	return "VALUES(" + c + ")"
}

// UpsertSet returns an insert of n rows that, where the key exists, runs
// the given assignments instead ("col = expr", using Incoming for the new
// values). MySQL applies assignments in order, each seeing the ones before:
// list a column after those whose expressions read its stored value.
func (db *DB) UpsertSet(table string, cols, key []string, n int, sets ...string) string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = valuesRow(len(cols))
	}
	q := insertPrefix(table, cols) + strings.Join(rows, ",")
	if db.Dialect == SQLite {
		if len(sets) == 0 {
			return q + " ON CONFLICT(" + strings.Join(key, ",") + ") DO NOTHING"
		}
		return q + " ON CONFLICT(" + strings.Join(key, ",") + ") DO UPDATE SET " + strings.Join(sets, ", ")
	}
	if db.rowAlias {
		q += " AS " + incomingAlias
	}
	if len(sets) == 0 {
		// A no-op update of the key column keeps the existing row as it is.
		return q + " ON DUPLICATE KEY UPDATE " + key[0] + "=" + key[0]
	}
	return q + " ON DUPLICATE KEY UPDATE " + strings.Join(sets, ", ")
}

// UpdateRows returns one statement that sets cols of n rows of table, each
// row found by its key column, with arguments key, cols… per row: on
// MySQL/MariaDB a join from a derived table of the rows, on SQLite UPDATE …
// FROM VALUES. For rows that each get their own values: a CASE over the key
// would be evaluated row by row, quadratic in n.
//
// The derived table is a first SELECT naming the columns and the other rows
// as a table value constructor on MariaDB, elsewhere as more SELECTs after
// UNION ALL. The constructor is less for the server to parse and set up
// (1,000-row updates of a 200,000-row table, 100 times through the mysql
// client: 1.41–1.48 s against 1.63–1.93 s); where every row's indexed
// columns change, the writes dominate and the two measured alike within
// the noise.
func (db *DB) UpdateRows(table, key string, cols []string, n int) string {
	if db.Dialect == SQLite {
		sets := make([]string, len(cols))
		for i, c := range cols {
			sets[i] = fmt.Sprintf("%s = v.column%d", c, i+2)
		}
		rows := make([]string, n)
		for i := range rows {
			rows[i] = valuesRow(len(cols) + 1)
		}
		return "UPDATE " + table + " SET " + strings.Join(sets, ", ") + " FROM (VALUES " + strings.Join(rows, ",") + ") AS v WHERE " +
			table + "." + key + " = v.column1"
	}
	first := make([]string, len(cols)+1)
	first[0] = "? AS k"
	sets := make([]string, len(cols))
	for i, c := range cols {
		first[i+1] = "? AS c" + strconv.Itoa(i)
		sets[i] = "t." + c + " = v.c" + strconv.Itoa(i)
	}
	var rows strings.Builder
	rows.WriteString("SELECT " + strings.Join(first, ", "))
	if n > 1 {
		other, sep := "SELECT "+strings.TrimSuffix(strings.Repeat("?, ", len(cols)+1), ", "), " UNION ALL "
		if db.valuesList {
			other, sep = valuesRow(len(cols)+1), ", "
			rows.WriteString(" UNION ALL VALUES ")
		} else {
			rows.WriteString(sep)
		}
		for i := 1; i < n; i++ {
			if i > 1 {
				rows.WriteString(sep)
			}
			rows.WriteString(other)
		}
	}
	// The rows drive the join (STRAIGHT_JOIN: whatever the optimizer
	// thinks of a small table), so only the rows named are read and locked,
	// never a scan of the table's others.
	return "UPDATE (" + rows.String() + ") v STRAIGHT_JOIN " + table + " t ON t." + key + " = v.k SET " + strings.Join(sets, ", ")
}

// IsDeadlock reports MySQL's 1213 (deadlock) and 1205 (lock wait timeout):
// the transaction was rolled back and may simply be run again.
func IsDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// Tx is a write transaction that can run functions after it commits (to
// wake a dispatcher once the rows it should see are visible, say).
type Tx struct {
	*sqlx.Tx
	afterCommit  []func()
	beforeCommit []func() error
	values       map[any]any
}

// AfterCommit runs fn once the transaction has committed; never on rollback.
func (tx *Tx) AfterCommit(fn func()) { tx.afterCommit = append(tx.afterCommit, fn) }

// BeforeCommit runs fn in the transaction once its work is done, just
// before it commits (in the order given); an error rolls it back. What a
// transaction gathers as it goes (events to publish, one per lead however
// many changes made them) is written this way.
func (tx *Tx) BeforeCommit(fn func() error) { tx.beforeCommit = append(tx.beforeCommit, fn) }

// Value is what SetValue stored under key in this transaction (nil: none).
func (tx *Tx) Value(key any) any { return tx.values[key] }

// SetValue stores v under key for the rest of this transaction; keys are
// unexported types of the package that uses them, as for context values.
func (tx *Tx) SetValue(key, v any) {
	if tx.values == nil {
		tx.values = map[any]any{}
	}
	tx.values[key] = v
}

// WriteTx runs fn in a transaction and commits it, or rolls back on error.
// On SQLite the transaction is BEGIN IMMEDIATE, so it holds the write lock
// from its first statement and never fails on a lock upgrade; it waits its
// turn among the process's writers first, and so must not write through db
// (rather than tx) inside fn.
func (db *DB) WriteTx(ctx context.Context, fn func(tx *Tx) error) error {
	tx, err := db.commitTx(ctx, fn)
	if err != nil {
		return err
	}
	// After the writer's turn ends: these may write themselves.
	for _, f := range tx.afterCommit {
		f()
	}
	return nil
}

// commitTx runs fn in a transaction, in this process's turn to write.
func (db *DB) commitTx(ctx context.Context, fn func(tx *Tx) error) (*Tx, error) {
	release, err := db.takeWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	stx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, err
	}
	tx := &Tx{Tx: stx}
	err = fn(tx)
	for i := 0; err == nil && i < len(tx.beforeCommit); i++ { // a hook may add hooks
		err = tx.beforeCommit[i]()
	}
	if err != nil {
		_ = stx.Rollback()
		return nil, err
	}
	return tx, stx.Commit()
}

// Upsert returns "INSERT INTO table (cols) VALUES (?,…) <on conflict update>",
// updating updateCols when the row with the same key exists. key names the
// unique key's columns (SQLite needs them; MySQL finds the key itself).
func (db *DB) Upsert(table string, cols, key, updateCols []string) string {
	return db.UpsertRows(table, cols, key, updateCols, 1)
}

// UpsertRows is Upsert for n rows in one statement.
func (db *DB) UpsertRows(table string, cols, key, updateCols []string, n int) string {
	sets := make([]string, len(updateCols))
	for i, c := range updateCols {
		sets[i] = c + " = " + db.Incoming(c)
	}
	return db.UpsertSet(table, cols, key, n, sets...)
}

// InsertIgnoreRows inserts n rows and skips those whose key already exists.
// It names the key instead of using MySQL's INSERT IGNORE, which would also
// swallow truncation and other errors.
func (db *DB) InsertIgnoreRows(table string, cols, key []string, n int) string {
	return db.UpsertSet(table, cols, key, n)
}

// Optimize refreshes SQLite's table statistics where they are missing or
// out of date (PRAGMA optimize: a table is analysed again when its size
// has changed tenfold, so this is cheap when nothing did). Without them
// SQLite guesses that an equality on any indexed column picks out a few
// rows, so "corp_id = ? AND id IN (…2,000 ids)" walked every row of the
// corp (an install has one) instead of looking the ids up, and a job's
// pages grew slower as the tables grew. Run at start and every few minutes; MySQL keeps its own
// statistics, and this does nothing there.
func (db *DB) Optimize(ctx context.Context) error {
	if db.Dialect != SQLite {
		return nil
	}
	// The analysis samples up to 100,000 rows an index: with SQLite's
	// suggested 1,000 the sample of a one-corp install saw one corp value
	// and still guessed a thousand rows for it. One statement string: the
	// limit is a setting of the connection that runs the analysis.
	_, err := db.ExecContext(ctx, "PRAGMA analysis_limit = 100000; PRAGMA optimize = 0x10002")
	return err
}

// SingleWriter says whether the database admits one writer at a time
// (SQLite): more concurrent writers would only queue.
func (db *DB) SingleWriter() bool { return db.Dialect == SQLite }

// ForceIndex makes the database read a table through the named index
// (after the table name or alias): a planner misled by small or skewed
// statistics can pick an index that turns a keyed lookup into a scan.
// SQLite's INDEXED BY is the same order; it fails the statement, rather
// than scanning, if the index cannot serve it.
func (db *DB) ForceIndex(name string) string {
	if db.Dialect == MySQL {
		return " FORCE INDEX (" + name + ")"
	}
	return " INDEXED BY " + name
}

// ForUpdateSkipLocked is the row-lock suffix of a claim query: on MySQL, rows
// other instances are claiming are skipped; SQLite's single writer needs none.
func (db *DB) ForUpdateSkipLocked() string {
	if db.Dialect == MySQL {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// ForShare is the suffix of a read that must see the latest committed rows
// rather than the transaction's snapshot, such as the read-back of a key an
// INSERT IGNORE found taken: under REPEATABLE READ a plain read after the
// transaction's first one misses a row another transaction committed since.
// A shared lock, so that two transactions reading back one row do not
// deadlock (FOR UPDATE would, both holding the insert's shared lock). None
// on SQLite: its one writer sees every commit.
func (db *DB) ForShare() string {
	if db.Dialect == MySQL {
		return db.shareLock
	}
	return ""
}

// shareLockOf is ForShare's suffix on a server of this VERSION(): LOCK IN
// SHARE MODE, as MariaDB and MySQL both read it; FOR UPDATE on TiDB, which
// has no shared locks and refuses LOCK IN SHARE MODE (error 1235) unless
// its no-op functions are enabled, and then takes no lock at all
// (pingcap/tidb#19383, #33244).
func shareLockOf(version string) string {
	if strings.Contains(version, "TiDB") {
		return " FOR UPDATE"
	}
	return " LOCK IN SHARE MODE"
}

// ForUpdate is the plain row-lock suffix (none on SQLite).
func (db *DB) ForUpdate() string {
	if db.Dialect == MySQL {
		return " FOR UPDATE"
	}
	return ""
}

func insertPrefix(table string, cols []string) string {
	return "INSERT INTO " + table + " (" + strings.Join(cols, ",") + ") VALUES "
}

func valuesRow(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
}

// KeysIn returns a condition that matches n keys of cols, with the
// arguments flattened from keys (each one value per column); both servers
// read it as n point lookups on an index over cols. "a IN (…) AND b IN (…)"
// would be a cross product that MariaDB may answer by scanning every row of
// the first column's values.
//
// On MySQL/MariaDB it is a row constructor, "(a, b) IN ((?, ?), …)": the
// server sorts the list once and finds each row's key in it by binary
// search, where "(a = ? AND b = ?) OR (…)" is re-evaluated branch by branch
// for every row read, quadratic in n (a lookup of 1,000 keys: 8 ms against
// 35 ms; of 200: 1.9 against 3.1 ms). MariaDB's rewrite of long IN lists
// into a join, which would scan the table instead, is off on Qiflow's
// connections (see keepsInLists).
//
// On SQLite, which reads a row value IN only through a subquery, it is the
// ORs, grouped by a hundred in parentheses: SQLite parses a chain of ORs
// into a tree as deep as the chain, and refuses one deeper than 1,000.
//
// No keys match no row ("1 = 0"): an empty list is no syntax error.
func (db *DB) KeysIn(cols []string, keys [][]any) (string, []any) {
	if len(keys) == 0 {
		return "1 = 0", nil
	}
	args := make([]any, 0, len(keys)*len(cols))
	for _, k := range keys {
		args = append(args, k...)
	}
	if db.Dialect != SQLite {
		one := valuesRow(len(cols))
		return "(" + strings.Join(cols, ", ") + ") IN (" + strings.TrimSuffix(strings.Repeat(one+",", len(keys)), ",") + ")", args
	}
	one := "(" + strings.Join(cols, " = ? AND ") + " = ?)"
	var groups []string
	for start := 0; start < len(keys); start += keysPerGroup {
		n := min(keysPerGroup, len(keys)-start)
		groups = append(groups, "("+strings.TrimSuffix(strings.Repeat(one+" OR ", n), " OR ")+")")
	}
	if len(groups) == 1 {
		return groups[0], args
	}
	return "(" + strings.Join(groups, " OR ") + ")", args
}

const keysPerGroup = 100

// IsDuplicate reports a unique-key violation (MySQL 1062, SQLite's UNIQUE
// constraint), which callers answer as a conflict.
func IsDuplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// IsNoRows reports sql.ErrNoRows.
func IsNoRows(err error) bool { return errors.Is(err, dbsql.ErrNoRows) }

// Millis is the storage form of a time: Unix milliseconds, UTC by definition.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// FromMillis is the inverse of Millis.
func FromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// JSON is a JSON document kept in a TEXT column. It scans from either
// driver's string or bytes and marshals as itself.
type JSON []byte

func (j *JSON) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*j = JSON(v)
	case []byte:
		*j = append(JSON(nil), v...)
	case nil:
		*j = nil
	default:
		return fmt.Errorf("cannot scan %T into JSON", src)
	}
	return nil
}

func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UpsertAdding returns an insert of n rows where each row whose key exists
// adds its values of addCols to the stored ones (counters). Callers pass
// the rows in key order, so concurrent writers lock them in one order.
func (db *DB) UpsertAdding(table string, cols, key, addCols []string, n int) string {
	sets := make([]string, len(addCols))
	for i, c := range addCols {
		sets[i] = c + " = " + c + " + " + db.Incoming(c)
	}
	return db.UpsertSet(table, cols, key, n, sets...)
}

// UpsertRowsIfExpired inserts n rows; a row whose key exists is replaced
// (updateCols) only when its expiryCol is at most the time given as the
// repeats trailing arguments (pass "now" that many times). Leases and locks
// are taken over this way: one statement, no read-then-write race.
// updateCols must list expiryCol last, since MySQL applies assignments in
// order and later ones see earlier ones.
func (db *DB) UpsertRowsIfExpired(table string, cols, key, updateCols []string, n int, expiryCol string) (q string, repeats int) {
	sets := make([]string, len(updateCols))
	if db.Dialect == MySQL {
		for i, c := range updateCols {
			sets[i] = c + " = IF(" + expiryCol + " <= ?, " + db.Incoming(c) + ", " + c + ")"
		}
		return db.UpsertSet(table, cols, key, n, sets...), len(updateCols)
	}
	for i, c := range updateCols {
		sets[i] = c + " = " + db.Incoming(c)
	}
	return db.UpsertSet(table, cols, key, n, sets...) + " WHERE " + table + "." + expiryCol + " <= ?", 1
}
