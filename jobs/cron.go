package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/qiflow/qiflow/kv"
)

// Cron runs scheduled work once across all instances: every instance keeps
// the schedule, and at each tick the one that takes the tick's Redis lock
// runs it. The lock is left to expire, so a late instance skips that tick.
type Cron struct {
	c   *cron.Cron
	kv  *kv.Store
	log *slog.Logger
	now func() time.Time
}

// NewCron returns a scheduler; Add entries, then Start.
func NewCron(store *kv.Store, log *slog.Logger) *Cron {
	return &Cron{c: cron.New(), kv: store, log: log, now: time.Now}
}

// Add schedules fn under a standard 5-field cron spec. name identifies the
// entry across instances.
func (c *Cron) Add(name, spec string, fn func(ctx context.Context) error) error {
	_, err := c.c.AddFunc(spec, func() { c.RunOnce(name, fn) })
	return err
}

// RunOnce runs fn for the current minute's tick unless another instance has.
func (c *Cron) RunOnce(name string, fn func(ctx context.Context) error) bool {
	tick := c.now().UTC().Truncate(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, ok, err := c.kv.TryLock(ctx, c.kv.Key("cron", name, tick.Format("200601021504")), 2*time.Hour)
	if err != nil {
		c.log.Error("cron lock failed", "entry", name, "err", err)
		return false
	}
	if !ok {
		return false
	}
	start := time.Now()
	if err := fn(ctx); err != nil {
		c.log.Error("cron entry failed", "entry", name, "err", err)
	} else {
		c.log.Debug("cron entry ran", "entry", name, "duration_ms", time.Since(start).Milliseconds())
	}
	return true
}

func (c *Cron) Start() { c.c.Start() }

// Stop stops scheduling and waits for running entries.
func (c *Cron) Stop() { <-c.c.Stop().Done() }
