package leads

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// SLAs: when an MQL gets an owner (assigned, claimed, or moved to mql by
// its owner) the owner must log a first touch, and when an SQL is handed to
// a rep the rep must answer, within the working hours of the corp's first
// SLA rule whose condition holds (the corp's calendar: working hours,
// holidays, make-up workdays). At half time the one who owes it gets a
// notice; at the breach they and their manager do. A touch (or the answer)
// meets it; a release, recycle or a new owner closes it. Due moments are
// stored, so the cron (CheckSLAs) reads exactly the rows due.

// Kinds of SLA.
const (
	SLAFirstTouch = "first_touch"
	SLAHandoff    = "handoff"
)

// SLA states.
const (
	SLAOpen     = "open"
	SLAMet      = "met"
	SLABreached = "breached"
	SLAClosed   = "closed" // the lead changed hands before it was met
)

// SLARule gives leads its condition holds for so many working hours.
type SLARule struct {
	ID        int64  `db:"id" json:"id"`
	CorpID    string `db:"corp_id" json:"-"`
	Position  int    `db:"position" json:"position"`
	Name      string `db:"name" json:"name"`
	Condition string `db:"cond" json:"condition"` // over the lead, as assignment rules; empty: every lead
	Hours     int    `db:"hours" json:"hours"`    // working hours
	CreatedAt int64  `db:"created_at" json:"created_at"`
	UpdatedAt int64  `db:"updated_at" json:"updated_at"`
}

// Managers names a user's manager in a corp (0: none).
type Managers func(ctx context.Context, corpID string, userID int64) (int64, error)

// SetManagers gives the service who manages whom (for breaches).
func (s *Service) SetManagers(m Managers) { s.managers = m }

