package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	qsql "github.com/qiflow/qiflow/sql"
)

var (
	deliveriesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "qiflow_bus_deliveries_total",
		Help: "Deliveries handled, by subscriber and outcome (done, retry, dead).",
	}, []string{"subscriber", "outcome"})
	processingSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "qiflow_bus_processing_seconds",
		Help:    "Time from an event's arrival to a subscriber finishing it.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"lane"})
	inboxDepth = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "qiflow_bus_depth",
		Help: "Deliveries waiting or leased, by lane.",
	}, []string{"lane"})
	inboxOldest = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "qiflow_bus_oldest_age_seconds",
		Help: "Age of the oldest unfinished delivery, by lane.",
	}, []string{"lane"})
	deadLetters = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "qiflow_bus_dead_letters",
		Help: "Dead-lettered deliveries waiting to be replayed or dismissed.",
	})
)

// DispatcherOptions tune the dispatcher.
type DispatcherOptions struct {
	Owner       string        // this instance's lease owner id
	Workers     int           // normal-lane workers
	FastWorkers int           // fast-lane workers
	Lease       time.Duration // how long a claimed delivery is ours
	MaxAttempts int
	Poll        time.Duration // how often to look for work other instances added
	// BurstWorkers is how many normal-lane workers keep running during a
	// burst of callbacks (default Workers/32, at least 2); see
	// yieldToReceives.
	BurstWorkers int
	// Backoff is the delay before the retry after a failed attempt; default Backoff.
	Backoff func(attempt int) time.Duration
}

// Dispatcher claims deliveries and runs their subscribers. Each lane has its
// own claimer and workers, so the fast lane never queues behind the normal one.
type Dispatcher struct {
	bus  *Bus
	opt  DispatcherOptions
	log  *slog.Logger
	done [2]chan Delivery // settled deliveries, batched into one UPDATE

	cancel   context.CancelFunc
	stopping atomic.Bool
	wg       sync.WaitGroup
	settle   sync.WaitGroup
	stopped  chan struct{}
}

// NewDispatcher returns a dispatcher over the bus.
func NewDispatcher(bus *Bus, opt DispatcherOptions, log *slog.Logger) *Dispatcher {
	if opt.Poll == 0 {
		opt.Poll = 250 * time.Millisecond
	}
	if opt.Backoff == nil {
		opt.Backoff = Backoff
	}
	if opt.Workers < 1 {
		opt.Workers = 1
	}
	if opt.FastWorkers < 1 {
		opt.FastWorkers = 1
	}
	if opt.BurstWorkers < 1 {
		opt.BurstWorkers = max(2, opt.Workers/32)
	}
	return &Dispatcher{bus: bus, opt: opt, log: log,
		done:    [2]chan Delivery{make(chan Delivery, 1024), make(chan Delivery, 1024)},
		stopped: make(chan struct{})}
}

// Start runs the claimers and workers until Stop.
func (d *Dispatcher) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for _, lane := range []Lane{LaneFast, LaneNormal} {
		workers := d.opt.Workers
		if lane == LaneFast {
			workers = d.opt.FastWorkers
		}
		work := make(chan []Delivery, workers)
		free := make(chan struct{}, workers)
		for i := 0; i < workers; i++ {
			free <- struct{}{}
		}
		d.wg.Add(1)
		go d.claimLoop(ctx, lane, work, free)
		for i := 0; i < workers; i++ {
			d.wg.Add(1)
			go d.worker(work, free)
		}
		d.settle.Add(1)
		go d.settleLoop(lane)
	}
	d.wg.Add(1)
	go d.gaugeLoop(ctx)
}

// Stop stops claiming and waits for in-flight deliveries to finish (bounded by
// ctx); whatever is unfinished is released by its lease expiring.
func (d *Dispatcher) Stop(ctx context.Context) {
	if d.cancel == nil || !d.stopping.CompareAndSwap(false, true) {
		return
	}
	d.cancel()
	finished := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(d.done[0])
		close(d.done[1])
		d.settle.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		d.log.Warn("dispatcher stop timed out; unfinished deliveries will be re-claimed after their lease")
	}
}

// Kill abandons everything at once, as a crash would: no settling, leases left
// to expire. Tests use it to prove another instance takes over.
func (d *Dispatcher) Kill() {
	d.cancel()
}

