package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Claim makes user the owner of an unowned lead in its pool. It is one
// transaction: the lead changes hands only if it is still unowned and in
// that pool (a conditional update), and the user's caps are counted by a
// conditional update of their counter row; either failing undoes both. Two
// SDRs racing for one lead: one wins, the other gets ErrAlreadyClaimed.
//
// A lead in a pool the user does not work is not found for them.
func (s *Service) Claim(ctx context.Context, corp string, leadID, user int64) (*Lead, error) {
	now := s.now()
	ms := qsql.Millis(now)
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		if ok, err := s.store.visible(ctx, tx, corp, leadID, Viewer{UserID: user}); err != nil || !ok {
			return cmpErr(err, ErrNotFound)
		}
		if l.MergedInto != 0 {
			return ErrMerged
		}
		if l.OwnerUserID != 0 {
			return ErrAlreadyClaimed
		}
		if l.Stage == StageDisqualified {
			return ErrDisqualified
		}
		p, err := s.store.pool(ctx, tx, corp, l.PoolID)
		if err != nil {
			return err
		}
		if p.CooldownHours > 0 {
			last, err := s.store.lastRelease(ctx, tx, corp, leadID, user)
			if err != nil {
				return err
			}
			if last > 0 && now.Sub(qsql.FromMillis(last)) < time.Duration(p.CooldownHours)*time.Hour {
				return ErrCooldown
			}
		}
		won, err := s.store.takeLead(ctx, tx, corp, leadID, p.ID, user, ms)
		if err != nil {
			return err
		}
		if !won {
			return ErrAlreadyClaimed
		}
		day := s.calendars.For(corp).DayKey(now)
		ok, err := s.store.countClaim(ctx, tx, corp, p.ID, user, day, p.MaxOpen, p.MaxClaimsDay)
		if err != nil {
			return err
		}
		if !ok {
			return ErrCapReached
		}
		if l.Stage == StageMQL {
			if err := s.startSLA(ctx, tx, corp, l, SLAFirstTouch, user, ms); err != nil {
				return err
			}
		}
		return s.store.addHistory(ctx, tx, corp, leadID, HistoryEntry{At: ms, ActorUserID: user, Kind: HistoryClaimed, To: itoa(user)})
	})
	if err != nil {
		return nil, err
	}
	return s.read(ctx, corp, leadID)
}

// Release gives user's lead back to its pool, with a reason.
func (s *Service) Release(ctx context.Context, corp string, leadID, user int64, reason string) (*Lead, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, apperr.Field("reason", "is required: say why the lead goes back to the pool")
	}
	ms := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		ok, err := s.store.giveBack(ctx, tx, corp, leadID, user, ms)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotOwner
		}
		if err := s.store.uncountOpen(ctx, tx, corp, l.PoolID, user); err != nil {
			return err
		}
		if err := s.store.closeSLAs(ctx, tx, leadID, SLAClosed, ms); err != nil {
			return err
		}
		if err := s.store.recordRelease(ctx, tx, corp, leadID, user, ms); err != nil {
			return err
		}
		return s.store.addHistory(ctx, tx, corp, leadID, HistoryEntry{At: ms, ActorUserID: user, Kind: HistoryReleased, From: itoa(user), Reason: reason})
	})
	if err != nil {
		return nil, err
	}
	return s.read(ctx, corp, leadID)
}

// Get returns a lead the viewer may see, with its history.
func (s *Service) Get(ctx context.Context, corp string, id int64, v Viewer) (*Lead, []HistoryEntry, error) {
	l, err := s.read(ctx, corp, id)
	if err != nil {
		return nil, nil, err
	}
	if ok, err := s.store.visible(ctx, s.db, corp, id, v); err != nil || !ok {
		return nil, nil, cmpErr(err, ErrNotFound)
	}
	// The corp's own fields come with one lead as it is shown, not with
	// every lead a claim or a move answers.
	if l.Fields, err = s.FieldsOf(ctx, corp, id); err != nil {
		return nil, nil, err
	}
	h, err := s.store.history(ctx, corp, id)
	return l, h, err
}

