// Package journeys is marketing's nurture: segments (who matches a filter,
// kept current as people change) and journeys (durable runs of people
// through a versioned graph of waits, conditions, splits and actions).
//
// It reads people and leads only through the lead pool's service
// (leads.Profiles, leads.CountActivities) and learns of their changes from
// the bus (leads.LeadChanged); it changes them
// only through that service too (stage, status, activities).
//
// Who writes what:
//   - segment_members: a segment's rebuild job (one per segment at a time,
//     by the job's unique key) and the incremental updater (the bus hands one
//     lead's events to one subscriber at a time, in order), and people by
//     hand (pinned rows, which neither touches). Every write of a member row
//     is an upsert of the whole row computed from what was read in the same
//     transaction, and counts change by the difference in that transaction.
//   - journey_runs: enrolment inserts (one active run per journey and lead,
//     by a unique key); an engine claims due runs with a conditional update
//     that pushes due_at to the end of its lease and stamps a token, and
//     every later write of the run is fenced on that token; an event wakes
//     a run waiting for it with a conditional update on its state. None of
//     it needs SKIP LOCKED.
//   - journey_actions: the outcome of a run's action at a step, recorded
//     with the claim's write-back (an upsert by run and step).
//   - journey_messages: a customer message's row, written by the step before
//     WeCom is called (its key is the run and step: a retried step finds it
//     and calls nothing), then settled by the result tracker with a
//     conditional update on its status.
//   - journey_node_stats and the journeys' counters: added to (never set) in
//     the transaction of the moves they count.
//
// Timers of a paused journey are moved a century on (and back on resume),
// so engines never read past them in the due index.
package journeys

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// Leads is what segments and journeys use of the lead pool.
type Leads interface {
	Profiles(ctx context.Context, corp string, after int64, limit int, fields bool) ([]leads.Profile, error)
	ProfilesOf(ctx context.Context, corp string, ids []int64) ([]leads.Profile, error)
	CountActivities(ctx context.Context, corp string, ids []int64, qs []leads.ActivityQuery) (map[int64][]leads.ActivityCount, error)
	ChangeStage(ctx context.Context, corp string, leadID, actor int64, manager bool, to, reason string) (*leads.Lead, error)
	SetStatus(ctx context.Context, corp string, leadID, actor int64, manager bool, status, reason string) (*leads.Lead, error)
	RecordActivities(ctx context.Context, corp string, in []leads.ActivityIn) (leads.ActivitiesResult, error)
	LeadsOfContacts(ctx context.Context, contacts []leads.Contact) (map[leads.Contact]int64, error)
	MoveToPool(ctx context.Context, corp string, leadID, pool, actor int64, reason string) (*leads.Lead, error)
	AdjustScore(ctx context.Context, corp string, leadID int64, points float64, reason, key string) (bool, error)
	FieldDefs(ctx context.Context, corp string) ([]leads.FieldDef, error)
	LeadsOnDay(ctx context.Context, corp, key, day string, after int64, limit int) ([]int64, error)
	LeadsOwnedBy(ctx context.Context, corp string, users []int64, after int64, limit int) ([]int64, error)
	AssignOwner(ctx context.Context, corp string, leadID, user int64, reason string, isUser func(int64) (bool, error)) (string, int64, error)
	CreateTask(ctx context.Context, corp string, actor int64, in leads.TaskIn) (*leads.Task, bool, error)
	GroupsOf(ctx context.Context, corp string, ids []int64) (map[int64][]string, error)
}

// Directory is what journeys use of the WeCom directory mirror: contacts'
// tags (by name, for conditions) and tagging (an action).
type Directory interface {
	TagNamesOf(ctx context.Context, corpID string, externalUserIDs []string) (map[string][]string, error)
	TagContact(ctx context.Context, corpID, userID, externalUserID string, add, remove []string) error
	GroupNames(ctx context.Context, corpID string, ids []string) (map[string]string, error)
}