func (d *Dispatcher) claimLoop(ctx context.Context, lane Lane, work chan<- []Delivery, free chan struct{}) {
	defer d.wg.Done()
	defer close(work)
	tick := time.NewTicker(d.opt.Poll)
	defer tick.Stop()
	for {
		// Wait for an idle worker, then count the others, so we never lease
		// more than we can start at once.
		select {
		case <-free:
		case <-ctx.Done():
			return
		}
		n := 1
	count:
		for n < cap(free) {
			select {
			case <-free:
				n++
			default:
				break count
			}
		}
		if lane == LaneNormal {
			var ok bool
			if n, ok = d.yieldToReceives(ctx, n, free); !ok {
				return
			}
		}
		// Batch subscribers take many deliveries on one worker: claim
		// enough to fill their batches, not just one per idle worker.
		claimCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ds, err := d.bus.Claim(claimCtx, lane, d.opt.Owner, n+d.bus.batchRoom(lane), d.opt.Lease)
		cancel()
		if err != nil && ctx.Err() == nil {
			if isDeadlock(err) {
				// InnoDB picked this claim as a deadlock victim; the next one will do.
				d.log.Debug("claim deadlocked; retrying", "lane", lane.String())
			} else {
				d.log.Error("claim failed", "lane", lane.String(), "err", err)
			}
		}
		d.decodeOnce(ds)
		units := d.batches(ds)
		for i := len(units); i < n; i++ {
			free <- struct{}{}
		}
		for i, u := range units {
			if i >= n {
				// More units than the workers we counted: wait for one.
				// (Stopping lets this claim's leases lapse; they are re-claimed.)
				select {
				case <-free:
				case <-ctx.Done():
					return
				}
			}
			work <- u // a worker is idle for each unit of work
		}
		if len(ds) == 0 {
			select {
			case <-d.bus.notify[lane]:
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

// yieldToReceives holds the normal lane to BurstWorkers running units
// while the bus takes a burst of callbacks, so the acknowledgements WeCom
// waits for get the CPU and the database; the backlog drains after the
// burst (it never stops: BurstWorkers keep working). The fast lane, whose
// welcomes have 20 s, never yields. Of the n idle workers the claimer
// holds, it returns how many to use now and gives the rest back; false
// when ctx ends.
func (d *Dispatcher) yieldToReceives(ctx context.Context, n int, free chan struct{}) (int, bool) {
	for d.bus.inBurst() {
		running := cap(free) - n - len(free)
		if room := d.opt.BurstWorkers - running; room > 0 {
			use := min(n, room)
			for range n - use {
				free <- struct{}{}
			}
			return use, true
		}
		select {
		case <-time.After(burstPause):
		case <-ctx.Done():
			return 0, false
		}
	}
	return n, true
}

// burstPause is how often a yielding claimer looks again.
const burstPause = 5 * time.Millisecond

func (d *Dispatcher) worker(work <-chan []Delivery, free chan<- struct{}) {
	defer d.wg.Done()
	for u := range work {
		if len(u) == 1 {
			d.run(u[0])
		} else {
			d.runBatch(u)
		}
		free <- struct{}{}
	}
}

// decodeOnce decodes each event of a claim once for all its deliveries
// (one event usually has several subscribers). An event that fails to
// decode is left for the delivery's own run, which dead-letters it.
func (d *Dispatcher) decodeOnce(ds []Delivery) {
	byEvent := map[int64]any{}
	for i := range ds {
		v, ok := byEvent[ds[i].EventID]
		if !ok {
			var err error
			if v, err = d.bus.decode(ds[i].Source, ds[i].Type, []byte(ds[i].payload)); err != nil {
				v = nil
			}
			byEvent[ds[i].EventID] = v
		}
		ds[i].decoded = v
	}
}

// event returns a delivery's decoded event.
func (d *Dispatcher) event(dl Delivery) (any, error) {
	if dl.decoded != nil {
		return dl.decoded, nil
	}
	return d.bus.decode(dl.Source, dl.Type, []byte(dl.payload))
}

// batches groups a claim's deliveries into units of work: the deliveries
// of a batch subscriber together (up to its MaxBatch; a claim never holds
// two of one subscriber and subject), every other delivery alone.
func (d *Dispatcher) batches(ds []Delivery) [][]Delivery {
	var units [][]Delivery
	open := map[string]int{} // subscriber → index of its unit being filled
	for _, dl := range ds {
		sub, ok := d.bus.local(dl.Subscriber)
		if !ok || sub.handleBatch == nil {
			units = append(units, []Delivery{dl})
			continue
		}
		if i, ok := open[dl.Subscriber]; ok && len(units[i]) < sub.maxBatch {
			units[i] = append(units[i], dl)
			continue
		}
		open[dl.Subscriber] = len(units)
		units = append(units, []Delivery{dl})
	}
	return units
}

// runBatch hands a batch subscriber its deliveries at once. On an error the
// batch changed nothing it would not change again (subscribers are
// idempotent), and each delivery runs alone, so only a bad one fails.
func (d *Dispatcher) runBatch(ds []Delivery) {
	sub, ok := d.bus.local(ds[0].Subscriber)
	if !ok {
		for _, dl := range ds {
			d.run(dl)
		}
		return
	}
	hctx, cancel := context.WithTimeout(context.Background(), d.opt.Lease*8/10)
	err := d.handleBatch(hctx, sub, ds)
	cancel()
	if err != nil {
		d.log.Debug("batch failed; running its deliveries one by one", "subscriber", sub.name, "size", len(ds), "err", err)
		for _, dl := range ds {
			d.run(dl)
		}
		return
	}
	for _, dl := range ds {
		d.done[dl.lane] <- dl
		deliveriesTotal.WithLabelValues(dl.Subscriber, "done").Inc()
		processingSeconds.WithLabelValues(dl.lane.String()).Observe(time.Since(dl.ReceivedAt).Seconds())
	}
}

func (d *Dispatcher) handleBatch(ctx context.Context, sub *sub, ds []Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("subscriber panicked: %v\n%s", r, debug.Stack())
		}
	}()
	vs := make([]any, len(ds))
	for i, dl := range ds {
		if vs[i], err = d.event(dl); err != nil {
			return err // the one-by-one run dead-letters it
		}
	}
	return sub.handleBatch(ctx, ds, vs)
}

// run calls the subscriber under a deadline shorter than the lease, so a
// delivery is never still running when another instance may take it over.
func (d *Dispatcher) run(dl Delivery) {
	var err error
	sub, ok := d.bus.local(dl.Subscriber)
	if !ok {
		// Claims name only our subscribers; this is a bug, not a deploy.
		err = fmt.Errorf("no subscriber named %q in this instance", dl.Subscriber)
	} else {
		// Handlers get their own context: stopping the dispatcher lets
		// in-flight work finish (drain) rather than cutting WeCom calls short.
		hctx, cancel := context.WithTimeout(context.Background(), d.opt.Lease*8/10)
		err = d.handle(hctx, sub, dl)
		cancel()
	}
	log := d.log.With("delivery", dl.ID, "event", dl.EventID, "corp", dl.CorpID, "subscriber", dl.Subscriber, "type", dl.Type, "attempt", dl.Attempt)
	if err == nil {
		d.done[dl.lane] <- dl
		deliveriesTotal.WithLabelValues(dl.Subscriber, "done").Inc()
		processingSeconds.WithLabelValues(dl.lane.String()).Observe(time.Since(dl.ReceivedAt).Seconds())
		return
	}
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dead, ferr := d.bus.fail(fctx, dl, err, d.opt.MaxAttempts, d.opt.Backoff(dl.Attempt))
	if ferr != nil {
		log.Error("recording a failed delivery failed; it will be retried after its lease", "err", err, "record_err", ferr)
		return
	}
	if dead {
		deliveriesTotal.WithLabelValues(dl.Subscriber, "dead").Inc()
		log.Error("delivery dead-lettered", "err", err)
	} else {
		deliveriesTotal.WithLabelValues(dl.Subscriber, "retry").Inc()
		log.Warn("delivery failed; will retry", "err", err)
	}
}

// handle decodes the delivery's event and runs the subscriber on it.
func (d *Dispatcher) handle(ctx context.Context, sub *sub, dl Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("subscriber panicked: %v\n%s", r, debug.Stack())
		}
	}()
	v, err := d.event(dl)
	if err != nil {
		return Permanent(err) // stored events decoded once on the way in: this will not heal
	}
	return sub.handle(ctx, dl, v)
}

