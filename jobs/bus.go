package jobs

import (
	"context"
	"crypto/sha256"
	dbsql "database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	qsql "github.com/qiflow/qiflow/sql"
)

// Event sources.
const (
	SourceWeCom  = "wecom"
	SourceDomain = "domain"
)

// Lane separates time-critical deliveries (the welcome message, whose code
// lives 20 s) from the rest, so they never wait behind a backlog.
type Lane int

const (
	LaneNormal Lane = 0
	LaneFast   Lane = 1
)

func (l Lane) String() string {
	if l == LaneFast {
		return "fast"
	}
	return "normal"
}

// Delivery statuses.
const (
	StatusQueued    = "queued"
	StatusDone      = "done"
	StatusDead      = "dead"
	StatusDismissed = "dismissed"
)

// Incoming is an event to store.
type Incoming struct {
	CorpID string
	Source string
	// Type is "family/kind" for WeCom events ("change_external_contact/add_external_contact")
	// or the domain event's name ("ContactAdded").
	Type string
	// Subject is what the event is about ("ext:wm…"); a subscriber handles
	// one subject's events one at a time, oldest first. "" = no order.
	Subject string
	// DedupKey identifies the event within the corp: storing it again stores nothing.
	DedupKey   string
	Payload    []byte
	OccurredAt time.Time
	// Data is the decoded payload, for the subscribers' filters.
	Data any
}

// Domain is what a domain event type implements to be published.
type Domain interface {
	// EventType is the event's name ("ContactAdded").
	EventType() string
	// EventSubject is what it is about ("ext:wm…"), for order per subject.
	EventSubject() string
	// EventKey is unique among the type's events in the corp: publishing the
	// same key again (a retried cause) stores nothing new.
	EventKey() string
	// EventTime is when it happened.
	EventTime() time.Time
}

// Delivery is one event handed to one subscriber.
type Delivery struct {
	ID         int64
	EventID    int64
	CorpID     string
	Subscriber string
	Source     string
	Type       string
	Subject    string
	Attempt    int
	OccurredAt time.Time
	ReceivedAt time.Time

	token   string
	lane    Lane
	payload string
	decoded any // the event, decoded once for every delivery of a claim
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks an error that retrying cannot fix: the delivery is dead-lettered at once.
func Permanent(err error) error { return permanentError{err} }

// Decoder turns a stored payload of one source back into its Go value.
type Decoder func(typ string, payload []byte) (any, error)

// sub is a subscriber as the bus runs it.
type sub struct {
	name   string
	lane   Lane
	types  []string
	where  func(any) bool // nil: every event of its types
	handle func(ctx context.Context, d Delivery, v any) error
	// handleBatch is set for subscribers that take several deliveries at once.
	handleBatch func(ctx context.Context, ds []Delivery, vs []any) error
	maxBatch    int
}

func (s *sub) wants(typ string) bool { return matchesAny(s.types, typ) }

// matchesAny reports whether typ matches one of the patterns: exact,
// "family/*", or "*".
func matchesAny(patterns []string, typ string) bool {
	for _, p := range patterns {
		if p == "*" || p == typ {
			return true
		}
		if fam, ok := strings.CutSuffix(p, "/*"); ok && strings.HasPrefix(typ, fam+"/") {
			return true
		}
	}
	return false
}

// remoteSub is a subscriber some instance registered.
type remoteSub struct {
	Lane  Lane
	Types []string
}

// Bus stores events and delivers them to subscribers.
// Writers: Receive (the gateway, through a group-committing writer) and
// Publish (inside the publisher's transaction) insert events and deliveries;
// the dispatcher claims and settles deliveries; operators replay or dismiss.
type Bus struct {
	db  *qsql.DB
	log *slog.Logger
	now func() time.Time
	// lastStamp is the received_at of this process's latest write of
	// events: each write gets a later one (see stamp).
	lastStamp atomic.Int64

	mu       sync.RWMutex
	subs     []*sub
	remote   map[string]remoteSub // every subscriber seen recently, ours included
	decoders map[string]Decoder   // by source
	domain   map[string]func([]byte) (any, error)
	// skipped are the subscribers left out (see Skip): true once one
	// tried to register.
	skipped map[string]bool

	// RegistryRefresh is how often the subscriber registry is re-read (and
	// this instance's entries renewed).
	RegistryRefresh time.Duration
	// RegistryRetire is how long a subscriber no instance renews keeps
	// getting deliveries.
	RegistryRetire time.Duration

	appends chan *appendReq
	// receiving counts the Receives waiting for their commit: many at once
	// is a burst of callbacks, during which the dispatcher yields (see
	// Dispatcher.yieldToReceives).
	receiving atomic.Int64
	notify    [2]chan struct{} // per lane: new work for the local dispatcher
	closing   chan struct{}
	writers   sync.WaitGroup
	started   bool
}

// NewBus returns a bus over db. Register decoders and subscribers, then Start.
func NewBus(db *qsql.DB, log *slog.Logger) *Bus {
	return &Bus{
		db:              db,
		log:             log,
		now:             time.Now,
		remote:          map[string]remoteSub{},
		decoders:        map[string]Decoder{},
		domain:          map[string]func([]byte) (any, error){},
		RegistryRefresh: 10 * time.Second,
		RegistryRetire:  24 * time.Hour,
		appends:         make(chan *appendReq, 4096),
		notify:          [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)},
		closing:         make(chan struct{}),
	}
}

