package leads

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
)

// Profile is what segments and journeys see of a lead and its person: the
// fields their conditions name (expr tags), read through the lead pool's
// service so no other package reads its tables.
type Profile struct {
	LeadID      int64   `db:"id" expr:"lead_id" json:"lead_id"`
	PersonID    int64   `db:"person_id" expr:"person_id" json:"person_id"`
	Name        string  `db:"name" expr:"name" json:"name"`
	Title       string  `db:"title" expr:"title" json:"title"`
	Region      string  `db:"region" expr:"region" json:"region"`
	Industry    string  `db:"industry" expr:"industry" json:"industry"`
	CompanySize int     `db:"company_size" expr:"company_size" json:"company_size"`
	Budget      string  `db:"budget" expr:"budget" json:"budget"`
	Authority   string  `db:"authority" expr:"authority" json:"authority"`
	Need        string  `db:"need" expr:"need" json:"need"`
	Timeline    string  `db:"timeline" expr:"timeline" json:"timeline"`
	Source      string  `db:"source" expr:"source" json:"source"`
	Channel     string  `db:"channel" expr:"channel" json:"channel"`
	CodeID      int64   `db:"code_id" expr:"code_id" json:"code_id"`
	StaffUserID string  `db:"staff_userid" expr:"staff_userid" json:"staff_userid"`
	Stage       string  `db:"stage" expr:"stage" json:"stage"`
	Status      string  `db:"status" expr:"status" json:"status"`
	Grade       string  `db:"grade" expr:"grade" json:"grade"`
	Fit         int     `db:"fit_points" expr:"fit" json:"fit"`
	Score       float64 `db:"-" expr:"score" json:"score"` // engagement now, decayed
	Cooling     bool    `db:"cooling" expr:"cooling" json:"cooling"`
	OwnerUserID int64   `db:"owner_user_id" expr:"owner" json:"owner"`
	PoolID      int64   `db:"pool_id" expr:"pool_id" json:"pool_id"`
	CreatedAt   int64   `db:"created_at" expr:"created_at" json:"created_at"`
	// ExternalUserID is the person's WeCom external contact in the corp
	// ("" when they came another way).
	ExternalUserID string `db:"external_userid" expr:"external_userid" json:"external_userid,omitempty"`
	// Fields are the lead's values of the corp's own fields, by key (a
	// number is a float64, a date and text a string; an empty one is absent).
	Fields map[string]any `db:"-" expr:"fields" json:"fields,omitempty"`

	// HalfLifeDays is the corp's engagement half-life (when score decays past a mark).
	HalfLifeDays    int   `db:"-" expr:"-" json:"-"`
	EngagementMilli int64 `db:"engagement_milli" expr:"-" json:"-"`
	EngagementAt    int64 `db:"engagement_at" expr:"-" json:"-"`
}

// ProfileFields maps each kind of lead change (LeadChanged) to the profile
// fields it may change, so a subscriber re-evaluates only the conditions
// that name one of them. A kind not listed may change any field.
var ProfileFields = map[string][]string{
	HistoryStage:    {"stage", "status", "cooling"},
	HistoryStatus:   {"status"},
	HistoryFit:      {"fit", "grade"},
	HistoryScore:    {"score", "stage", "status"},
	HistoryAdjust:   {"score", "stage", "status", "owner", "teams"},
	HistoryCooling:  {"cooling", "stage", "status"},
	HistoryClaimed:  {"owner", "status", "teams"},
	HistoryReleased: {"owner", "status", "teams"},
	HistoryAssigned: {"owner", "status", "teams"},
	HistoryRecycled: {"owner", "status", "teams"},
	HistoryPool:     {"pool_id"},
	HistoryTouch:    {"status"},
	HistoryHandoff:  {"stage", "status", "owner", "teams"},
	HistoryAdded:    {"staff_userid"},
	HistoryField:    {"fields"},
	HistoryTask:     {"tasks"}, // no condition reads tasks: nothing re-evaluates
}

// Profiles reads the live leads of a corp after the lead id after, in id
// order, at most limit: a full pass over the corp pages through them. With
// fields, each carries its values of the corp's own fields (a pass whose
// condition names none skips reading them: a query a page).
func (s *Service) Profiles(ctx context.Context, corp string, after int64, limit int, fields bool) ([]Profile, error) {
	ps, err := s.store.profiles(ctx, corp, after, limit, nil)
	if err == nil && len(ps) > 0 && fields {
		var vs map[int64]map[string]any
		if vs, err = s.store.fieldValuesBetween(ctx, corp, after, ps[len(ps)-1].LeadID); err == nil {
			withFields(ps, vs)
		}
	}
	return s.scored(ctx, corp, ps, err)
}

