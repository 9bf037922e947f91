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

	"github.com/qiflow/qiflow/apperr"
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
var ErrJobNotFound = apperr.NotFound("job not found")

// ErrLeaseLost means another instance took the job over after this one's
// lease lapsed: this run must stop, and nothing it writes counts.
var ErrLeaseLost = errors.New("job lease lost to another instance")

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
	token string
}

// Checkpoint saves where the job is (cp is JSON-encoded) and its progress,
// and renews the lease. A handler calls it after each unit of work; after a
// crash the job resumes from the last checkpoint on any instance. It returns
// ErrCancelled once the job was cancelled, and ErrLeaseLost once another
// instance took the job over (the handler must stop: its writes are fenced).
func (j *Job) Checkpoint(ctx context.Context, cp any, done, total int64) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	now := j.r.now()
	ok, err := j.r.fenced(ctx, j.ID, j.token, `UPDATE jobs SET checkpoint = ?, progress_done = ?, progress_total = ?, available_at = ?, updated_at = ?
		WHERE id = ? AND lease_token = ? AND status = ?`,
		string(b), done, total, qsql.Millis(now.Add(j.r.lease)), qsql.Millis(now), j.ID, j.token, JobRunning)
	if err != nil {
		return err
	}
	if !ok {
		return ErrLeaseLost
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

	// frozen pauses lease renewal, as a stalled or dead process would (tests).
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
// running, the existing job's id is returned instead of a second job; a
// running one is asked to run again, from the start, once this run ends
// (what it was asked for may have changed after it read its inputs).
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
	err = r.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if uniqueKey != "" {
			// A running job with the key is asked to run again, by its
			// primary key: the order its end (finish) locks the row in.
			var running int64
			err := tx.GetContext(ctx, &running, `SELECT id FROM jobs WHERE unique_key = ? AND status = ?`, uniqueKey, JobRunning)
			if err != nil && !qsql.IsNoRows(err) {
				return err
			}
			if err == nil {
				res, err := tx.ExecContext(ctx, `UPDATE jobs SET rerun_requested = 1, updated_at = ? WHERE id = ? AND unique_key = ? AND status = ?`,
					now, running, uniqueKey, JobRunning)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 1 {
					id = running
					return nil
				}
				// It ended meanwhile (or was asked already): as if it had not run.
			}
		}
		res, err := tx.ExecContext(ctx, r.db.InsertIgnoreRows("jobs", cols, []string{"unique_key"}, 1),
			corpID, kind, key, JobQueued, string(p), "{}", "null", now, createdBy, now, now)
		if err != nil {
			return err
		}
		if uniqueKey == "" {
			id, err = res.LastInsertId()
			return err
		}
		// Another instance's job with the key, committed after this
		// transaction's first read, is seen only by a locking read.
		return tx.GetContext(ctx, &id, `SELECT id FROM jobs WHERE unique_key = ?`+r.db.ForShare(), uniqueKey)
	})
	if err == nil {
		r.wakeUp()
	}
	return id, err
}

// wakeUp makes an idle worker look for jobs now.
func (r *Runner) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
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
	err := r.db.WriteTx(ctx, func(tx *qsql.Tx) error {
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

// kindNames lists the job kinds this instance can run.
func (r *Runner) kindNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		out = append(out, k)
	}
	return out
}

// claim leases one due job of a kind this instance knows (an older instance
// never takes a newer kind and fails it). A running job whose lease lapsed
// (its instance died) is due again and resumes from its checkpoint. The
// claim is a conditional update that re-checks status and due time and
// stamps a fresh token; whoever's token the row carries afterwards won.
func (r *Runner) claim(ctx context.Context) (*Job, error) {
	kinds := r.kindNames()
	if len(kinds) == 0 {
		return nil, nil
	}
	now := qsql.Millis(r.now())
	q, args, err := sqlx.In(`SELECT id FROM jobs WHERE status IN (?, ?) AND available_at <= ? AND kind IN (?) ORDER BY available_at LIMIT 4`,
		JobQueued, JobRunning, now, kinds)
	if err != nil {
		return nil, err
	}
	var cands []int64
	if err := r.db.SelectContext(ctx, &cands, q, args...); err != nil || len(cands) == 0 {
		return nil, err
	}
	for _, id := range cands {
		token := newToken()
		if _, err := r.db.ExecContext(ctx, `UPDATE jobs SET status = ?, lease_owner = ?, lease_token = ?, available_at = ?, attempts = attempts + 1,
			started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ? AND status IN (?, ?) AND available_at <= ?`,
			JobRunning, r.owner, token, qsql.Millis(r.now().Add(r.lease)), now, now, id, JobQueued, JobRunning, now); err != nil {
			return nil, err
		}
		var row JobRow
		err := r.db.GetContext(ctx, &row, `SELECT `+jobCols+` FROM jobs WHERE id = ? AND lease_token = ?`, id, token)
		if qsql.IsNoRows(err) {
			continue // another instance won it
		}
		if err != nil {
			return nil, err
		}
		return &Job{JobRow: row, r: r, token: token}, nil
	}
	return nil, nil
}