// Teams maps a corp's users to the names of the teams they are in or
// manage (conditions on "teams" see the lead owner's).
type Teams func(ctx context.Context, corpID string) (map[int64][]string, error)

// SetTeams gives the service the corp's teams.
func (s *Service) SetTeams(t Teams) { s.teams = t }

// SetUsers gives the service how to tell a corp's users (the assign
// action's owner must be one).
func (s *Service) SetUsers(isMember func(ctx context.Context, corpID string, userID int64) (bool, error)) {
	s.isMember = isMember
}

// SetDirectory gives the service the directory mirror.
func (s *Service) SetDirectory(d Directory) { s.dir = d }

// Jobs queues background work (segment rebuilds).
type Jobs interface {
	Enqueue(ctx context.Context, corpID, kind, uniqueKey string, params any, createdBy int64) (int64, error)
}

// Service runs segments and journeys.
type Service struct {
	db        *qsql.DB
	leads     Leads
	calendars configs.Calendars
	log       *slog.Logger
	jobs      Jobs
	clock     atomic.Pointer[func() time.Time]
	graphs    graphCache
	messenger Messenger
	staffOf   StaffOf
	codes     Codes
	media     Media
	teams     Teams
	isMember  func(ctx context.Context, corpID string, userID int64) (bool, error)
	dir       Directory
	engine    *Engine
	leaseFor  time.Duration // 0: leaseFor
	// Webhooks posts a webhook action (nil: http with a timeout).
	webhooks webhookPoster
}

// New returns the service.
func New(db *qsql.DB, l Leads, calendars configs.Calendars, log *slog.Logger) *Service {
	s := &Service{db: db, leads: l, calendars: calendars, log: log, webhooks: newWebhookPoster()}
	s.SetClock(time.Now)
	return s
}

// wakeAfter wakes this instance's engine once tx commits: a run it made
// due should not wait for the next poll.
func (s *Service) wakeAfter(tx *qsql.Tx) {
	if e := s.engine; e != nil {
		tx.AfterCommit(e.Wake)
	}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.clock.Store(&now) }

func (s *Service) now() time.Time { return (*s.clock.Load())() }

// SetJobs gives the service the runner its rebuilds are queued on.
func (s *Service) SetJobs(j Jobs) { s.jobs = j }

// Subscriber is the bus subscriber's name (deliveries are recorded under
// it). One subscriber does both jobs a lead event brings, in order:
// segment membership first, then the runs (entries, waits, goals), so a
// goal on a segment sees the membership the event made. Two subscribers
// cost a delivery row, a claim and a settle more per event, on every add.
const Subscriber = "journeys"

// JobRebuild is the job kind that rebuilds a segment.
const JobRebuild = "segment.rebuild"

// Subscribe registers the subscriber on the bus.
func (s *Service) Subscribe(b *jobs.Bus) {
	jobs.On(b, jobs.Subscription[any]{
		Name: Subscriber,
		Types: []string{leads.LeadChanged{}.EventType(), leads.ActivitiesRecorded{}.EventType(), directory.ContactSaved{}.EventType(),
			leads.LeadsRescored{}.EventType(), auth.TeamsChanged{}.EventType()},
		HandleBatch: func(ctx context.Context, items []jobs.Item[any]) error {
			evs := make([]any, len(items))
			for i, it := range items {
				evs[i] = it.Event
			}
			return s.handleLeadEvents(ctx, current(evs))
		},
		Handle: func(ctx context.Context, _ jobs.Delivery, ev any) error {
			return s.handleLeadEvents(ctx, current([]any{ev}))
		},
	})
}

// handleLeadEvents updates segment membership, then moves runs. Both are
// safe to repeat: a retried delivery re-evaluates and re-checks.
func (s *Service) handleLeadEvents(ctx context.Context, evs []any) error {
	v, err := s.viewOf(ctx, evs)
	if err != nil {
		return err
	}
	if err := s.updateMembership(ctx, evs, v); err != nil {
		return err
	}
	return s.handleEvents(ctx, evs, v)
}