// CreateSLARule adds an SLA rule.
func (s *Service) CreateSLARule(ctx context.Context, r SLARule) (*SLARule, error) {
	f := apperr.Fields{}
	if n := strings.TrimSpace(r.Name); n == "" || len([]rune(n)) > 64 {
		f.Add("name", "is required, at most 64 characters")
	}
	if r.Hours < 1 || r.Hours > 24*30 {
		f.Add("hours", "is 1 to 720 working hours")
	}
	if _, err := compileLeadCond(r.Condition); err != nil {
		f.Add("condition", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	if len(f) > 0 {
		return nil, f.Err()
	}
	r.Name = strings.TrimSpace(r.Name)
	r.CreatedAt = qsql.Millis(s.now())
	r.UpdatedAt = r.CreatedAt
	if err := s.store.createSLARule(ctx, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// SLARules lists a corp's SLA rules in order.
func (s *Service) SLARules(ctx context.Context, corp string) ([]SLARule, error) {
	return s.store.slaRules(ctx, s.db, corp)
}

// startSLA starts an SLA of a kind for a lead's new owner (or rep) in tx,
// closing the lead's open ones; nothing when no rule matches.
func (s *Service) startSLA(ctx context.Context, tx *qsql.Tx, corp string, l *Lead, kind string, owner, ms int64) error {
	rules, err := s.store.slaRules(ctx, tx, corp)
	if err != nil {
		return err
	}
	return s.startSLABy(ctx, tx, corp, rules, l, kind, owner, ms)
}

// startSLABy is startSLA with the corp's rules read by the caller.
func (s *Service) startSLABy(ctx context.Context, tx *qsql.Tx, corp string, rules []SLARule, l *Lead, kind string, owner, ms int64) error {
	if err := s.store.closeSLAs(ctx, tx, l.ID, SLAClosed, ms); err != nil {
		return err
	}
	if len(rules) == 0 {
		return nil
	}
	env, err := s.leadEnvOf(ctx, tx, corp, l)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if !holds(r.Condition, env) {
			continue
		}
		cal := s.calendars.For(corp)
		start := qsql.FromMillis(ms)
		due := cal.AddWorkingTime(start, time.Duration(r.Hours)*time.Hour)
		half := cal.AddWorkingTime(start, time.Duration(r.Hours)*time.Hour/2)
		return s.store.createSLA(ctx, tx, corp, l.ID, kind, owner, r.ID, ms, qsql.Millis(half), qsql.Millis(due))
	}
	return nil
}

// CheckSLAs sends the half-time notices and records the breaches due by
// now (cron: every minute, once across instances). It returns how many
// SLAs it acted on.
func (s *Service) CheckSLAs(ctx context.Context) (int, error) {
	ms := qsql.Millis(s.now())
	half, err := s.store.slasHalfDue(ctx, ms, 500)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range half {
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			ok, err := s.store.markSLAHalf(ctx, tx, d.ID)
			if err != nil || !ok {
				return err
			}
			n++
			return s.store.addNotices(ctx, tx, []notice{{d.CorpID, d.Owner, fmt.Sprintf("SLA 过半：%s，请在 %s 前处理 / Half the SLA is gone: %s, due %s. %s",
				slaWhat(d), s.localTime(d.CorpID, d.DueAt), slaWhatEn(d), s.localTime(d.CorpID, d.DueAt), s.leadLink(d.LeadID))}}, ms)
		})
		if err != nil {
			return n, err
		}
	}
	breached, err := s.store.slasBreachDue(ctx, ms, 500)
	if err != nil {
		return n, err
	}
	for _, d := range breached {
		var manager int64
		if s.managers != nil {
			if manager, err = s.managers(ctx, d.CorpID, d.Owner); err != nil {
				return n, err
			}
		}
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			ok, err := s.store.endSLA(ctx, tx, d.ID, SLABreached, ms)
			if err != nil || !ok {
				return err
			}
			n++
			text := fmt.Sprintf("SLA 已超时：%s（用户 %d）/ SLA breached: %s (user %d). %s", slaWhat(d), d.Owner, slaWhatEn(d), d.Owner, s.leadLink(d.LeadID))
			ns := []notice{{d.CorpID, d.Owner, text}}
			if manager != 0 && manager != d.Owner {
				ns = append(ns, notice{d.CorpID, manager, text})
			}
			if err := s.store.addHistory(ctx, tx, d.CorpID, d.LeadID, HistoryEntry{At: ms, Kind: HistorySLA, From: d.Kind, To: SLABreached,
				Reason: fmt.Sprintf("%s not done by user %d in time", d.Kind, d.Owner)}); err != nil {
				return err
			}
			return s.store.addNotices(ctx, tx, ns, ms)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// HistorySLA is an SLA breached.
const HistorySLA = "sla"

func slaWhat(d dueSLA) string {
	if d.Kind == SLAHandoff {
		return fmt.Sprintf("线索 #%d 的移交待你答复", d.LeadID)
	}
	return fmt.Sprintf("线索 #%d 需要首次跟进", d.LeadID)
}

func slaWhatEn(d dueSLA) string {
	if d.Kind == SLAHandoff {
		return fmt.Sprintf("lead #%d's handoff awaits your answer", d.LeadID)
	}
	return fmt.Sprintf("lead #%d needs a first touch", d.LeadID)
}

// localTime is a moment in the corp's zone, for notices.
func (s *Service) localTime(corp string, ms int64) string {
	return qsql.FromMillis(ms).In(s.calendars.For(corp).Location()).Format("01-02 15:04")
}

// SLARow is one user's SLAs in a report.
type SLARow struct {
	UserID   int64 `db:"owner_user_id" json:"user_id"`
	Met      int   `db:"met" json:"met"`
	Breached int   `db:"breached" json:"breached"`
	Open     int   `db:"open_now" json:"open"`
	Closed   int   `db:"closed" json:"closed"`
}

// SLAReport counts the SLAs started from the day from to the day to
// (YYYY-MM-DD in the corp's zone, both included) by user.
func (s *Service) SLAReport(ctx context.Context, corp, from, to string) ([]SLARow, error) {
	loc := s.calendars.For(corp).Location()
	f := apperr.Fields{}
	start, err := time.ParseInLocation(time.DateOnly, from, loc)
	if err != nil {
		f.Add("from", "is a date, YYYY-MM-DD")
	}
	end, err := time.ParseInLocation(time.DateOnly, to, loc)
	if err != nil {
		f.Add("to", "is a date, YYYY-MM-DD")
	} else if end.Before(start) {
		f.Add("to", "is on or after from")
	}
	if len(f) > 0 {
		return nil, f.Err()
	}
	return s.store.slaReport(ctx, corp, qsql.Millis(start), qsql.Millis(end.AddDate(0, 0, 1)))
}

// Escalate sends the steps of the pools' escalation ladders that are due:
// after a step's working days without a follow-up, a notice to the lead's
// owner (and their manager for "manager" steps), once per step and
// follow-up (cron, with the recycling). It returns how many it sent.
func (s *Service) Escalate(ctx context.Context) (int, error) {
	now := s.now()
	ms := qsql.Millis(now)
	candidates, err := s.store.escalationCandidates(ctx, ms, 1000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range candidates {
		p := Pool{EscalationsJSON: c.Escalations}
		if err := p.decode(); err != nil {
			continue
		}
		for i, step := range p.Escalations {
			if now.Before(s.calendars.For(c.CorpID).WorkdaysAfter(qsql.FromMillis(c.LastTouchAt), step.AfterDays)) {
				break
			}
			var manager int64
			if step.Notify == NotifyManager && s.managers != nil {
				if manager, err = s.managers(ctx, c.CorpID, c.Owner); err != nil {
					return n, err
				}
			}
			err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
				first, err := s.store.markEscalated(ctx, tx, c.ID, i, c.LastTouchAt, ms)
				if err != nil || !first {
					return err
				}
				n++
				left := ""
				if c.RecycleDays > 0 {
					left = fmt.Sprintf("；%d 个工作日无跟进将退回公海 / it returns to the pool after %d working days without one", c.RecycleDays, c.RecycleDays)
				}
				text := fmt.Sprintf("线索 #%d 已 %d 个工作日未跟进 / Lead #%d has had no follow-up for %d working days%s. %s",
					c.ID, step.AfterDays, c.ID, step.AfterDays, left, s.leadLink(c.ID))
				ns := []notice{{c.CorpID, c.Owner, text}}
				if manager != 0 && manager != c.Owner {
					ns = append(ns, notice{c.CorpID, manager, text})
				}
				return s.store.addNotices(ctx, tx, ns, ms)
			})
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
