package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// Job statuses.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// ErrCancelled is returned by Job.Checkpoint once someone cancelled the job.
var ErrCancelled = errors.New("job cancelled")

// ErrJobNotFound is returned for an unknown job id.
var ErrJobNotFound = errors.New("job not found")

// JobRow is a background job as stored and shown by the API.
type JobRow struct {
	ID            int64     `db:"id" json:"id"`
	CorpID        string    `db:"corp_id" json:"corp_id"`
	Kind          string    `db:"kind" json:"kind"`
	Status        string    `db:"status" json:"status"`
	Params        qsql.JSON `db:"params" json:"params"`
	Checkpoint    qsql.JSON `db:"checkpoint" json:"-"`
	ProgressDone  int64     `db:"progress_done" json:"progress_done"`
	ProgressTotal int64     `db:"progress_total" json:"progress_total"`
	Result        qsql.JSON `db:"result" json:"result"`
	Error         *string   `db:"error" json:"error,omitempty"`
	Attempts      int       `db:"attempts" json:"attempts"`
	MaxAttempts   int       `db:"max_attempts" json:"max_attempts"`
	CancelReq     bool      `db:"cancel_requested" json:"cancel_requested"`
	CreatedBy     int64     `db:"created_by" json:"created_by"`
	CreatedAt     int64     `db:"created_at" json:"created_at"`
	UpdatedAt     int64     `db:"updated_at" json:"updated_at"`
	StartedAt     *int64    `db:"started_at" json:"started_at,omitempty"`
	FinishedAt    *int64    `db:"finished_at" json:"finished_at,omitempty"`
}

const jobCols = `id, corp_id, kind, status, params, checkpoint, progress_done, progress_total, result, error, attempts, max_attempts, cancel_requested, created_by, created_at, updated_at, started_at, finished_at`

// Job is a running job as its handler sees it.
type Job struct {
	JobRow
	r     *Runner
	owner string
}

// Checkpoint saves where the job is (cp is JSON-encoded) and its progress,
// and renews the lease. A handler calls it after each unit of work; after a
// crash the job resumes from the last checkpoint on any instance. It returns
// ErrCancelled once the job was cancelled.
func (j *Job) Checkpoint(ctx context.Context, cp any, done, total int64) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	now := j.r.now()
	res, err := j.r.db.ExecContext(ctx, `UPDATE jobs SET checkpoint = ?, progress_done = ?, progress_total = ?, available_at = ?, updated_at = ?
		WHERE id = ? AND lease_owner = ? AND status = ?`,
		string(b), done, total, qsql.Millis(now.Add(j.r.lease)), qsql.Millis(now), j.ID, j.owner, JobRunning)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("job %d: lease lost", j.ID)
	}
	j.JobRow.Checkpoint, j.ProgressDone, j.ProgressTotal = b, done, total
	var cancel bool
	if err := j.r.db.GetContext(ctx, &cancel, `SELECT cancel_requested FROM jobs WHERE id = ?`, j.ID); err == nil && cancel {
		return ErrCancelled
	}
	return nil
}

// LoadCheckpoint decodes the last saved checkpoint into cp; it reports false when there is none.
func (j *Job) LoadCheckpoint(cp any) (bool, error) {
	if len(j.JobRow.Checkpoint) == 0 || string(j.JobRow.Checkpoint) == "{}" || string(j.JobRow.Checkpoint) == "null" {
		return false, nil
	}
	return true, json.Unmarshal(j.JobRow.Checkpoint, cp)
}

// JobFunc runs a job; it returns the job's result.
type JobFunc func(ctx context.Context, j *Job) (result any, err error)

// Runner runs background jobs stored as rows: claimed with a lease (renewed
// by Checkpoint and a heartbeat), retried with backoff, resumed after a crash
// by whichever instance claims them next.
type Runner struct {
	db    *qsql.DB
	log   *slog.Logger
	owner string
	lease time.Duration
	now   func() time.Time
	poll  time.Duration

	mu    sync.RWMutex
	kinds map[string]JobFunc

	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	// frozen stops lease renewal, as a process that died would (tests).
	frozen atomic.Bool
}

