package livecode

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/kv"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// Directory is what live codes need from the WeCom directory mirror.
type Directory interface {
	StaffNames(ctx context.Context, corpID string, ids []string) (map[string]string, error)
	MissingTags(ctx context.Context, corpID string, ids []string) ([]string, error)
	SyncTags(ctx context.Context, corpID string) error
	ContactName(ctx context.Context, corpID, externalUserID string) (string, error)
	RefreshContact(ctx context.Context, corpID, externalUserID string) error
	FollowersOf(ctx context.Context, corpID, userID string) ([]string, error)
	GroupsOwnedBy(ctx context.Context, corpID, userID string) ([]string, error)
	GroupMemberCounts(ctx context.Context, corpID string, chatIDs []string) (map[string]int, error)
	StaffDepartments(ctx context.Context, corpID, userID string) ([]int64, error)
}

// MediaStore is what the welcome needs from wecom/media.
type MediaStore interface {
	MediaID(ctx context.Context, corp string, fileID int64) (string, error)
	Exists(ctx context.Context, corp string, fileID int64, kinds ...string) (bool, error)
	Data(ctx context.Context, corp string, fileID int64) ([]byte, error)
}

// Service runs live codes.
type Service struct {
	store     *store
	db        *qsql.DB
	kv        *kv.Store
	wc        wecom.Client
	dir       Directory
	bus       *jobs.Bus
	calendars map[string]*configs.Calendar
	log       *slog.Logger
	publicURL string
	clock     atomic.Pointer[func() time.Time] // set by tests while crons run: atomic
	owner     string

	// ReservationTTL is how long a rotating-link visit holds a cap slot.
	ReservationTTL time.Duration
	// NotifyOnLoss sends the staff member an app message when a customer deletes them, per corp.
	NotifyOnLoss map[string]bool
	// Media gives stored files their WeCom media ids (welcome attachments).
	Media MediaStore
	// DepartmentSuccessors name, per corp and department, who takes over the
	// customers of staff who leave when their code names no successor.
	DepartmentSuccessors map[string]map[int64]string
	// OwnerStaff returns the WeCom staff id of a user (owner alerts), or "".
	OwnerStaff func(ctx context.Context, corp string, userID int64) (string, error)
	// DriftEvery is how often a code's WeCom side is read back and compared
	// with what Qiflow set (otherwise reconciling makes no WeCom call unless
	// something changed).
	DriftEvery time.Duration
	// ReconcilePoll is how often the reconciler looks for due codes other
	// instances made due.
	ReconcilePoll time.Duration

	reconciler reconciler
}

// New returns the service. calendars gives each corp's time zone and work
// calendar; owner names this instance in reconcile claims.
func New(db *qsql.DB, kvs *kv.Store, wc wecom.Client, dir Directory, calendars map[string]*configs.Calendar, publicURL string, log *slog.Logger) *Service {
	s := &Service{store: &store{db}, db: db, kv: kvs, wc: wc, dir: dir, calendars: calendars, log: log,
		publicURL: strings.TrimRight(publicURL, "/"), ReservationTTL: 3 * time.Minute, NotifyOnLoss: map[string]bool{},
		DriftEvery: time.Hour, ReconcilePoll: 2 * time.Second}
	s.reconciler.wake = make(chan struct{}, 1)
	s.SetClock(time.Now)
	return s
}

// SetClock replaces the clock (tests of schedules, caps and the daily reset).
func (s *Service) SetClock(now func() time.Time) { s.clock.Store(&now) }

// now is the service's clock.
func (s *Service) now() time.Time { return (*s.clock.Load())() }

func (s *Service) calendar(corp string) *configs.Calendar {
	return configs.Calendars(s.calendars).For(corp)
}

func newSlug() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// state names the code (and, for a single-person way, the staff member) in
// WeCom's 30-character state: "lc<id>" or "lc<id>_<hash of userid>".
func codeState(id int64) string { return fmt.Sprintf("lc%d", id) }

func staffState(id int64, userID string) string {
	h := sha256.Sum256([]byte(userID))
	return fmt.Sprintf("lc%d_%s", id, hex.EncodeToString(h[:3]))
}

// ParseState returns the code id a WeCom state names, or 0.
func ParseState(state string) int64 {
	rest, ok := strings.CutPrefix(state, "lc")
	if !ok {
		return 0
	}
	if i := strings.IndexByte(rest, '_'); i >= 0 {
		rest = rest[:i]
	}
	var id int64
	if _, err := fmt.Sscanf(rest, "%d", &id); err != nil || fmt.Sprint(id) != rest {
		return 0
	}
	return id
}

// LandingURL is the code's stable public page: /l/ for channel codes, /g/
// for group codes, /s/ for store codes.
func (s *Service) LandingURL(c *Code) string {
	switch c.Kind {
	case KindGroup:
		return s.publicURL + "/g/" + c.Slug
	case KindStore:
		return s.publicURL + "/s/" + c.Slug
	}
	return s.publicURL + "/l/" + c.Slug
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

// Get returns a code of the corp.
func (s *Service) Get(ctx context.Context, corp string, id int64) (*Code, error) {
	c, err := s.store.get(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	c.LandingURL = s.LandingURL(c)
	return c, nil
}

// GetBySlug returns a code by its public slug (landing pages).
func (s *Service) GetBySlug(ctx context.Context, slug string) (*Code, error) {
	return s.store.getBySlug(ctx, slug)
}

// List returns codes by filter.
func (s *Service) List(ctx context.Context, f ListFilter) ([]*Code, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	codes, err := s.store.list(ctx, f)
	for _, c := range codes {
		c.LandingURL = s.LandingURL(c)
	}
	return codes, err
}

// tellOwner sends the code's owner an app message, when they are linked to a staff id.
func (s *Service) tellOwner(ctx context.Context, c *Code, text string) {
	if s.OwnerStaff == nil {
		return
	}
	staff, err := s.OwnerStaff(ctx, c.CorpID, c.OwnerUserID)
	if err != nil || staff == "" {
		return
	}
	if err := s.wc.SendAppMessage(ctx, c.CorpID, staff, text); err != nil {
		s.log.Warn("owner not told", "code", c.ID, "err", err)
	}
}

// once runs fn unless an effect with key was recorded for the corp; the
// record is written first, so two instances never both run it.
func (s *Service) once(ctx context.Context, corp string, key ...string) (bool, error) {
	return s.store.applyOnce(ctx, s.db, corp, effectKey(key...), qsql.Millis(s.now()))
}

func effectKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}
