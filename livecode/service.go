package livecode

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/kv"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// Directory is what live codes need from the WeCom directory mirror.
type Directory interface {
	StaffNames(ctx context.Context, corpID string, ids []string) (map[string]string, error)
	MissingTags(ctx context.Context, corpID string, ids []string) ([]string, error)
	ContactName(ctx context.Context, corpID, externalUserID string) (string, error)
	FollowersOf(ctx context.Context, corpID, userID string) ([]string, error)
	GroupsOwnedBy(ctx context.Context, corpID, userID string) ([]string, error)
	GroupMemberCounts(ctx context.Context, corpID string, chatIDs []string) (map[string]int, error)
	StaffDepartments(ctx context.Context, corpID, userID string) ([]int64, error)
}

// Service runs live codes.
type Service struct {
	store     *store
	db        *qsql.DB
	kv        *kv.Store
	wc        wecom.Client
	dir       Directory
	calendars map[string]*configs.Calendar
	log       *slog.Logger
	publicURL string
	now       func() time.Time

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
}

// MediaStore is what the welcome needs from wecom/media.
type MediaStore interface {
	MediaID(ctx context.Context, corp string, fileID int64) (string, error)
	Exists(ctx context.Context, corp string, fileID int64, kinds ...string) (bool, error)
	Data(ctx context.Context, corp string, fileID int64) ([]byte, error)
}

// New returns the service. calendars gives each corp's time zone and work calendar.
func New(db *qsql.DB, kvs *kv.Store, wc wecom.Client, dir Directory, calendars map[string]*configs.Calendar, publicURL string, log *slog.Logger) *Service {
	return &Service{store: &store{db}, db: db, kv: kvs, wc: wc, dir: dir, calendars: calendars, log: log,
		publicURL: strings.TrimRight(publicURL, "/"), now: time.Now, ReservationTTL: 3 * time.Minute, NotifyOnLoss: map[string]bool{}}
}

// SetClock replaces the clock (tests of schedules, caps and the daily reset).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