// NewRunner returns a runner; Register kinds, then Start.
func NewRunner(db *qsql.DB, owner string, lease time.Duration, log *slog.Logger) *Runner {
	return &Runner{db: db, log: log, owner: owner, lease: lease, now: time.Now, poll: time.Second,
		kinds: map[string]JobFunc{}, wake: make(chan struct{}, 1)}
}

// Register adds a job kind.
func (r *Runner) Register(kind string, fn JobFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kinds[kind] = fn
}

func (r *Runner) kind(k string) (JobFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.kinds[k]
	return fn, ok
}

// Enqueue adds a job. With a uniqueKey, while a job with that key is queued or
// running, the existing job's id is returned instead of a second job.
func (r *Runner) Enqueue(ctx context.Context, corpID, kind, uniqueKey string, params any, createdBy int64) (int64, error) {
	p, err := json.Marshal(params)
	if err != nil {
		return 0, err
	}
	now := qsql.Millis(r.now())
	var key any
	if uniqueKey != "" {
		key = uniqueKey
	}
	cols := []string{"corp_id", "kind", "unique_key", "status", "params", "checkpoint", "result", "available_at", "created_by", "created_at", "updated_at"}
	var id int64
	err = r.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, r.db.InsertIgnoreRows("jobs", cols, []string{"unique_key"}, 1),
			corpID, kind, key, JobQueued, string(p), "{}", "null", now, createdBy, now, now)
		if err != nil {
			return err
		}
		if uniqueKey == "" {
			id, err = res.LastInsertId()
			return err
		}
		return tx.GetContext(ctx, &id, `SELECT id FROM jobs WHERE unique_key = ?`, uniqueKey)
	})
	if err == nil {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	return id, err
}

// Get returns a job of the corp.
func (r *Runner) Get(ctx context.Context, corpID string, id int64) (JobRow, error) {
	var j JobRow
	err := r.db.GetContext(ctx, &j, `SELECT `+jobCols+` FROM jobs WHERE id = ? AND corp_id = ?`, id, corpID)
	if qsql.IsNoRows(err) {
		return j, ErrJobNotFound
	}
	return j, err
}

// List returns the corp's jobs, newest first, before cursor (an id; 0 = newest).
func (r *Runner) List(ctx context.Context, corpID string, before int64, limit int) ([]JobRow, error) {
	if before <= 0 {
		before = 1 << 62
	}
	var out []JobRow
	err := r.db.SelectContext(ctx, &out, `SELECT `+jobCols+` FROM jobs WHERE corp_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, corpID, before, limit)
	return out, err
}

// Cancel stops a job: a queued one at once, a running one at its next checkpoint.
func (r *Runner) Cancel(ctx context.Context, corpID string, id int64) (JobRow, error) {
	now := qsql.Millis(r.now())
	err := r.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, unique_key = NULL, finished_at = ?, updated_at = ? WHERE id = ? AND corp_id = ? AND status = ?`,
			JobCancelled, now, now, id, corpID, JobQueued); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? AND corp_id = ? AND status = ?`, now, id, corpID, JobRunning)
		return err
	})
	if err != nil {
		return JobRow{}, err
	}
	return r.Get(ctx, corpID, id)
}

// Start runs up to workers jobs at a time until Stop.
func (r *Runner) Start(workers int) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for i := 0; i < workers; i++ {
		r.wg.Add(1)
		go r.loop(ctx)
	}
}

// Stop stops claiming and waits for running jobs to reach a checkpoint or end (bounded by ctx).
func (r *Runner) Stop(ctx context.Context) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (r *Runner) loop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.poll)
	defer t.Stop()
	for ctx.Err() == nil {
		j, err := r.claim(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Error("job claim failed", "err", err)
		}
		if j != nil {
			r.run(ctx, j)
			continue
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-r.wake:
		}
	}
}

// claim leases one due job. A running job whose lease lapsed (its instance
// died) is due again and resumes from its checkpoint.
func (r *Runner) claim(ctx context.Context) (*Job, error) {
	now := r.now()
	var j *Job
	err := r.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		var row JobRow
		err := tx.GetContext(ctx, &row, `SELECT `+jobCols+` FROM jobs WHERE status IN (?, ?) AND available_at <= ? ORDER BY available_at LIMIT 1`+r.db.ForUpdateSkipLocked(),
			JobQueued, JobRunning, qsql.Millis(now))
		if qsql.IsNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = ?, lease_owner = ?, available_at = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ?`,
			JobRunning, r.owner, qsql.Millis(now.Add(r.lease)), qsql.Millis(now), qsql.Millis(now), row.ID)
		row.Attempts++
		row.Status = JobRunning
		j = &Job{JobRow: row, r: r, owner: r.owner}
		return err
	})
	return j, err
}