// List pages through leads (by id, at most 200 a page).
func (s *Service) List(ctx context.Context, f ListFilter) ([]Lead, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	ls, err := s.store.list(ctx, f)
	if err != nil || len(ls) == 0 {
		return ls, err
	}
	set, err := s.store.settings(ctx, s.db, f.CorpID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for i := range ls {
		ls[i].Engagement = round1(decayed(ls[i].EngagementMilli, ls[i].EngagementAt, now, set.HalfLifeDays))
	}
	return ls, nil
}

// read returns a lead with its engagement as of now.
func (s *Service) read(ctx context.Context, corp string, id int64) (*Lead, error) {
	l, err := s.store.lead(ctx, s.db, corp, id)
	if err != nil {
		return nil, err
	}
	set, err := s.store.settings(ctx, s.db, corp)
	if err != nil {
		return nil, err
	}
	l.Engagement = round1(decayed(l.EngagementMilli, l.EngagementAt, s.now(), set.HalfLifeDays))
	return l, nil
}

// round1 rounds to a tenth of a point, as scores are shown.
func round1(x float64) float64 { return math.Round(x*10) / 10 }

// Pools lists a corp's pools, the default one first made if needed.
func (s *Service) Pools(ctx context.Context, corp string) ([]Pool, error) {
	if err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		_, err := s.store.defaultPool(ctx, tx, corp, qsql.Millis(s.now()))
		return err
	}); err != nil {
		return nil, err
	}
	return s.store.pools(ctx, corp)
}

// CreatePool adds a pool.
func (s *Service) CreatePool(ctx context.Context, p Pool) (*Pool, error) {
	f := p.checkCaps()
	if n := strings.TrimSpace(p.Name); n == "" || len([]rune(n)) > 64 {
		f.Add("name", "is required, at most 64 characters")
	}
	if len(f) > 0 {
		return nil, f.Err()
	}
	p.Name = strings.TrimSpace(p.Name)
	p.CreatedAt = qsql.Millis(s.now())
	p.UpdatedAt = p.CreatedAt
	if err := s.store.createPool(ctx, &p); err != nil {
		if qsql.IsDuplicate(err) {
			return nil, apperr.Field("name", "a pool of this name exists")
		}
		return nil, err
	}
	return &p, nil
}

// UpdatePool changes a pool's claim rules, and its name when one is given
// (an empty name keeps it).
func (s *Service) UpdatePool(ctx context.Context, p Pool) (*Pool, error) {
	f := p.checkCaps()
	if p.Name = strings.TrimSpace(p.Name); len([]rune(p.Name)) > 64 {
		f.Add("name", "is at most 64 characters")
	}
	if len(f) > 0 {
		return nil, f.Err()
	}
	p.UpdatedAt = qsql.Millis(s.now())
	ok, err := s.store.updatePool(ctx, &p)
	if qsql.IsDuplicate(err) {
		return nil, apperr.Field("name", "a pool of this name exists")
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrPoolNotFound
	}
	return s.store.pool(ctx, s.db, p.CorpID, p.ID)
}

// checkCaps names the claim rules that are out of range.
func (p Pool) checkCaps() apperr.Fields {
	f := apperr.Fields{}
	for field, v := range map[string]int{"max_open": p.MaxOpen, "max_claims_day": p.MaxClaimsDay, "cooldown_hours": p.CooldownHours, "recycle_days": p.RecycleDays} {
		if v < 0 {
			f.Add(field, "must be 0 (no limit) or more")
		}
	}
	last := 0
	for i, e := range p.Escalations {
		switch {
		case e.AfterDays <= last:
			f.Add(fmt.Sprintf("escalations[%d].after_days", i), "is 1 or more, and more than the step before")
		case p.RecycleDays > 0 && e.AfterDays >= p.RecycleDays:
			f.Add(fmt.Sprintf("escalations[%d].after_days", i), "is fewer than recycle_days (the lead returns then)")
		}
		if e.Notify != NotifyOwner && e.Notify != NotifyManager {
			f.Add(fmt.Sprintf("escalations[%d].notify", i), "is owner or manager (the owner and their manager)")
		}
		last = max(last, e.AfterDays)
	}
	for g, d := range p.RecycleByGrade {
		if !slices.Contains(grades, g) || d < 0 {
			f.Add("recycle_by_grade."+g, "grades are A, B, C or D; days 0 (never) or more")
		}
	}
	if len(p.Escalations) > 10 {
		f.Add("escalations", "has at most 10 steps")
	}
	return f
}