// SetClock replaces the clock (tests).
func (b *Bus) SetClock(now func() time.Time) { b.now = now }

// Skip leaves the named subscribers out: registering them later registers
// nothing, so their events get no deliveries from this instance. It is for
// measuring what a part of the work costs (qiflow bench callbacks --skip),
// not for running Qiflow: another instance that has them still gives them
// deliveries, and nothing does their work here.
func (b *Bus) Skip(names ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.skipped == nil {
		b.skipped = map[string]bool{}
	}
	for _, n := range names {
		b.skipped[n] = false
	}
}

// Skipped lists the subscribers Skip left out that were then registered.
func (b *Bus) Skipped() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []string
	for n, registered := range b.skipped {
		if registered {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// RegisterSource sets the decoder of a source's payloads (WeCom's XML).
func (b *Bus) RegisterSource(source string, dec Decoder) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decoders[source] = dec
}

// RegisterEvent makes a domain event type known to the bus: its payload is
// T as JSON. Register every type that is published or subscribed to.
func RegisterEvent[T Domain](b *Bus) {
	var zero T
	typ := zero.EventType()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.domain[typ] = func(p []byte) (any, error) {
		var v T
		if err := json.Unmarshal(p, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", typ, err)
		}
		return v, nil
	}
}

// Subscription is a typed subscriber.
type Subscription[T any] struct {
	// Name is stable: deliveries are recorded under it.
	Name string
	Lane Lane
	// Types are the event types wanted: exact, "family/*", or "*". For a
	// domain event type T it defaults to T's own type.
	Types []string
	// Where narrows the events of those types (nil: all of them).
	Where func(T) bool
	// Handle processes one event. It must be idempotent: after a crash a
	// delivery may run again. Return Permanent(err) to dead-letter at once.
	// The event is shared with the event's other subscribers: read it only.
	Handle func(ctx context.Context, d Delivery, ev T) error
	// HandleBatch, when set, processes several deliveries at once (one
	// transaction for many, say): what one claim brought, up to MaxBatch,
	// never two of one subject. It is all or nothing: on an error every
	// delivery of the batch runs alone through Handle, so one bad event
	// fails only itself. Items its Where refuses are left out.
	HandleBatch func(ctx context.Context, items []Item[T]) error
	// MaxBatch bounds a batch (default 64).
	MaxBatch int
}

// Item is one delivery of a batch with its decoded event.
type Item[T any] struct {
	Delivery
	Event T
}

// On registers a typed subscriber: events are decoded to T before Handle
// sees them, so no handler asserts types.
func On[T any](b *Bus, s Subscription[T]) {
	if s.Name == "" || s.Handle == nil {
		panic("jobs: subscriber needs a name and a handler")
	}
	if len(s.Types) == 0 {
		var zero T
		d, ok := any(zero).(Domain)
		if !ok {
			panic("jobs: subscriber " + s.Name + " names no event types")
		}
		s.Types = []string{d.EventType()}
	}
	sb := &sub{name: s.Name, lane: s.Lane, types: s.Types,
		handle: func(ctx context.Context, d Delivery, v any) error {
			ev, ok := v.(T)
			if !ok {
				return Permanent(fmt.Errorf("subscriber %s wants %T, event %s decodes to %T", s.Name, *new(T), d.Type, v))
			}
			if s.Where != nil && !s.Where(ev) {
				return nil // created by an instance that could not filter it
			}
			return s.Handle(ctx, d, ev)
		}}
	if s.Where != nil {
		sb.where = func(v any) bool {
			ev, ok := v.(T)
			return ok && s.Where(ev)
		}
	}
	if s.HandleBatch != nil {
		sb.maxBatch = s.MaxBatch
		if sb.maxBatch <= 0 {
			sb.maxBatch = 64
		}
		sb.handleBatch = func(ctx context.Context, ds []Delivery, vs []any) error {
			items := make([]Item[T], 0, len(ds))
			for i, v := range vs {
				ev, ok := v.(T)
				if !ok {
					return fmt.Errorf("subscriber %s wants %T, event %s decodes to %T", s.Name, *new(T), ds[i].Type, v)
				}
				if s.Where == nil || s.Where(ev) {
					items = append(items, Item[T]{Delivery: ds[i], Event: ev})
				}
			}
			if len(items) == 0 {
				return nil
			}
			return s.HandleBatch(ctx, items)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, skip := b.skipped[s.Name]; skip {
		b.skipped[s.Name] = true
		return
	}
	for _, x := range b.subs {
		if x.name == s.Name {
			panic("jobs: subscriber registered twice: " + s.Name)
		}
	}
	b.subs = append(b.subs, sb)
	b.remote[s.Name] = remoteSub{Lane: s.Lane, Types: s.Types}
}

// SubscriberInfo describes a registered subscriber.
type SubscriberInfo struct {
	Name  string
	Lane  Lane
	Types []string
}

// Subscribers lists this instance's subscribers, in registration order.
func (b *Bus) Subscribers() []SubscriberInfo {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]SubscriberInfo, len(b.subs))
	for i, s := range b.subs {
		out[i] = SubscriberInfo{Name: s.name, Lane: s.lane, Types: s.types}
	}
	return out
}

func (b *Bus) local(name string) (*sub, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.subs {
		if s.name == name {
			return s, true
		}
	}
	return nil, false
}

// batchRoom is how many deliveries beyond one per idle worker a claim of
// the lane may take: room for one full batch of each batch subscriber.
func (b *Bus) batchRoom(lane Lane) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, s := range b.subs {
		if s.lane == lane && s.handleBatch != nil {
			n += s.maxBatch
		}
	}
	return n
}