func (s *Service) calendar(corp string) *configs.Calendar {
	if c := s.calendars[corp]; c != nil {
		return c
	}
	c, _ := configs.CalendarConfig{}.Compile("Asia/Shanghai")
	return c
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

// LandingURL is the code's stable public page.
func (s *Service) LandingURL(c *Code) string { return s.publicURL + "/l/" + c.Slug }

// validate checks the code and its references to staff and tags.
func (s *Service) validate(ctx context.Context, c *Code) error {
	errs := c.validate()
	if c.Mode != ModeJoinWay && len(c.Staff) > 0 && len(c.Staff) <= 100 {
		ids := make([]string, len(c.Staff))
		for i, st := range c.Staff {
			ids[i] = st.UserID
		}
		names, err := s.dir.StaffNames(ctx, c.CorpID, ids)
		if err != nil {
			return err
		}
		for i, st := range c.Staff {
			if _, ok := names[st.UserID]; !ok && st.UserID != "" {
				errs[fmt.Sprintf("staff[%d].userid", i)] = "unknown staff member " + st.UserID
			}
		}
	}
	if id := c.Settings.Welcome.InviteGroupCode; id != 0 {
		g, err := s.store.get(ctx, c.CorpID, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err != nil || g.Kind != KindGroup || g.Status == StatusArchived {
			errs["settings.welcome.invite_group_code"] = "must be a live group code"
		}
	}
	if u := c.Settings.Successor; u != "" {
		names, err := s.dir.StaffNames(ctx, c.CorpID, []string{u})
		if err != nil {
			return err
		}
		if _, ok := names[u]; !ok {
			errs["settings.successor"] = "unknown staff member " + u
		}
	}
	if c.Mode == ModeStores && len(c.Settings.StoreIDs) > 0 {
		stores, err := s.ListStores(ctx, c.CorpID, "")
		if err != nil {
			return err
		}
		have := map[int64]bool{}
		for _, st := range stores {
			have[st.ID] = true
		}
		for i, id := range c.Settings.StoreIDs {
			if !have[id] {
				errs[fmt.Sprintf("settings.store_ids[%d]", i)] = fmt.Sprintf("no store %d", id)
			}
		}
	}
	if err := s.checkFiles(ctx, c, errs); err != nil {
		return err
	}
	for i, mg := range c.Settings.ManualGroups {
		if mg.FileID == 0 {
			continue
		}
		ok := false
		if s.Media != nil {
			var err error
			if ok, err = s.Media.Exists(ctx, c.CorpID, mg.FileID, "image"); err != nil {
				return err
			}
		}
		if !ok {
			errs[fmt.Sprintf("settings.manual_groups[%d].file_id", i)] = fmt.Sprintf("no stored image %d", mg.FileID)
		}
	}
	missing, err := s.dir.MissingTags(ctx, c.CorpID, c.Settings.Tags)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		errs["settings.tags"] = "unknown tags: " + strings.Join(missing, ", ")
	}
	if len(errs) > 0 {
		return &ValidationError{Fields: errs}
	}
	return nil
}

// checkFiles makes sure every stored-file attachment names a file of the right kind.
func (s *Service) checkFiles(ctx context.Context, c *Code, errs map[string]string) error {
	check := func(field string, atts []Attachment) error {
		for i, a := range atts {
			if a.FileID == 0 {
				continue
			}
			kind := a.MsgType
			if kind == "miniprogram" {
				kind = "image"
			}
			ok := false
			if s.Media != nil {
				var err error
				if ok, err = s.Media.Exists(ctx, c.CorpID, a.FileID, kind); err != nil {
					return err
				}
			}
			if !ok {
				errs[fmt.Sprintf("%s[%d].file_id", field, i)] = fmt.Sprintf("no stored %s file %d", kind, a.FileID)
			}
		}
		return nil
	}
	if err := check("settings.welcome.attachments", c.Settings.Welcome.Attachments); err != nil {
		return err
	}
	for i, v := range c.Settings.Welcome.Variants {
		if err := check(fmt.Sprintf("settings.welcome.variants[%d].attachments", i), v.Attachments); err != nil {
			return err
		}
	}
	return nil
}

func normalize(c *Code) {
	c.Kind = KindChannel
	if c.Mode == ModeStores {
		c.Kind = KindStore
	}
	if c.Mode == ModeJoinWay {
		c.Kind = KindGroup
		for i := range c.Settings.Groups {
			if c.Settings.Groups[i].Threshold == 0 {
				c.Settings.Groups[i].Threshold = maxQRJoin
			}
		}
	}
	c.Name = strings.TrimSpace(c.Name)
	for i := range c.Staff {
		if c.Staff[i].Weight == 0 {
			c.Staff[i].Weight = 1
		}
	}
	if c.Settings.SkipVerify == "" {
		c.Settings.SkipVerify = "always"
	}
}

// Create validates a code, creates its WeCom contact ways, and stores it.
// When any step fails, the ways already created are deleted again: nothing
// half-created is left on WeCom or in the database.
func (s *Service) Create(ctx context.Context, c Code) (*Code, error) {
	normalize(&c)
	c.Status = StatusActive
	if err := s.validate(ctx, &c); err != nil {
		return nil, err
	}
	now := s.now()
	c.Slug = newSlug()
	c.CreatedAt, c.UpdatedAt = qsql.Millis(now), qsql.Millis(now)
	// The id names the WeCom state, so the row comes first (inactive), then
	// the ways, then the row is completed; a failure removes both.
	c.Status = StatusArchived
	if err := s.store.save(ctx, &c); err != nil {
		return nil, err
	}
	created, err := s.createWays(ctx, &c)
	if err == nil {
		c.Status = StatusActive
		err = s.store.save(ctx, &c)
	}
	if err != nil {
		s.deleteWays(context.WithoutCancel(ctx), c.CorpID, created)
		s.db.ExecContext(context.WithoutCancel(ctx), `DELETE FROM live_code_staff WHERE code_id = ?`, c.ID)
		s.db.ExecContext(context.WithoutCancel(ctx), `DELETE FROM live_codes WHERE id = ?`, c.ID)
		return nil, err
	}
	c.LandingURL = s.LandingURL(&c)
	if c.Mode == ModeWeComQR || c.Mode == ModeJoinWay || c.Mode == ModeLink {
		if err := s.Reconcile(ctx, c.CorpID, c.ID); err != nil {
			s.log.Warn("first reconcile of a new code failed; the minute reconciler will retry", "code", c.ID, "err", err)
		}
	}
	return s.Get(ctx, c.CorpID, c.ID)
}

// createWays makes the WeCom contact ways a code needs and returns their config ids.
func (s *Service) createWays(ctx context.Context, c *Code) ([]string, error) {
	var created []string
	skip := true
	switch c.Mode {
	case ModeWeComQR:
		users := s.backupOrAll(c)
		c.WeComUsers = users
		id, qr, err := s.wc.AddContactWay(ctx, c.CorpID, wecom.ContactWay{Type: 2, Scene: 2, State: codeState(c.ID), User: users,
			SkipVerify: &skip, Remark: truncate(c.Name, 30)})
		if err != nil {
			return created, fmt.Errorf("create WeCom contact way: %w", err)
		}
		created = append(created, id)
		c.ConfigID, c.QRCode = id, qr
	case ModeLink:
		users := s.backupOrAll(c)
		l, err := s.wc.CreateAcquisitionLink(ctx, c.CorpID, wecom.AcquisitionLink{LinkName: truncate(c.Name, 30), Users: users, SkipVerify: true})
		if err != nil {
			return created, fmt.Errorf("create WeCom acquisition link: %w", err)
		}
		created = append(created, "link:"+l.LinkID)
		// customer_channel comes back as the add's State.
		c.ConfigID, c.QRCode, c.WeComUsers = l.LinkID, linkURL(l.URL, codeState(c.ID)), users
	case ModeJoinWay:
		if len(c.Settings.Groups) == 0 {
			break // manual groups only: nothing on WeCom
		}
		chats, err := s.openGroups(ctx, c)
		if err != nil {
			return created, err
		}
		if len(chats) == 0 {
			return created, &ValidationError{Fields: map[string]string{"settings.groups": "every group is already at its threshold"}}
		}
		id, err := s.wc.AddJoinWay(ctx, c.CorpID, s.joinWay(c, chats))
		if err != nil {
			return created, fmt.Errorf("create WeCom join way: %w", err)
		}
		created = append(created, "join:"+id)
		w, err := s.wc.GetJoinWay(ctx, c.CorpID, id)
		if err != nil {
			return created, fmt.Errorf("read WeCom join way: %w", err)
		}
		c.ConfigID, c.QRCode, c.WeComUsers = id, w.QRCode, chats
		if c.Settings.GroupWelcome != "" {
			tid, err := s.wc.AddGroupWelcomeTemplate(ctx, c.CorpID, c.Settings.GroupWelcome)
			if err != nil {
				return created, fmt.Errorf("create group welcome template: %w", err)
			}
			created = append(created, "gwt:"+tid)
			c.Settings.GroupWelcomeTemplate = tid
		}
	case ModeRotating:
		for i := range c.Staff {
			st := &c.Staff[i]
			st.State = staffState(c.ID, st.UserID)
			id, qr, err := s.wc.AddContactWay(ctx, c.CorpID, wecom.ContactWay{Type: 1, Scene: 2, State: st.State, User: []string{st.UserID},
				SkipVerify: &skip, Remark: truncate(c.Name, 30)})
			if err != nil {
				return created, fmt.Errorf("create WeCom contact way for %s: %w", st.UserID, err)
			}
			created = append(created, id)
			st.ConfigID, st.QRCode = id, qr
		}
	}
	return created, nil
}

func (s *Service) deleteWays(ctx context.Context, corp string, ids []string) {
	for _, id := range ids {
		var err error
		if join, ok := strings.CutPrefix(id, "join:"); ok {
			err = s.wc.DeleteJoinWay(ctx, corp, join)
		} else if tid, ok := strings.CutPrefix(id, "gwt:"); ok {
			err = s.wc.DeleteGroupWelcomeTemplate(ctx, corp, tid)
		} else if link, ok := strings.CutPrefix(id, "link:"); ok {
			err = s.wc.DeleteAcquisitionLink(ctx, corp, link)
		} else {
			err = s.wc.DeleteContactWay(ctx, corp, id)
		}
		if err != nil && !wecom.IsCode(err, wecom.CodeContactWayNotFound) {
			s.log.Error("could not delete a WeCom contact way; delete it by hand", "corp", corp, "config_id", id, "err", err)
		}
	}
}

// backupOrAll is a way's user list before the first reconcile: every non-backup staff member.
func (s *Service) backupOrAll(c *Code) []string {
	var users []string
	for _, st := range c.Staff {
		if !st.Backup {
			users = append(users, st.UserID)
		}
	}
	sort.Strings(users)
	return users
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

// Update replaces a code's editable fields (name, channel, staff, settings).
// Staff added to a rotating code get their own ways; removed staff's ways are deleted.
func (s *Service) Update(ctx context.Context, corp string, id int64, in Code) (*Code, error) {
	old, err := s.store.get(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if old.Status == StatusArchived {
		return nil, ErrArchived
	}
	next := *old
	next.Name, next.Channel, next.Staff, next.Settings = in.Name, in.Channel, in.Staff, in.Settings
	if in.OwnerUserID != 0 {
		next.OwnerUserID = in.OwnerUserID
	}
	normalize(&next)
	if err := s.validate(ctx, &next); err != nil {
		return nil, err
	}
	var created, obsolete []string
	if next.Mode == ModeJoinWay {
		// The template id is Qiflow's bookkeeping, not an input.
		next.Settings.GroupWelcomeTemplate = old.Settings.GroupWelcomeTemplate
		if err := s.syncGroupWelcome(ctx, &next, &created, &obsolete); err != nil {
			return nil, err
		}
	}
	if next.Mode == ModeRotating {
		prev := map[string]CodeStaff{}
		for _, st := range old.Staff {
			prev[st.UserID] = st
		}
		skip := true
		for i := range next.Staff {
			st := &next.Staff[i]
			if p, ok := prev[st.UserID]; ok && p.ConfigID != "" {
				st.State, st.ConfigID, st.QRCode = p.State, p.ConfigID, p.QRCode
				delete(prev, st.UserID)
				continue
			}
			st.State = staffState(next.ID, st.UserID)
			cid, qr, err := s.wc.AddContactWay(ctx, corp, wecom.ContactWay{Type: 1, Scene: 2, State: st.State, User: []string{st.UserID}, SkipVerify: &skip, Remark: truncate(next.Name, 30)})
			if err != nil {
				s.deleteWays(context.WithoutCancel(ctx), corp, created)
				return nil, fmt.Errorf("create WeCom contact way for %s: %w", st.UserID, err)
			}
			created = append(created, cid)
			st.ConfigID, st.QRCode = cid, qr
		}
		for _, p := range prev {
			obsolete = append(obsolete, p.ConfigID)
		}
	}
	next.UpdatedAt = qsql.Millis(s.now())
	if err := s.store.save(ctx, &next); err != nil {
		s.deleteWays(context.WithoutCancel(ctx), corp, created)
		return nil, err
	}
	s.deleteWays(ctx, corp, obsolete)
	if next.Mode == ModeWeComQR || next.Mode == ModeJoinWay || next.Mode == ModeLink {
		if err := s.Reconcile(ctx, corp, id); err != nil {
			s.log.Warn("reconcile after edit failed; the minute reconciler will retry", "code", id, "err", err)
		}
	}
	return s.Get(ctx, corp, id)
}

// SetStatus pauses, resumes or archives a code. Archiving deletes its WeCom ways.
func (s *Service) SetStatus(ctx context.Context, corp string, id int64, status string) (*Code, error) {
	c, err := s.store.get(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if c.Status == StatusArchived {
		return nil, ErrArchived
	}
	switch status {
	case StatusActive, StatusPaused, StatusArchived:
	default:
		return nil, &ValidationError{Fields: map[string]string{"status": "must be active, paused or archived"}}
	}
	c.Status, c.UpdatedAt = status, qsql.Millis(s.now())
	if status == StatusArchived {
		ways := []string{}
		if t := c.Settings.GroupWelcomeTemplate; t != "" {
			ways = append(ways, "gwt:"+t)
		}
		if c.ConfigID != "" && c.Mode == ModeJoinWay {
			ways = append(ways, "join:"+c.ConfigID)
		} else if c.ConfigID != "" && c.Mode == ModeLink {
			ways = append(ways, "link:"+c.ConfigID)
		} else if c.ConfigID != "" {
			ways = append(ways, c.ConfigID)
		}
		for _, st := range c.Staff {
			if st.ConfigID != "" {
				ways = append(ways, st.ConfigID)
			}
		}
		s.deleteWays(ctx, corp, ways)
	}
	if err := s.store.save(ctx, c); err != nil {
		return nil, err
	}
	if c.Mode != ModeStores && status != StatusArchived {
		if err := s.Reconcile(ctx, corp, id); err != nil {
			s.log.Warn("reconcile after status change failed; the minute reconciler will retry", "code", id, "err", err)
		}
	}
	return s.Get(ctx, corp, id)
}

// inPeriod says whether the code adds staff now: active and inside its validity.
func inPeriod(c *Code, now time.Time) bool {
	if c.Status != StatusActive {
		return false
	}
	if c.Settings.ValidFrom != nil && now.Before(*c.Settings.ValidFrom) {
		return false
	}
	if c.Settings.ValidUntil != nil && !now.Before(*c.Settings.ValidUntil) {
		return false
	}
	return true
}

// Open says whether the code adds staff now (active and inside its validity):
// landing pages show a clear closed page otherwise.
func (s *Service) Open(c *Code) bool { return inPeriod(c, s.now()) }

// onDuty lists the non-backup staff the schedule puts on duty at now.
func (s *Service) onDuty(c *Code, now time.Time) []CodeStaff {
	cal := s.calendar(c.CorpID)
	local := now.In(cal.Location())
	weekday := local.Weekday()
	sch := c.Settings.Schedule
	var out []CodeStaff
	if len(sch.Slots) == 0 {
		for _, st := range c.Staff {
			if !st.Backup {
				out = append(out, st)
			}
		}
		return out
	}
	if sch.UseCalendar {
		if !cal.IsWorkday(now) {
			return nil
		}
		if weekday == time.Saturday || weekday == time.Sunday {
			weekday = time.Monday // a make-up workday follows Monday's slots
		}
	}
	on := map[string]bool{}
	for _, slot := range sch.Slots {
		if !inSlot(slot.TimeSlot, local, weekday) {
			continue
		}
		if len(slot.Staff) == 0 {
			for _, st := range c.Staff {
				on[st.UserID] = true
			}
		}
		for _, u := range slot.Staff {
			on[u] = true
		}
	}
	for _, st := range c.Staff {
		if !st.Backup && on[st.UserID] {
			out = append(out, st)
		}
	}
	return out
}

func backups(c *Code) []CodeStaff {
	var out []CodeStaff
	for _, st := range c.Staff {
		if st.Backup {
			out = append(out, st)
		}
	}
	return out
}

// Eligible is the staff a code hands customers to now: on duty and under
// today's caps; the backup staff when nobody else is (or when the code is
// paused or out of its validity period).
func (s *Service) Eligible(ctx context.Context, c *Code) (users []string, usingBackup bool, err error) {
	now := s.now()
	if !inPeriod(c, now) {
		return ids(backups(c)), true, nil
	}
	duty := s.onDuty(c, now)
	day := s.calendar(c.CorpID).DayKey(now)
	byCode, overall, err := s.counts(ctx, c.CorpID, day, c.ID, ids(duty))
	if err != nil {
		return nil, false, err
	}
	for _, st := range duty {
		if st.DailyCap > 0 && byCode[st.UserID] >= st.DailyCap {
			continue
		}
		if cap := c.Settings.StaffDailyCaps[st.UserID]; cap > 0 && overall[st.UserID] >= cap {
			continue
		}
		users = append(users, st.UserID)
	}
	if len(users) == 0 {
		return ids(backups(c)), true, nil
	}
	sort.Strings(users)
	return users, false, nil
}

func ids(staff []CodeStaff) []string {
	out := make([]string, len(staff))
	for i, st := range staff {
		out[i] = st.UserID
	}
	sort.Strings(out)
	return out
}

// skipVerifyNow applies the code's skip-verify setting at now.
func (s *Service) skipVerifyNow(c *Code, now time.Time) bool {
	switch c.Settings.SkipVerify {
	case "never":
		return false
	case "window":
		local := now.In(s.calendar(c.CorpID).Location())
		return c.Settings.SkipVerifyWindow != nil && inSlot(*c.Settings.SkipVerifyWindow, local, local.Weekday())
	}
	return true
}

// ErrBusy means another instance is reconciling the code right now.
var ErrBusy = errors.New("code is being reconciled elsewhere")

// Reconcile keeps a WeCom-QR code's contact way equal to the eligible staff:
// it computes the desired list, compares it with what WeCom has, and calls
// update_contact_way only on a difference. It is level-triggered, so running
// it again (each minute, after each add, after an edit) heals any lost trigger.
func (s *Service) Reconcile(ctx context.Context, corp string, id int64) error {
	lock, ok, err := s.kv.TryLock(ctx, s.kv.Key("lc", "reconcile", corp, fmt.Sprint(id)), 30*time.Second)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	c, err := s.store.get(ctx, corp, id)
	if err != nil {
		return err
	}
	if c.Status == StatusArchived {
		return nil
	}
	if c.Mode == ModeRotating {
		return s.reconcileRotatingSkip(ctx, c)
	}
	if c.Mode == ModeJoinWay {
		s.remindManual(ctx, c)
		if c.ConfigID == "" {
			return nil
		}
		return s.reconcileGroups(ctx, c)
	}
	if c.ConfigID == "" {
		return nil
	}
	if c.Mode == ModeLink {
		return s.reconcileLink(ctx, c)
	}

	if c.Mode != ModeWeComQR {
		return nil
	}
	desired, _, err := s.Eligible(ctx, c)
	if err != nil {
		return err
	}
	if len(desired) == 0 {
		// A way needs at least one user; keep the current list rather than break the QR.
		desired = c.WeComUsers
	}
	skip := s.skipVerifyNow(c, s.now())
	have, err := s.wc.GetContactWay(ctx, corp, c.ConfigID)
	if err != nil {
		return fmt.Errorf("get contact way: %w", err)
	}
	current := append([]string(nil), have.User...)
	sort.Strings(current)
	haveSkip := have.SkipVerify == nil || *have.SkipVerify
	if slices.Equal(current, desired) && haveSkip == skip {
		if !slices.Equal(c.WeComUsers, desired) {
			return s.store.setWeComUsers(ctx, id, desired, qsql.Millis(s.now()))
		}
		return nil
	}
	if err := s.wc.UpdateContactWay(ctx, corp, wecom.ContactWay{ConfigID: c.ConfigID, State: codeState(c.ID), User: desired,
		SkipVerify: &skip, Remark: truncate(c.Name, 30)}); err != nil {
		return fmt.Errorf("update contact way: %w", err)
	}
	s.log.Info("contact way users updated", "corp", corp, "code", id, "users", desired)
	return s.store.setWeComUsers(ctx, id, desired, qsql.Millis(s.now()))
}

// ReconcileAll reconciles every WeCom-QR code (the once-a-minute safety net,
// which also covers schedule boundaries and the daily reset).
func (s *Service) ReconcileAll(ctx context.Context) error {
	var errs []error
	if err := s.HandleLeavers(ctx); err != nil {
		errs = append(errs, err)
	}
	codes, err := s.store.reconcilable(ctx)
	if err != nil {
		return err
	}
	for _, c := range codes {
		if err := s.Reconcile(ctx, c.CorpID, c.ID); err != nil && !errors.Is(err, ErrBusy) {
			errs = append(errs, fmt.Errorf("code %d: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Visit is a landing-page visit to a rotating link: the staff member picked
// and their contact way.
type Visit struct {
	UserID      string
	QRCode      string
	OutOfPeriod bool
	Backup      bool
}

// Visit picks the staff member for one visit of a rotating link, by smooth
// weighted round-robin among the eligible staff (atomically in Redis, shared
// by every instance), reserving a cap slot for a short time.
func (s *Service) Visit(ctx context.Context, c *Code, visitID string) (Visit, error) {
	now := s.now()
	day := s.calendar(c.CorpID).DayKey(now)
	var v Visit
	if inPeriod(c, now) {
		var cands []candidate
		for _, st := range s.onDuty(c, now) {
			cands = append(cands, candidate{UserID: st.UserID, Weight: st.Weight, CodeCap: st.DailyCap, StaffCap: c.Settings.StaffDailyCaps[st.UserID]})
		}
		user, err := s.pick(ctx, c, day, cands, visitID, now)
		if err != nil {
			return v, err
		}
		v.UserID = user
	} else {
		v.OutOfPeriod = true
	}
	if v.UserID == "" {
		var cands []candidate
		for _, st := range backups(c) {
			cands = append(cands, candidate{UserID: st.UserID, Weight: max(st.Weight, 1)})
		}
		user, err := s.pick(ctx, c, day, cands, visitID, now)
		if err != nil {
			return v, err
		}
		v.UserID, v.Backup = user, true
	}
	for _, st := range c.Staff {
		if st.UserID == v.UserID {
			v.QRCode = st.QRCode
		}
	}
	return v, nil
}

// linkURL adds the customer_channel that names the code to an acquisition link.
func linkURL(u, state string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "customer_channel=" + state
}

// reconcileLink keeps an acquisition link's staff equal to the eligible staff.
func (s *Service) reconcileLink(ctx context.Context, c *Code) error {
	desired, _, err := s.Eligible(ctx, c)
	if err != nil {
		return err
	}
	if len(desired) == 0 {
		desired = c.WeComUsers
	}
	have, err := s.wc.GetAcquisitionLink(ctx, c.CorpID, c.ConfigID)
	if err != nil {
		return fmt.Errorf("get acquisition link: %w", err)
	}
	current := append([]string(nil), have.Users...)
	sort.Strings(current)
	if slices.Equal(current, desired) {
		return nil
	}
	if err := s.wc.UpdateAcquisitionLink(ctx, c.CorpID, wecom.AcquisitionLink{LinkID: c.ConfigID, LinkName: truncate(c.Name, 30), Users: desired, SkipVerify: s.skipVerifyNow(c, s.now())}); err != nil {
		return fmt.Errorf("update acquisition link: %w", err)
	}
	return s.store.setWeComUsers(ctx, c.ID, desired, qsql.Millis(s.now()))
}

// syncGroupWelcome creates, edits or deletes the group code's welcome template.
func (s *Service) syncGroupWelcome(ctx context.Context, c *Code, created, obsolete *[]string) error {
	text, tid := c.Settings.GroupWelcome, c.Settings.GroupWelcomeTemplate
	switch {
	case text == "" && tid != "":
		*obsolete = append(*obsolete, "gwt:"+tid)
		c.Settings.GroupWelcomeTemplate = ""
	case text != "" && tid == "":
		id, err := s.wc.AddGroupWelcomeTemplate(ctx, c.CorpID, text)
		if err != nil {
			return fmt.Errorf("create group welcome template: %w", err)
		}
		*created = append(*created, "gwt:"+id)
		c.Settings.GroupWelcomeTemplate = id
	case text != "":
		if err := s.wc.EditGroupWelcomeTemplate(ctx, c.CorpID, tid, text); err != nil {
			return fmt.Errorf("edit group welcome template: %w", err)
		}
	}
	return nil
}

// reconcileRotatingSkip applies the skip-verify setting (never, or a daily
// window) to a rotating code's single-person ways. The last value applied is
// kept in Redis, so ways are only updated when it changes.
func (s *Service) reconcileRotatingSkip(ctx context.Context, c *Code) error {
	want := "0"
	if s.skipVerifyNow(c, s.now()) {
		want = "1"
	}
	key := s.kv.Key("lc", "skip", c.CorpID, fmt.Sprint(c.ID))
	have, err := s.kv.Get(ctx, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if have == "" {
		have = "1" // ways are created with skip_verify on
	}
	if have == want {
		return nil
	}
	skip := want == "1"
	for _, st := range c.Staff {
		if st.ConfigID == "" {
			continue
		}
		if err := s.wc.UpdateContactWay(ctx, c.CorpID, wecom.ContactWay{ConfigID: st.ConfigID, State: st.State, User: []string{st.UserID},
			SkipVerify: &skip, Remark: truncate(c.Name, 30)}); err != nil {
			return fmt.Errorf("update way of %s: %w", st.UserID, err)
		}
	}
	return s.kv.Set(ctx, key, want, 0).Err()
}