func (r *Runner) run(parent context.Context, j *Job) {
	log := r.log.With("job", j.ID, "kind", j.Kind, "corp", j.CorpID, "attempt", j.Attempts)
	fn, ok := r.kind(j.Kind)
	if !ok {
		r.finish(j, JobFailed, nil, fmt.Errorf("no handler for job kind %q", j.Kind))
		return
	}
	// The job's own context: cancelled by a cancel request seen by the heartbeat.
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	defer cancel()
	hb := make(chan struct{})
	go r.heartbeat(ctx, j, cancel, hb)
	log.Info("job started")
	result, err := safeRun(ctx, fn, j)
	close(hb)
	switch {
	case err == nil:
		r.finish(j, JobDone, result, nil)
		log.Info("job done")
	case errors.Is(err, ErrCancelled) || errors.Is(err, context.Canceled):
		r.finish(j, JobCancelled, result, err)
		log.Info("job cancelled")
	case j.Attempts >= j.MaxAttempts:
		r.finish(j, JobFailed, result, err)
		log.Error("job failed", "err", err)
	default:
		now := r.now()
		r.db.ExecContext(context.Background(), `UPDATE jobs SET status = ?, lease_owner = '', available_at = ?, error = ?, updated_at = ? WHERE id = ? AND lease_owner = ?`,
			JobQueued, qsql.Millis(now.Add(Backoff(j.Attempts))), err.Error(), qsql.Millis(now), j.ID, r.owner)
		log.Warn("job failed; will resume from its checkpoint", "err", err)
	}
}

func safeRun(ctx context.Context, fn JobFunc, j *Job) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("job panicked: %v", p)
		}
	}()
	return fn(ctx, j)
}

// heartbeat renews the lease and turns a cancel request into ctx cancellation.
func (r *Runner) heartbeat(ctx context.Context, j *Job, cancel context.CancelFunc, stop <-chan struct{}) {
	t := time.NewTicker(r.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if r.frozen.Load() {
				return
			}
			now := r.now()
			r.db.ExecContext(ctx, `UPDATE jobs SET available_at = ? WHERE id = ? AND lease_owner = ? AND status = ?`,
				qsql.Millis(now.Add(r.lease)), j.ID, r.owner, JobRunning)
			var c bool
			if err := r.db.GetContext(ctx, &c, `SELECT cancel_requested FROM jobs WHERE id = ?`, j.ID); err == nil && c {
				cancel()
			}
		}
	}
}

func (r *Runner) finish(j *Job, status string, result any, cause error) {
	b, _ := json.Marshal(result)
	var msg any
	if cause != nil {
		msg = cause.Error()
	}
	now := qsql.Millis(r.now())
	_, err := r.db.ExecContext(context.Background(), `UPDATE jobs SET status = ?, result = ?, error = ?, unique_key = NULL, lease_owner = '', finished_at = ?, updated_at = ? WHERE id = ? AND lease_owner = ?`,
		status, string(b), msg, now, now, j.ID, r.owner)
	if err != nil {
		r.log.Error("recording job end failed", "job", j.ID, "err", err)
	}
}