func (b *Bus) localNames(lane Lane) []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []string
	for _, s := range b.subs {
		if s.lane == lane {
			out = append(out, s.name)
		}
	}
	return out
}

// target is a delivery to create.
type target struct {
	name string
	lane Lane
}

// targets lists the subscribers an event goes to: ours whose types and filter
// match, and the ones only other instances have, whose types match (their
// filters run when they handle it).
func (b *Bus) targets(in *Incoming) []target {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []target
	mine := map[string]bool{}
	for _, s := range b.subs {
		mine[s.name] = true
		if s.wants(in.Type) && (s.where == nil || in.Data == nil || s.where(in.Data)) {
			out = append(out, target{s.name, s.lane})
		}
	}
	names := make([]string, 0, len(b.remote))
	for name := range b.remote {
		if !mine[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if r := b.remote[name]; matchesAny(r.Types, in.Type) {
			out = append(out, target{name, r.Lane})
		}
	}
	return out
}

// decode turns a stored payload into its Go value.
func (b *Bus) decode(source, typ string, payload []byte) (any, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if source == SourceDomain {
		if dec, ok := b.domain[typ]; ok {
			return dec(payload)
		}
		return nil, fmt.Errorf("unknown domain event type %q", typ)
	}
	if dec, ok := b.decoders[source]; ok {
		return dec(typ, payload)
	}
	return nil, fmt.Errorf("no decoder for source %q", source)
}

// Start renews the subscriber registry and runs the group-committing
// writers: concurrent Receives are written in one transaction, one
// multi-row statement per table. SQLite has one writer; MySQL two, so a
// commit's fsync overlaps the next batch. (Four made smaller groups: at
// 600 callbacks a second, 1.7 callbacks a transaction and half of all the
// statements an add costs; two took processed p99 at 800/s from 2.5 s to
// 1.8–2.0 s with the same acknowledgements.)
func (b *Bus) Start(ctx context.Context) error {
	if err := b.syncRegistry(ctx); err != nil {
		return fmt.Errorf("register subscribers: %w", err)
	}
	n := 2
	if b.db.SingleWriter() {
		n = 1
	}
	for i := 0; i < n; i++ {
		b.writers.Add(1)
		go b.writeLoop()
	}
	b.writers.Add(1)
	go b.registryLoop()
	b.started = true
	return nil
}

// Stop drains pending receives and stops the writers.
func (b *Bus) Stop() {
	if !b.started {
		return
	}
	close(b.closing)
	b.writers.Wait()
}

func (b *Bus) registryLoop() {
	defer b.writers.Done()
	t := time.NewTicker(b.RegistryRefresh)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := b.syncRegistry(ctx); err != nil {
				b.log.Warn("subscriber registry not refreshed", "err", err)
			}
			cancel()
		}
	}
}

