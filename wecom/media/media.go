// Package media keeps the files Qiflow sends through WeCom (images, videos,
// files for welcome messages) in the database, shared by every instance, and
// gives each a WeCom media id on demand. WeCom's temporary media lives 3 days;
// a file whose upload is older than MaxAge is uploaded again. It owns the
// media_files table.
package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// MaxAge is how old an upload may be before it is redone: under WeCom's 3 days,
// with room for a message that takes a while to go out.
const MaxAge = 60 * time.Hour

// Limits per kind, as WeCom sets them for media/upload.
var limits = map[string]int64{"image": 10 << 20, "video": 10 << 20, "file": 20 << 20}

var (
	ErrNotFound = apperr.NotFound("media file not found")
	// ErrInvalid is a file WeCom would refuse (kind, size).
	ErrInvalid = errors.New("invalid media file")
)

// File is a stored file (without its bytes).
type File struct {
	ID          int64  `db:"id" json:"id"`
	CorpID      string `db:"corp_id" json:"corp_id"`
	Kind        string `db:"kind" json:"kind"`
	Filename    string `db:"filename" json:"filename"`
	ContentType string `db:"content_type" json:"content_type"`
	Size        int64  `db:"size" json:"size"`
	SHA256      string `db:"sha256" json:"sha256"`
	CreatedAt   int64  `db:"created_at" json:"created_at"`
}

// Store keeps files and their WeCom uploads.
type Store struct {
	db  *qsql.DB
	wc  wecom.Client
	now func() time.Time
}

func New(db *qsql.DB, wc wecom.Client) *Store { return &Store{db: db, wc: wc, now: time.Now} }

// SetClock replaces the clock (tests of the re-upload).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Save stores a file of a kind (image, video, file).
func (s *Store) Save(ctx context.Context, corp, kind, filename, contentType string, data []byte, by int64) (File, error) {
	limit, ok := limits[kind]
	switch {
	case !ok:
		return File{}, fmt.Errorf("%w: kind must be image, video or file", ErrInvalid)
	case len(data) < 5:
		return File{}, fmt.Errorf("%w: file is empty", ErrInvalid)
	case int64(len(data)) > limit:
		return File{}, fmt.Errorf("%w: a %s is at most %d MB", ErrInvalid, kind, limit>>20)
	case filename == "":
		return File{}, fmt.Errorf("%w: filename is required", ErrInvalid)
	}
	sum := sha256.Sum256(data)
	f := File{CorpID: corp, Kind: kind, Filename: filename, ContentType: contentType, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), CreatedAt: qsql.Millis(s.now())}
	res, err := s.db.ExecContext(ctx, `INSERT INTO media_files (corp_id, kind, filename, content_type, size, sha256, data, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		corp, kind, filename, contentType, f.Size, f.SHA256, data, by, f.CreatedAt)
	if err != nil {
		return File{}, err
	}
	f.ID, err = res.LastInsertId()
	return f, err
}

// Get returns a file's metadata.
func (s *Store) Get(ctx context.Context, corp string, id int64) (File, error) {
	var f File
	err := s.db.GetContext(ctx, &f, `SELECT id, corp_id, kind, filename, content_type, size, sha256, created_at FROM media_files WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return f, ErrNotFound
	}
	return f, err
}