// settleLoop marks finished deliveries done, many per statement.
func (d *Dispatcher) settleLoop(lane Lane) {
	defer d.settle.Done()
	batch := make([]Delivery, 0, 256)
	for dl := range d.done[lane] {
		batch = append(batch[:0], dl)
	fill:
		for len(batch) < cap(batch) {
			select {
			case x, ok := <-d.done[lane]:
				if !ok {
					break fill
				}
				batch = append(batch, x)
			default:
				break fill
			}
		}
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := d.bus.complete(ctx, batch)
			cancel()
			if err == nil {
				break
			}
			if attempt == 2 {
				// The leases will expire and the deliveries run again; subscribers are idempotent.
				d.log.Error("marking deliveries done failed", "count", len(batch), "err", err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// Backoff is the delay before retry n (1-based): exponential from 2 s, capped
// at 10 min, with full jitter between half and the whole delay.
func Backoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	base := 2 * time.Second << min(attempt-1, 12)
	if base > 10*time.Minute {
		base = 10 * time.Minute
	}
	return base/2 + time.Duration(rand.Int64N(int64(base/2)+1))
}

func (d *Dispatcher) gaugeLoop(ctx context.Context) {
	defer d.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st, err := d.bus.Stats(ctx)
			if err != nil {
				continue
			}
			for _, lane := range []Lane{LaneFast, LaneNormal} {
				inboxDepth.WithLabelValues(lane.String()).Set(float64(st.Queued[lane]))
				inboxOldest.WithLabelValues(lane.String()).Set(st.OldestAge[lane].Seconds())
			}
			deadLetters.Set(float64(st.Dead))
		}
	}
}

// isDeadlock reports a deadlock or lock wait timeout, which a claim simply
// retries.
func isDeadlock(err error) bool { return qsql.IsDeadlock(err) }
