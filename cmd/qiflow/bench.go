package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qiflow/qiflow/configs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/fake"
)

// bench callbacks drives a real qiflow server (in this process, on loopback)
// with encrypted add_external_contact callbacks posted by the fake WeCom, and
// reports accepted callbacks per second, ack latency, and callback-to-
// processed latency (until every subscriber, the contact import included, is
// done). Load is spread over many corps so each stays within WeCom's
// per-corp limits, as in a multi-corp deployment.
func bench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "callbacks" {
		return errors.New("usage: qiflow bench callbacks [--corps N] [--duration D] [--concurrency C] [--rate R] [--skip SUBSCRIBERS] [--db-driver mysql --db-dsn DSN] [--redis-addr ADDR]")
	}
	var corps, concurrency, rate int
	var cpuProfile, skip string
	var duration time.Duration
	cfg, _, err := loadConfig("bench callbacks", args[1:], stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&corps, "corps", 40, "corps to spread the load over")
		fs.IntVar(&concurrency, "concurrency", 64, "callbacks in flight at once")
		fs.DurationVar(&duration, "duration", 10*time.Second, "how long to send")
		fs.IntVar(&rate, "rate", 0, "offer this many callbacks a second (open loop); 0 sends as fast as the server answers")
		fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
		fs.StringVar(&skip, "skip", "", "comma-separated `subscribers` to leave out, to measure what the rest costs (\"leads.intake,journeys\": an add without the lead pool and journeys)")
	})
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "qiflow-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg.HTTPAddr, cfg.Sandbox, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", "off", tmp, "warn"
	if cfg.DB.Driver == "sqlite" {
		cfg.DB.DSN = filepath.Join(tmp, "bench.db")
	}
	cfg.Admin = configs.AdminConfig{}

	f, err := fake.New(fake.Options{})
	if err != nil {
		return err
	}
	base, err := f.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer f.Close()
	ids := make([]string, corps)
	cfg.WeCom.Corps = nil
	for i := range ids {
		spec := fake.SandboxCorp
		spec.ID = fmt.Sprintf("wwbench%04d", i)
		ids[i] = spec.ID
		f.AddCorp(spec, true)
		cfg.WeCom.Corps = append(cfg.WeCom.Corps, configs.CorpConfig{ID: spec.ID, Name: spec.ID, Secret: spec.Secret, AgentID: spec.AgentID,
			Token: spec.Token, AESKey: spec.AESKey, TimeZone: "Asia/Shanghai"})
	}
	cfg.WeCom.APIBase = base
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger("warn", stderr)
	ctx := context.Background()
	opt := appOptions{noInitialSync: true}
	if skip != "" {
		opt.skipSubscribers = strings.Split(skip, ",")
	}
	a, err := newApp(ctx, cfg, log, opt)
	if err != nil {
		return err
	}
	if err := a.start(); err != nil {
		return err
	}
	defer a.shutdown(context.Background())
	for _, id := range ids {
		f.SetCallbackURL(id, "http://"+a.addr()+"/wecom/callback/"+id)
	}
	staff := []string{"zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba"}

	if cpuProfile != "" {
		pf, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	offered := "as fast as answered"
	if rate > 0 {
		offered = fmt.Sprintf("%d/s offered", rate)
	}
	fmt.Fprintf(stdout, "bench callbacks: %s storage, %d corps, concurrency %d, %s, %s\n", cfg.DB.Driver, corps, concurrency, duration, offered)
	if skip != "" {
		fmt.Fprintf(stdout, "left out:   %s (their events are stored, nobody handles them)\n", skip)
	}
	startMs := time.Now().UnixMilli()
	deadline := time.Now().Add(duration)
	var mu sync.Mutex
	var acks []time.Duration
	var failed atomic.Int64
	var wg sync.WaitGroup
	// With --rate, a pacer hands out one permit per callback; senders that
	// fall behind do not catch up in a burst.
	var permits chan struct{}
	if rate > 0 {
		permits = make(chan struct{}, concurrency)
		go func() {
			interval := time.Second / time.Duration(rate)
			next := time.Now()
			for time.Now().Before(deadline) {
				next = next.Add(interval)
				time.Sleep(time.Until(next))
				select {
				case permits <- struct{}{}:
				default:
				}
			}
			close(permits)
		}()
	}
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				if permits != nil {
					if _, ok := <-permits; !ok {
						break
					}
				}
				corp, user := ids[rand.IntN(len(ids))], staff[rand.IntN(len(staff))]
				t0 := time.Now()
				res, err := f.Add(ctx, corp, user, fake.Customer{}, 1)
				if err != nil || !res.Callback.OK || res.Callback.Attempts != 1 {
					failed.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			acks = append(acks, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sendTime := time.Since(time.UnixMilli(startMs))

	// Wait for the backlog to drain, then read each event's processing time.
	// The check reads one row, not a count of the backlog: counting it ten
	// times a second took a few percent of the server's CPU from the
	// processing being measured.
	drainStart := time.Now()
	for time.Since(drainStart) < 2*time.Minute {
		var queued []int
		if err := a.db.Select(&queued, `SELECT 1 FROM bus_deliveries WHERE status = 'queued' LIMIT 1`); err != nil {
			return err
		}
		if len(queued) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rows []struct {
		Received int64  `db:"received_at"`
		Done     *int64 `db:"done"`
	}
	if err := a.db.Select(&rows, `SELECT e.received_at, MAX(d.done_at) AS done FROM bus_events e JOIN bus_deliveries d ON d.event_id = e.id
		WHERE e.received_at >= ? GROUP BY e.id, e.received_at`, startMs); err != nil {
		return err
	}
	var processed []time.Duration
	unfinished := 0
	for _, r := range rows {
		if r.Done == nil {
			unfinished++
			continue
		}
		processed = append(processed, qsql.FromMillis(*r.Done).Sub(qsql.FromMillis(r.Received)))
	}
	var dead int
	a.db.Get(&dead, `SELECT COUNT(*) FROM bus_deliveries WHERE status = 'dead'`)

	fmt.Fprintf(stdout, "accepted:   %d callbacks in %.1fs = %.0f/s (failed %d)\n", len(acks), sendTime.Seconds(), float64(len(acks))/sendTime.Seconds(), failed.Load())
	fmt.Fprintf(stdout, "ack:        p50 %s  p99 %s  max %s\n", pct(acks, 50), pct(acks, 99), pct(acks, 100))
	fmt.Fprintf(stdout, "processed:  p50 %s  p99 %s  max %s  (%d events, %d unfinished, %d dead deliveries)\n",
		pct(processed, 50), pct(processed, 99), pct(processed, 100), len(processed), unfinished, dead)
	if rss := peakRSS(); rss > 0 {
		fmt.Fprintf(stdout, "peak RSS:   %.0f MiB (this one process: load generator, fake WeCom and Qiflow)\n", float64(rss)/(1<<20))
	}
	return nil
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := (len(ds)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	if i > len(ds) {
		i = len(ds)
	}
	return ds[i-1].Round(100 * time.Microsecond)
}
