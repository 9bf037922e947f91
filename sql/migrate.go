package sql

import (
	"context"
	dbsql "database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/gofrs/flock"
	"github.com/pressly/goose/v3"
)

//go:embed mysql/*.sql sqlite/*.sql
var migrations embed.FS

// Migrate brings the schema up to date. Several instances starting together
// serialize on a lock (GET_LOCK on MySQL, a file lock beside the SQLite file),
// so each migration runs once.
func Migrate(ctx context.Context, db *DB, log *slog.Logger) error {
	p, err := provider(db)
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		if log != nil {
			log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration_ms", r.Duration.Milliseconds())
		}
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Version returns the applied schema version and the latest one the binary knows.
func Version(ctx context.Context, db *DB) (current, latest int64, err error) {
	p, err := provider(db)
	if err != nil {
		return 0, 0, err
	}
	if current, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, err
	}
	sources := p.ListSources()
	if len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	return current, latest, nil
}

func provider(db *DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, string(db.Dialect))
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectMySQL
	var locker interface {
		SessionLock(ctx context.Context, conn *dbsql.Conn) error
		SessionUnlock(ctx context.Context, conn *dbsql.Conn) error
	} = mysqlLock{}
	if db.Dialect == SQLite {
		dialect = goose.DialectSQLite3
		locker = &fileLock{path: db.Path + ".migrate.lock"}
	}
	return goose.NewProvider(dialect, db.DB.DB, sub,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName("schema_migrations"))
}

// mysqlLock holds a named lock on the migration's own connection.
type mysqlLock struct{}

func (mysqlLock) SessionLock(ctx context.Context, conn *dbsql.Conn) error {
	var got dbsql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('qiflow_migrate', 300)").Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return fmt.Errorf("another instance holds the migration lock")
	}
	return nil
}

func (mysqlLock) SessionUnlock(ctx context.Context, conn *dbsql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT RELEASE_LOCK('qiflow_migrate')")
	return err
}

// fileLock is an exclusive lock on a file beside the SQLite database
// (flock, or LockFileEx on Windows, through gofrs/flock); other processes
// opening the same database wait for it.
type fileLock struct {
	path string
	lock *flock.Flock
}

func (l *fileLock) SessionLock(ctx context.Context, _ *dbsql.Conn) error {
	fl := flock.New(l.path, flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("lock %s: %w", l.path, ctx.Err())
	}
	l.lock = fl
	return nil
}

func (l *fileLock) SessionUnlock(ctx context.Context, _ *dbsql.Conn) error {
	if l.lock == nil {
		return nil
	}
	defer func() { l.lock = nil }()
	return l.lock.Unlock()
}