// MediaID returns a WeCom media id for the file, uploading it when it has
// none or its upload is older than MaxAge (RefreshDue normally re-uploads
// files in use before that, so a welcome rarely waits on an upload). Two
// instances uploading at once both succeed; the later id wins, and both ids
// are valid.
func (s *Store) MediaID(ctx context.Context, corp string, id int64) (string, error) {
	var row struct {
		Kind       string `db:"kind"`
		Filename   string `db:"filename"`
		MediaID    string `db:"media_id"`
		UploadedAt *int64 `db:"uploaded_at"`
		UsedAt     *int64 `db:"used_at"`
	}
	err := s.db.GetContext(ctx, &row, `SELECT kind, filename, media_id, uploaded_at, used_at FROM media_files WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	now := s.now()
	if row.UsedAt == nil || now.Sub(qsql.FromMillis(*row.UsedAt)) > time.Hour {
		// Hourly is precise enough to know which files are in use.
		if _, err := s.db.ExecContext(ctx, `UPDATE media_files SET used_at = ? WHERE id = ?`, qsql.Millis(now), id); err != nil {
			return "", err
		}
	}
	if row.MediaID != "" && row.UploadedAt != nil && now.Sub(qsql.FromMillis(*row.UploadedAt)) < MaxAge {
		return row.MediaID, nil
	}
	return s.upload(ctx, corp, id, row.Kind, row.Filename)
}

// upload sends a file to WeCom and records its media id.
func (s *Store) upload(ctx context.Context, corp string, id int64, kind, filename string) (string, error) {
	var data []byte
	if err := s.db.GetContext(ctx, &data, `SELECT data FROM media_files WHERE id = ?`, id); err != nil {
		return "", err
	}
	mediaID, createdAt, err := s.wc.UploadMedia(ctx, corp, kind, filename, bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", filename, err)
	}
	if createdAt.IsZero() {
		createdAt = s.now()
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE media_files SET media_id = ?, uploaded_at = ? WHERE id = ?`, mediaID, qsql.Millis(createdAt), id); err != nil {
		return "", err
	}
	return mediaID, nil
}

// RefreshAge is when a file in use is re-uploaded ahead of WeCom's 3 days.
const RefreshAge = 48 * time.Hour

// inUse is how recently a file must have been sent to be kept fresh.
const inUse = 30 * 24 * time.Hour

// RefreshDue re-uploads the files sent in the last 30 days whose upload is
// older than RefreshAge, so sending them (a welcome has 20 s) never waits on
// an upload. Run by cron; it returns how many it refreshed.
func (s *Store) RefreshDue(ctx context.Context) (int, error) {
	now := s.now()
	var due []struct {
		ID       int64  `db:"id"`
		CorpID   string `db:"corp_id"`
		Kind     string `db:"kind"`
		Filename string `db:"filename"`
	}
	if err := s.db.SelectContext(ctx, &due, `SELECT id, corp_id, kind, filename FROM media_files
		WHERE media_id <> '' AND uploaded_at < ? AND used_at > ? ORDER BY uploaded_at LIMIT 500`,
		qsql.Millis(now.Add(-RefreshAge)), qsql.Millis(now.Add(-inUse))); err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, f := range due {
		if _, err := s.upload(ctx, f.CorpID, f.ID, f.Kind, f.Filename); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Exists says whether the corp has the file, of one of the kinds when given.
func (s *Store) Exists(ctx context.Context, corp string, id int64, kinds ...string) (bool, error) {
	f, err := s.Get(ctx, corp, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(kinds) == 0 {
		return true, nil
	}
	for _, k := range kinds {
		if f.Kind == k {
			return true, nil
		}
	}
	return false, nil
}

// Data returns a file's bytes.
func (s *Store) Data(ctx context.Context, corp string, id int64) ([]byte, error) {
	var data []byte
	err := s.db.GetContext(ctx, &data, `SELECT data FROM media_files WHERE corp_id = ? AND id = ?`, corp, id)
	if qsql.IsNoRows(err) {
		return nil, ErrNotFound
	}
	return data, err
}

// Content is a file and its bytes (the console previews welcome images).
func (s *Store) Content(ctx context.Context, corp string, id int64) (File, []byte, error) {
	f, err := s.Get(ctx, corp, id)
	if err != nil {
		return f, nil, err
	}
	var data []byte
	err = s.db.GetContext(ctx, &data, `SELECT data FROM media_files WHERE corp_id = ? AND id = ?`, corp, id)
	return f, data, err
}
