// Package leads is the lead pool (线索池/公海): people and their identities,
// one lead per person and corp, pools of unowned leads, and the claims and
// releases by which SDRs take leads from a pool and give them back. Every
// change of a lead is in its history with who made it and why.
//
// Who writes what: intake (the bus subscriber on livecode.ContactAdded)
// creates people, identities and leads; Claim and Release change a lead's
// owner and the SDR's claim counters, each in one transaction of
// conditional updates, so two SDRs racing for a lead leave it with one
// owner and no cap is exceeded, on MySQL as on SQLite, with or without
// SKIP LOCKED. Every SQL statement is in store.go and store_people.go.
package leads

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// Stages of a lead. This slice of the lifecycle moves none automatically
// yet; claims and releases keep the stage.
const (
	StageLead         = "lead"
	StageMQL          = "mql"
	StageSAL          = "sal"
	StageSQL          = "sql"
	StageOpportunity  = "opportunity"
	StageCustomer     = "customer"
	StageNurture      = "nurture"
	StageDisqualified = "disqualified"
)

// Stages are the stages in the order of the funnel, for pickers.
var Stages = []string{StageLead, StageMQL, StageSAL, StageSQL, StageOpportunity, StageCustomer, StageNurture, StageDisqualified}

// Grades are the fit grades, best first.
var Grades = []string{"A", "B", "C", "D"}

// Sources of a lead.
const (
	SourceCode   = "code"   // a WeCom add through a live code
	SourceDirect = "direct" // a WeCom add without one
)

// History kinds.
const (
	HistoryCreated  = "created"
	HistoryAdded    = "added" // another WeCom add of the person
	HistoryClaimed  = "claimed"
	HistoryReleased = "released"
)

// Errors a user can act on.
var (
	ErrNotFound       = apperr.NotFound("lead not found")
	ErrPoolNotFound   = apperr.NotFound("pool not found")
	ErrAlreadyClaimed = apperr.Conflict("already_claimed", "the lead was claimed by someone else")
	ErrCapReached     = apperr.Conflict("claim_cap_reached", "you hold as many leads, or have claimed as many today, as this pool allows")
	ErrCooldown       = apperr.Conflict("claim_cooldown", "you released this lead recently; the pool's cool-down has not passed")
	ErrNotOwner       = apperr.Conflict("not_owner", "the lead is not yours")
	ErrChanged        = apperr.Conflict("version_conflict", "the lead changed meanwhile; reload it and try again")
	ErrDisqualified   = apperr.Conflict("disqualified", "the lead is disqualified; move it to nurture before working it again")
)

// Viewer is who reads or acts on leads. An SDR (All false) sees the leads of
// the pools they work (open pools, and pools they are a member of) and the
// leads they own; managers and marketers (All) see every lead of the corp.
type Viewer struct {
	UserID int64
	All    bool
	// Handoffs: a sales rep, who sees the leads handed to them and their own.
	Handoffs bool
	// Team are the users whose leads (owned, or handed to them) a team
	// manager sees besides their own.
	Team []int64
}

// Lead is a person's lead in a corp.
type Lead struct {
	ID          int64  `db:"id" json:"id"`
	CorpID      string `db:"corp_id" json:"corp_id"`
	PersonID    int64  `db:"person_id" json:"person_id"`
	Name        string `db:"name" json:"name"`
	PoolID      int64  `db:"pool_id" json:"pool_id"`
	OwnerUserID int64  `db:"owner_user_id" json:"owner_user_id"`
	Stage       string `db:"stage" json:"stage"`
	// Status is where the work on the lead stands within its stage.
	Status       string `db:"status" json:"status"`
	StatusReason string `db:"status_reason" json:"status_reason,omitempty"`
	Source       string `db:"source" json:"source"`
	Channel      string `db:"channel" json:"channel"`
	CodeID       int64  `db:"code_id" json:"code_id,omitempty"`
	StaffUserID  string `db:"staff_userid" json:"staff_userid,omitempty"`
	ClaimedAt    *int64 `db:"claimed_at" json:"claimed_at,omitempty"`
	LastTouchAt  *int64 `db:"last_touch_at" json:"last_touch_at,omitempty"`
	// MergedInto is the lead this one was folded into when its person
	// turned out to be another's (0: a live lead).
	MergedInto int64 `db:"merged_into" json:"merged_into,omitempty"`
	Qualification
	FitPoints int `db:"fit_points" json:"fit_points"`
	// Cooling is an MQL whose engagement decayed below the threshold.
	Cooling bool   `db:"cooling" json:"cooling"`
	Grade   string `db:"grade" json:"grade"`
	// Engagement is the score now (decayed since it was last changed).
	Engagement      float64 `db:"-" json:"engagement"`
	EngagementMilli int64   `db:"engagement_milli" json:"-"`
	EngagementAt    int64   `db:"engagement_at" json:"-"`
	Version         int64   `db:"version" json:"version"`
	CreatedAt       int64   `db:"created_at" json:"created_at"`
	UpdatedAt       int64   `db:"updated_at" json:"updated_at"`
	// Fields are the lead's values of the corp's own fields (read with one
	// lead as Get and an upsert answer it, not in lists or other answers).
	Fields map[string]any `db:"-" json:"fields,omitempty"`
}