// syncRegistry records this instance's subscribers and reads everyone's.
func (b *Bus) syncRegistry(ctx context.Context) error {
	now := b.now()
	mine := b.Subscribers()
	if len(mine) > 0 {
		q := b.db.UpsertRows("bus_subscribers", []string{"name", "lane", "types", "seen_at"}, []string{"name"}, []string{"lane", "types", "seen_at"}, len(mine))
		args := make([]any, 0, 4*len(mine))
		for _, s := range mine {
			types, _ := json.Marshal(s.Types)
			args = append(args, s.Name, int(s.Lane), string(types), qsql.Millis(now))
		}
		if _, err := b.db.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	var rows []struct {
		Name  string `db:"name"`
		Lane  int    `db:"lane"`
		Types string `db:"types"`
	}
	if err := b.db.SelectContext(ctx, &rows, `SELECT name, lane, types FROM bus_subscribers WHERE seen_at >= ?`,
		qsql.Millis(now.Add(-b.RegistryRetire))); err != nil {
		return err
	}
	remote := map[string]remoteSub{}
	for _, r := range rows {
		var types []string
		if err := json.Unmarshal([]byte(r.Types), &types); err != nil {
			continue
		}
		remote[r.Name] = remoteSub{Lane: Lane(r.Lane), Types: types}
	}
	b.mu.Lock()
	for _, s := range b.subs {
		remote[s.name] = remoteSub{Lane: s.lane, Types: s.types}
	}
	b.remote = remote
	b.mu.Unlock()
	return nil
}

// Wake tells the local dispatcher there is new work (after a commit that
// added deliveries).
func (b *Bus) Wake() {
	b.wake(LaneFast)
	b.wake(LaneNormal)
}

func (b *Bus) wake(l Lane) {
	select {
	case b.notify[l] <- struct{}{}:
	default:
	}
}

// DomainKey is the dedup key of a domain event: its type and the publisher's key.
func DomainKey(typ, key string) string {
	h := sha256.Sum256([]byte("domain\x00" + typ + "\x00" + key))
	return hex.EncodeToString(h[:])
}

// Publish writes a domain event and its deliveries inside the caller's
// transaction (the outbox): they exist exactly when the change that caused
// them does. The local dispatcher is woken after the commit. Publishing a
// key already published stores nothing.
func (b *Bus) Publish(ctx context.Context, tx *qsql.Tx, corpID string, ev Domain) error {
	return b.PublishAll(ctx, tx, []Published{{CorpID: corpID, Event: ev}})
}

// Published is a domain event of a corp, for PublishAll.
type Published struct {
	CorpID string
	Event  Domain
}

// PublishAll is Publish for many events, in three statements.
func (b *Bus) PublishAll(ctx context.Context, tx *qsql.Tx, evs []Published) error {
	if len(evs) == 0 {
		return nil
	}
	now := qsql.Millis(b.now())
	ins := make([]*Incoming, len(evs))
	args := make([]any, 0, len(evs)*len(eventCols))
	for i, p := range evs {
		ev := p.Event
		payload, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode %s: %w", ev.EventType(), err)
		}
		in := &Incoming{CorpID: p.CorpID, Source: SourceDomain, Type: ev.EventType(), Subject: ev.EventSubject(),
			DedupKey: DomainKey(ev.EventType(), ev.EventKey()), Payload: payload, OccurredAt: ev.EventTime(), Data: ev}
		b.mu.RLock()
		_, known := b.domain[in.Type]
		b.mu.RUnlock()
		if !known {
			return fmt.Errorf("jobs: domain event %s is not registered (jobs.RegisterEvent)", in.Type)
		}
		ins[i] = in
		args = append(args, eventArgs(in, now)...)
	}
	q := b.db.InsertIgnoreRows("bus_events", eventCols, []string{"dedup_key", "corp_id"}, len(ins))
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("publish %s: %w", ins[0].Type, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // all published before
	}
	ids, fresh, err := storedIDs(ctx, b.db, tx, res, ins, now)
	if err != nil {
		return fmt.Errorf("read published ids: %w", err)
	}
	var dargs []any
	var lanes lanes
	n := 0
	for _, in := range ins {
		k := eventKey{in.CorpID, in.DedupKey}
		id, ok := ids[k]
		if !ok || !fresh[k] { // published before, by an earlier attempt: no new deliveries
			continue
		}
		delete(ids, k) // the same event twice in one call
		for _, t := range b.targets(in) {
			dargs = append(dargs, deliveryArgs(id, in, t, now)...)
			lanes[t.lane] = true
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, b.db.InsertIgnoreRows("bus_deliveries", deliveryCols, []string{"event_id", "subscriber"}, n), dargs...); err != nil {
		return fmt.Errorf("publish %s deliveries: %w", ins[0].Type, err)
	}
	tx.AfterCommit(func() { b.wakeLanes(lanes) })
	return nil
}

// lanes says which lanes got deliveries.
type lanes [2]bool

// wakeLanes wakes the claimers of the lanes that got deliveries only: a
// claim that finds nothing is a query all the same (the fast lane's
// claimer, woken by every add that has no welcome, was three in four
// claim queries under load).
func (b *Bus) wakeLanes(ls lanes) {
	for l, ok := range ls {
		if ok {
			b.wake(Lane(l))
		}
	}
}

var eventCols = []string{"corp_id", "source", "dedup_key", "event", "change_type", "type", "subject", "payload", "event_time", "received_at"}
var deliveryCols = []string{"event_id", "corp_id", "subscriber", "subject", "occurred_at", "lane", "status", "attempts", "available_at", "lease_owner", "lease_token", "created_at", "updated_at"}

func eventArgs(in *Incoming, now int64) []any {
	family, kind, _ := strings.Cut(in.Type, "/")
	return []any{in.CorpID, in.Source, in.DedupKey, family, kind, in.Type, in.Subject, string(in.Payload), qsql.Millis(in.OccurredAt), now}
}

func deliveryArgs(eventID int64, in *Incoming, t target, now int64) []any {
	return []any{eventID, in.CorpID, t.name, in.Subject, qsql.Millis(in.OccurredAt), int(t.lane), StatusQueued, 0, now, "", "", now, now}
}

type appendReq struct {
	in   *Incoming
	done chan appendResult
}

type appendResult struct {
	duplicate bool
	err       error
}

const maxAppendBatch = 256

// burstReceives is how many Receives waiting at once make a burst: far
// above what a steady few hundred callbacks a second keep waiting (a
// handful), well below what a flood does (one per connection WeCom opens).
const burstReceives = 16

// inBurst reports whether callbacks are arriving faster than they commit.
func (b *Bus) inBurst() bool { return b.receiving.Load() >= burstReceives }

func (b *Bus) writeLoop() {
	defer b.writers.Done()
	batch := make([]*appendReq, 0, maxAppendBatch)
	for {
		var first *appendReq
		select {
		case first = <-b.appends:
		case <-b.closing:
			// Answer whatever is still queued before leaving.
			for {
				select {
				case r := <-b.appends:
					b.flush([]*appendReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxAppendBatch {
			select {
			case r := <-b.appends:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.flush(batch)
	}
}

// Receive durably records an event from outside (a WeCom callback) with a
// delivery for each subscriber that wants it, and returns once committed.
// duplicate is true when the event was already stored (a WeCom retry or
// replay): nothing new is written.
func (b *Bus) Receive(ctx context.Context, in Incoming) (duplicate bool, err error) {
	b.receiving.Add(1)
	defer b.receiving.Add(-1)
	r := &appendReq{in: &in, done: make(chan appendResult, 1)}
	select {
	case b.appends <- r:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-b.closing:
		return false, errors.New("bus is shutting down")
	}
	select {
	case res := <-r.done:
		return res.duplicate, res.err
	case <-ctx.Done():
		// The write may still commit; WeCom's retry will then be a duplicate.
		return false, ctx.Err()
	}
}

func (b *Bus) flush(batch []*appendReq) {
	// The writer's own deadline: the caller's context only bounds its wait.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Rows go in dedup-key order, so concurrent writers lock keys in one
	// order; a deadlock that still happens (other instances) is retried.
	sort.Slice(batch, func(i, j int) bool { return batch[i].in.DedupKey < batch[j].in.DedupKey })
	var dups []bool
	var woken lanes
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if dups, woken, err = b.write(ctx, batch); err == nil || !isDeadlock(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	// The claimers first: a Receive that returns has woken them.
	if err == nil {
		b.wakeLanes(woken)
	} else {
		b.log.Error("bus write failed", "events", len(batch), "err", err)
	}
	for i, r := range batch {
		r.done <- appendResult{duplicate: err == nil && dups[i], err: err}
	}
}

// stamp is the received_at of one write of events: now, or a millisecond
// after this process's previous write when that was in the same
// millisecond, so that a write tells the rows it inserted (its stamp) from
// those an earlier write of the process inserted (three receives of one
// event in one millisecond are one new event and two duplicates).
func (b *Bus) stamp() int64 {
	now := qsql.Millis(b.now())
	for {
		last := b.lastStamp.Load()
		next := max(now, last+1)
		if b.lastStamp.CompareAndSwap(last, next) {
			return next
		}
	}
}

// write inserts the batch's events (skipping known dedup keys) and their
// deliveries in one transaction, and reports which events were already
// there and the lanes it queued deliveries in.
func (b *Bus) write(ctx context.Context, batch []*appendReq) ([]bool, lanes, error) {
	var woken lanes
	now := b.stamp()
	ins := make([]*Incoming, len(batch))
	args := make([]any, 0, len(batch)*len(eventCols))
	for i, r := range batch {
		ins[i] = r.in
		args = append(args, eventArgs(r.in, now)...)
	}
	dups := make([]bool, len(batch))
	// WeCom waits for these rows (the callback's acknowledgement): on SQLite
	// they go before queued background writes.
	err := b.db.WriteTx(qsql.Urgent(ctx), func(tx *qsql.Tx) error {
		q := b.db.InsertIgnoreRows("bus_events", eventCols, []string{"dedup_key", "corp_id"}, len(batch))
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		ids, fresh, err := storedIDs(ctx, b.db, tx, res, ins, now)
		if err != nil {
			return fmt.Errorf("read event ids: %w", err)
		}
		var dargs []any
		n := 0
		seen := map[int64]bool{}
		for i, r := range batch {
			k := eventKey{r.in.CorpID, r.in.DedupKey}
			id, ok := ids[k]
			if !ok {
				return fmt.Errorf("event %s vanished after insert", k.key)
			}
			// A key inserted before this batch, or twice within it, is a duplicate.
			// (Telling "before" by received_at is exact enough for logs and
			// metrics; one row and one set of deliveries per event come from
			// the unique keys, not from this flag.)
			dups[i] = !fresh[k] || seen[id]
			if dups[i] {
				continue
			}
			seen[id] = true
			for _, t := range b.targets(r.in) {
				dargs = append(dargs, deliveryArgs(id, r.in, t, now)...)
				woken[t.lane] = true
				n++
			}
		}
		if n == 0 {
			return nil
		}
		q = b.db.InsertIgnoreRows("bus_deliveries", deliveryCols, []string{"event_id", "subscriber"}, n)
		if _, err := tx.ExecContext(ctx, q, dargs...); err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		return nil
	})
	return dups, woken, err
}

// eventKey is an event's unique key.
type eventKey struct{ corp, key string }

// storedIDs are the ids of the events ins that the insert res (stamped
// received_at now) stored or found already there, by key, and which of
// them it stored (fresh). When it stored every one, they are told by the
// insert itself; otherwise they are read back by dedup key.
func storedIDs(ctx context.Context, db *qsql.DB, tx *qsql.Tx, res dbsql.Result, ins []*Incoming, now int64) (ids map[eventKey]int64, fresh map[eventKey]bool, err error) {
	ids, fresh = make(map[eventKey]int64, len(ins)), make(map[eventKey]bool, len(ins))
	if first, ok := db.InsertedIDs(res, len(ins)); ok {
		for i, in := range ins {
			k := eventKey{in.CorpID, in.DedupKey}
			ids[k], fresh[k] = first+int64(i), true
		}
		return ids, fresh, nil
	}
	keys := make([]string, len(ins))
	for i, in := range ins {
		keys[i] = in.DedupKey
	}
	q, args, err := sqlx.In(`SELECT id, corp_id, dedup_key, received_at FROM bus_events WHERE dedup_key IN (?)`, keys)
	if err != nil {
		return nil, nil, err
	}
	var rows []struct {
		ID         int64  `db:"id"`
		CorpID     string `db:"corp_id"`
		Key        string `db:"dedup_key"`
		ReceivedAt int64  `db:"received_at"`
	}
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(q), args...); err != nil {
		return nil, nil, err
	}
	for _, r := range rows {
		k := eventKey{r.CorpID, r.Key}
		ids[k], fresh[k] = r.ID, r.ReceivedAt == now
	}
	return ids, fresh, nil
}