// fenced runs a write conditioned on the job's lease token and reports
// whether the row still carries it. (MySQL counts changed rows, not matched
// ones, so an update that changed nothing is checked by reading the token.)
func (r *Runner) fenced(ctx context.Context, id int64, token, q string, args ...any) (bool, error) {
	res, err := r.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	var cur string
	err = r.db.GetContext(ctx, &cur, `SELECT lease_token FROM jobs WHERE id = ?`, id)
	if qsql.IsNoRows(err) {
		return false, nil
	}
	return err == nil && cur == token, err
}

func (r *Runner) run(parent context.Context, j *Job) {
	log := r.log.With("job", j.ID, "kind", j.Kind, "corp", j.CorpID, "attempt", j.Attempts)
	fn, ok := r.kind(j.Kind)
	if !ok {
		r.finish(j, JobFailed, nil, fmt.Errorf("no handler for job kind %q", j.Kind))
		return
	}
	if j.Attempts > j.MaxAttempts {
		// Claimed again and again without ever ending: its runs kill the process.
		r.finish(j, JobFailed, nil, fmt.Errorf("gave up after %d attempts", j.MaxAttempts))
		log.Error("job failed: too many attempts")
		return
	}
	// The job's own context: cancelled by a cancel request or a lost lease,
	// both seen by the heartbeat.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	defer cancel(nil)
	hb := make(chan struct{})
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); r.heartbeat(ctx, j, cancel, hb) }()
	log.Info("job started")
	result, err := safeRun(ctx, fn, j)
	close(hb)
	<-hbDone
	if errors.Is(context.Cause(ctx), ErrLeaseLost) || errors.Is(err, ErrLeaseLost) {
		log.Warn("job stopped: another instance took it over")
		return
	}
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
		r.db.ExecContext(context.Background(), `UPDATE jobs SET status = ?, lease_owner = '', lease_token = '', available_at = ?, error = ?, updated_at = ? WHERE id = ? AND lease_token = ?`,
			JobQueued, qsql.Millis(now.Add(Backoff(j.Attempts))), err.Error(), qsql.Millis(now), j.ID, j.token)
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

// heartbeat renews the lease, turns a cancel request into ctx cancellation,
// and stops the job when its lease is gone (another instance took it over
// after this one stalled): two instances never run one job at once for
// longer than a heartbeat.
func (r *Runner) heartbeat(ctx context.Context, j *Job, cancel context.CancelCauseFunc, stop <-chan struct{}) {
	t := time.NewTicker(r.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if r.frozen.Load() {
				continue // stalled, as a process stuck in GC or I/O would be
			}
			now := r.now()
			hctx, hcancel := context.WithTimeout(ctx, r.lease/3)
			ok, err := r.fenced(hctx, j.ID, j.token, `UPDATE jobs SET available_at = ?, updated_at = ? WHERE id = ? AND lease_token = ? AND status = ?`,
				qsql.Millis(now.Add(r.lease)), qsql.Millis(now), j.ID, j.token, JobRunning)
			if err == nil && !ok {
				hcancel()
				cancel(ErrLeaseLost)
				return
			}
			var c bool
			if err := r.db.GetContext(hctx, &c, `SELECT cancel_requested FROM jobs WHERE id = ?`, j.ID); err == nil && c {
				cancel(ErrCancelled)
			}
			hcancel()
		}
	}
}

func (r *Runner) finish(j *Job, status string, result any, cause error) {
	b, _ := json.Marshal(result)
	var msg any
	if cause != nil {
		msg = cause.Error()
	}
	// A job asked for again while it ran is queued again instead, from the
	// start and keeping its key, by the same statement: a request (Enqueue)
	// and the end are ordered by the row's lock, and neither is lost. MySQL
	// assigns left to right, so rerun_requested is cleared last.
	again := "rerun_requested = 1"
	if status == JobCancelled {
		again = "1 = 0"
	}
	now := qsql.Millis(r.now())
	_, err := r.db.ExecContext(context.Background(), `UPDATE jobs SET status = CASE WHEN `+again+` THEN ? ELSE ? END,
		unique_key = CASE WHEN `+again+` THEN unique_key END, checkpoint = CASE WHEN `+again+` THEN '{}' ELSE checkpoint END,
		progress_done = CASE WHEN `+again+` THEN 0 ELSE progress_done END, attempts = CASE WHEN `+again+` THEN 0 ELSE attempts END,
		available_at = CASE WHEN `+again+` THEN ? ELSE available_at END, finished_at = CASE WHEN `+again+` THEN NULL ELSE ? END,
		result = ?, error = ?, lease_owner = '', lease_token = '', updated_at = ?, rerun_requested = 0
		WHERE id = ? AND lease_token = ?`,
		JobQueued, status, now, now, string(b), msg, now, j.ID, j.token)
	r.wakeUp() // for the run again, if it is one
	if err != nil {
		r.log.Error("recording job end failed", "job", j.ID, "err", err)
	}
}