// Escalation is a step of a pool's ladder.
type Escalation struct {
	AfterDays int    `json:"after_days"`
	Notify    string `json:"notify"`
}

// Whom an escalation tells.
const (
	NotifyOwner   = "owner"
	NotifyManager = "manager" // the owner and their manager
)

func (p *Pool) decode() error {
	p.Escalations, p.RecycleByGrade = []Escalation{}, map[string]int{}
	if p.RecycleByGradeJSON != "" {
		if err := json.Unmarshal([]byte(p.RecycleByGradeJSON), &p.RecycleByGrade); err != nil {
			return err
		}
	}
	if p.EscalationsJSON == "" {
		return nil
	}
	return json.Unmarshal([]byte(p.EscalationsJSON), &p.Escalations)
}

func (p *Pool) encodeByGrade() string {
	if len(p.RecycleByGrade) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(p.RecycleByGrade)
	return string(b)
}

func (p *Pool) encode() string {
	if len(p.Escalations) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(p.Escalations)
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// cmpErr is err, or fallback when err is nil.
func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// Members lists a pool's members (none: open to every SDR).
func (s *Service) Members(ctx context.Context, corp string, pool int64) ([]int64, error) {
	if _, err := s.store.pool(ctx, s.db, corp, pool); err != nil {
		return nil, err
	}
	return s.store.members(ctx, corp, pool)
}

// AddMember makes a user a member of a pool; a pool with members is theirs alone.
func (s *Service) AddMember(ctx context.Context, corp string, pool, user int64) error {
	if _, err := s.store.pool(ctx, s.db, corp, pool); err != nil {
		return err
	}
	return s.store.addMember(ctx, corp, pool, user, qsql.Millis(s.now()))
}

// RemoveMember takes a user off a pool's members; the leads they own stay theirs.
func (s *Service) RemoveMember(ctx context.Context, corp string, pool, user int64) error {
	if _, err := s.store.pool(ctx, s.db, corp, pool); err != nil {
		return err
	}
	return s.store.removeMember(ctx, corp, pool, user)
}

// HistoryPool is a move between pools.
const HistoryPool = "pool"

// MoveToPool moves a lead to another pool of the corp (a manager's move:
// its owner, if any, keeps it).
func (s *Service) MoveToPool(ctx context.Context, corp string, leadID, pool, actor int64, reason string) (*Lead, error) {
	ms := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		if _, err := s.store.pool(ctx, tx, corp, pool); err != nil {
			return apperr.Field("pool_id", "no such pool")
		}
		if l.PoolID == pool {
			return nil
		}
		ok, err := s.store.movePool(ctx, tx, corp, leadID, l.Version, pool, ms)
		if err != nil {
			return err
		}
		if !ok {
			return ErrChanged
		}
		if l.OwnerUserID != 0 { // the owner's count moves with the lead: caps and least-loaded picks are per pool
			if err := s.store.uncountOpen(ctx, tx, corp, l.PoolID, l.OwnerUserID); err != nil {
				return err
			}
			if err := s.store.recountOpen(ctx, tx, corp, pool, l.OwnerUserID); err != nil {
				return err
			}
		}
		return s.store.addHistory(ctx, tx, corp, leadID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryPool, From: itoa(l.PoolID), To: itoa(pool), Reason: strings.TrimSpace(reason)})
	})
	if err != nil {
		return nil, err
	}
	return s.read(ctx, corp, leadID)
}
