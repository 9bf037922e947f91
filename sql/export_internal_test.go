package sql

import "context"

// MigrateTo moves the schema up or down to version, for tests of what a
// migration does to rows stored before it.
func MigrateTo(ctx context.Context, db *DB, version int64) error {
	p, err := provider(db)
	if err != nil {
		return err
	}
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	if version < current {
		_, err = p.DownTo(ctx, version)
	} else {
		_, err = p.UpTo(ctx, version)
	}
	return err
}