// ProfilesOf reads the live leads among ids (a lead merged away is absent).
func (s *Service) ProfilesOf(ctx context.Context, corp string, ids []int64) ([]Profile, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ps, err := s.store.profiles(ctx, corp, 0, len(ids), ids)
	if err == nil && len(ps) > 0 {
		var vs map[int64]map[string]any
		if vs, err = s.store.fieldValues(ctx, s.db, corp, ids); err == nil {
			withFields(ps, vs)
		}
	}
	return s.scored(ctx, corp, ps, err)
}

// withFields gives each profile its field values (never a nil map, so a
// condition on an unset field reads nil rather than failing).
func withFields(ps []Profile, vs map[int64]map[string]any) {
	for i := range ps {
		if ps[i].Fields = vs[ps[i].LeadID]; ps[i].Fields == nil {
			ps[i].Fields = map[string]any{}
		}
	}
}

// scored sets each profile's engagement score as of now.
func (s *Service) scored(ctx context.Context, corp string, ps []Profile, err error) ([]Profile, error) {
	if err != nil || len(ps) == 0 {
		return ps, err
	}
	set, err := s.ScoringSettings(ctx, corp)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for i := range ps {
		ps[i].Score = decayed(ps[i].EngagementMilli, ps[i].EngagementAt, now, set.HalfLifeDays)
		ps[i].HalfLifeDays = set.HalfLifeDays
	}
	return ps, nil
}

// ActivityQuery counts a lead's activities of a type ("" any) since a time.
type ActivityQuery struct {
	Type  string
	Since time.Time // zero: ever
}

// ActivityCount is a query's answer for one lead: how many, and when the
// oldest counted one happened (Unix ms; 0 when none), which says when a
// count over a moving window will next drop.
type ActivityCount struct {
	N      int
	Oldest int64
}

// CountActivities answers each query for the leads among ids (in id order
// of the answers: out[lead][i] answers qs[i]; a lead without any activity
// of a query has a zero count).
func (s *Service) CountActivities(ctx context.Context, corp string, ids []int64, qs []ActivityQuery) (map[int64][]ActivityCount, error) {
	out := make(map[int64][]ActivityCount, len(ids))
	if len(ids) == 0 || len(qs) == 0 {
		return out, nil
	}
	for _, id := range ids {
		out[id] = make([]ActivityCount, len(qs))
	}
	for i, q := range qs {
		var since int64
		if !q.Since.IsZero() {
			since = q.Since.UnixMilli()
		}
		rows, err := s.store.countActivities(ctx, corp, ids, q.Type, since)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if c, ok := out[r.Lead]; ok {
				c[i] = ActivityCount{N: r.N, Oldest: r.Oldest}
			}
		}
	}
	return out, nil
}

// Now is the lead pool's clock (tests move it), for callers that reason
// about windows of activity.
func (s *Service) Now() time.Time { return s.now() }

// Contact is a WeCom external contact of a corp.
type Contact struct {
	CorpID, ExternalUserID string
}

// LeadsOfContacts maps WeCom external contacts (of any corps: a bus batch
// asks for all of its own at once) to their live leads (a contact without
// one is absent).
func (s *Service) LeadsOfContacts(ctx context.Context, contacts []Contact) (map[Contact]int64, error) {
	return s.store.leadsOfContacts(ctx, contacts)
}

// LeadsOwnedBy pages through the live leads of a corp owned by any of
// users, in id order after the lead id after (segments on the owner's
// teams re-evaluate them when the owners' teams change).
func (s *Service) LeadsOwnedBy(ctx context.Context, corp string, users []int64, after int64, limit int) ([]int64, error) {
	if len(users) == 0 {
		return nil, nil
	}
	q, args, err := sqlx.In(`SELECT id FROM leads WHERE corp_id = ? AND owner_user_id IN (?) AND merged_into = 0 AND id > ? ORDER BY id LIMIT ?`, corp, users, after, limit)
	if err != nil {
		return nil, err
	}
	var ids []int64
	err = s.db.SelectContext(ctx, &ids, s.db.Rebind(q), args...)
	return ids, err
}