// HistoryEntry is one change of a lead.
type HistoryEntry struct {
	ID          int64  `db:"id" json:"id"`
	At          int64  `db:"at" json:"at"`
	ActorUserID int64  `db:"actor_user_id" json:"actor_user_id,omitempty"`
	Kind        string `db:"kind" json:"kind"`
	From        string `db:"from_value" json:"from,omitempty"`
	To          string `db:"to_value" json:"to,omitempty"`
	Reason      string `db:"reason" json:"reason,omitempty"`

	eventKey string // the event that made it, recorded once
}

// Pool is a pool of leads and its claim rules (0 = no limit).
type Pool struct {
	ID            int64  `db:"id" json:"id"`
	CorpID        string `db:"corp_id" json:"corp_id"`
	Name          string `db:"name" json:"name"`
	Default       bool   `db:"is_default" json:"default"`
	MaxOpen       int    `db:"max_open" json:"max_open"`             // leads one SDR may hold from it
	MaxClaimsDay  int    `db:"max_claims_day" json:"max_claims_day"` // claims one SDR may make a day
	CooldownHours int    `db:"cooldown_hours" json:"cooldown_hours"` // before a releaser may claim the lead again
	RecycleDays   int    `db:"recycle_days" json:"recycle_days"`     // working days without a follow-up before a claimed lead returns
	// RecycleByGrade overrides RecycleDays for leads of a grade ({"A": 5}).
	RecycleByGrade     map[string]int `db:"-" json:"recycle_by_grade"`
	RecycleByGradeJSON string         `db:"recycle_by_grade" json:"-"`
	// Escalations are notices sent before a lead returns: after so many
	// working days without a follow-up, to its owner or also their manager.
	Escalations     []Escalation `db:"-" json:"escalations"`
	EscalationsJSON string       `db:"escalations" json:"-"`
	CreatedAt       int64        `db:"created_at" json:"created_at"`
	UpdatedAt       int64        `db:"updated_at" json:"updated_at"`
}

// Contacts is the directory mirror's contacts (the backfill pages them).
type Contacts interface {
	ListContacts(ctx context.Context, corpID, after string, limit int) ([]directory.Contact, error)
}

// Service runs the lead pool.
type Service struct {
	// PublicURL is where Qiflow is reached, for links in notices.
	PublicURL string

	db        *qsql.DB
	store     *store
	contacts  Contacts
	calendars configs.Calendars // claims per day count by the corp's local day
	log       *slog.Logger
	clock     atomic.Pointer[func() time.Time] // set by tests while crons run: atomic

	defaultPools sync.Map // corp → its default pool's id (never changes)
	programs     programs // compiled rule conditions
	jobs         Jobs     // where rescoring is queued
	notifier     Notifier // sends notices to staff
	staffOf      StaffOf
	managers     Managers // who manages whom, for SLA breaches and escalations
	rescorePage  int      // leads a rescore transaction takes (tests make it small)
}

// New returns the lead pool over db.
func New(db *qsql.DB, contacts Contacts, calendars configs.Calendars, log *slog.Logger) *Service {
	s := &Service{db: db, store: &store{db: db}, contacts: contacts, calendars: calendars, log: log, rescorePage: 2000}
	if db.SingleWriter() {
		s.rescorePage = 500 // SQLite's one writer is not held long
	}
	s.SetClock(time.Now)
	return s
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.clock.Store(&now) }

// now is the service's clock.
func (s *Service) now() time.Time { return (*s.clock.Load())() }

// SubscriberIntake is the bus subscriber that turns WeCom adds into leads.
const SubscriberIntake = "leads.intake"

// Subscribe registers intake on the bus.
// It also registers the events the lead pool publishes (LeadChanged,
// LeadsRescored), which it publishes from then on, and ActivitiesRecorded,
// which earlier versions published.
func (s *Service) Subscribe(b *jobs.Bus) {
	jobs.RegisterEvent[LeadChanged](b)
	jobs.RegisterEvent[ActivitiesRecorded](b)
	jobs.RegisterEvent[LeadsRescored](b)
	s.store.bus = b
	s.subscribeIntake(b)
	s.subscribeGroups(b)
}
