package leads

import (
	"cmp"
	"context"
	"slices"

	qsql "github.com/qiflow/qiflow/sql"
)

// Agenda is what needs a user now: the SLA clocks running on their leads,
// the handoffs waiting for their answer and their leads about to go back
// to the pool. The console's home page shows it.
type Agenda struct {
	Tasks     []Task          `json:"tasks"` // open, by due time
	SLAs      []AgendaSLA     `json:"slas"`
	Handoffs  []Handoff       `json:"handoffs"`
	Recycling []AgendaRecycle `json:"recycling"`
}

// AgendaSLA is a running SLA clock on one of the user's leads.
type AgendaSLA struct {
	LeadID int64  `db:"lead_id" json:"lead_id"`
	Name   string `db:"name" json:"name"`
	Kind   string `db:"kind" json:"kind"`
	DueAt  int64  `db:"due_at" json:"due_at"`
}

// AgendaRecycle is one of the user's leads and when it returns to its pool
// unless followed up.
type AgendaRecycle struct {
	LeadID int64  `json:"lead_id"`
	Name   string `json:"name"`
	At     int64  `json:"at"`
}

// agendaItems bounds each of the agenda's lists: it is a to-do list, not a report.
const agendaItems = 20

// AgendaOf is user's agenda in corp; recycling lists the leads due back
// within the next soonDays working days.
func (s *Service) AgendaOf(ctx context.Context, corp string, user int64, soonDays int) (Agenda, error) {
	a := Agenda{SLAs: []AgendaSLA{}, Recycling: []AgendaRecycle{}}
	if err := s.db.SelectContext(ctx, &a.SLAs, `SELECT s.lead_id, COALESCE(p.name, '') AS name, s.kind, s.due_at FROM lead_slas s JOIN leads l ON l.id = s.lead_id JOIN people p ON p.id = l.person_id
		WHERE s.corp_id = ? AND s.owner_user_id = ? AND s.status = ? ORDER BY s.due_at LIMIT ?`, corp, user, SLAOpen, agendaItems); err != nil {
		return a, err
	}
	var err error
	if a.Tasks, err = s.TasksOf(ctx, corp, user, false, agendaItems); err != nil {
		return a, err
	}
	if a.Handoffs, err = s.Handoffs(ctx, HandoffFilter{CorpID: corp, ToUser: user, Status: HandoffPending, Limit: agendaItems}); err != nil {
		return a, err
	}
	returns, err := s.returnsOf(ctx, corp, user)
	if err != nil {
		return a, err
	}
	horizon := s.calendars.For(corp).WorkdaysAfter(s.now(), soonDays)
	for _, r := range returns {
		if !qsql.FromMillis(r.At).After(horizon) {
			a.Recycling = append(a.Recycling, r)
		}
	}
	slices.SortFunc(a.Recycling, func(x, y AgendaRecycle) int { return cmp.Compare(x.At, y.At) })
	a.Recycling = a.Recycling[:min(len(a.Recycling), agendaItems)]
	return a, nil
}

// returnsOf is when each of user's leads in a recycling pool goes back to
// it unless followed up. A user holds at most their pools' caps of leads:
// all of them are read.
func (s *Service) returnsOf(ctx context.Context, corp string, user int64) ([]AgendaRecycle, error) {
	var mine []struct {
		staleLead
		Name string `db:"name"`
	}
	if err := s.db.SelectContext(ctx, &mine, `SELECT l.id, l.corp_id, l.pool_id, l.owner_user_id, COALESCE(l.last_touch_at, l.claimed_at, 0) AS last_touch_at,
		l.version, p.recycle_days, p.recycle_by_grade, l.grade, COALESCE(pe.name, '') AS name
		FROM leads l JOIN lead_pools p ON p.id = l.pool_id JOIN people pe ON pe.id = l.person_id
		WHERE l.corp_id = ? AND l.owner_user_id = ? AND l.merged_into = 0 AND (p.recycle_days > 0 OR p.recycle_by_grade <> '{}')`, corp, user); err != nil {
		return nil, err
	}
	cal := s.calendars.For(corp)
	out := make([]AgendaRecycle, 0, len(mine))
	for _, l := range mine {
		if days := l.days(); days > 0 && l.LastTouchAt > 0 {
			out = append(out, AgendaRecycle{LeadID: l.ID, Name: l.Name, At: qsql.Millis(cal.WorkdaysAfter(qsql.FromMillis(l.LastTouchAt), days))})
		}
	}
	return out, nil
}

// Deadline is what runs against one of a user's leads: the soonest SLA
// clock and the moment it goes back to the pool (0: none).
type Deadline struct {
	SLADue    int64 `json:"sla_due,omitempty"`
	RecycleAt int64 `json:"recycle_at,omitempty"`
}

// DeadlinesOf is the deadlines of user's leads, by lead: the SDR's "my
// leads" shows them beside each lead.
func (s *Service) DeadlinesOf(ctx context.Context, corp string, user int64) (map[int64]Deadline, error) {
	out := map[int64]Deadline{}
	var slas []AgendaSLA
	if err := s.db.SelectContext(ctx, &slas, `SELECT lead_id, '' AS name, kind, MIN(due_at) AS due_at FROM lead_slas
		WHERE corp_id = ? AND owner_user_id = ? AND status = ? GROUP BY lead_id, kind`, corp, user, SLAOpen); err != nil {
		return nil, err
	}
	for _, x := range slas {
		d := out[x.LeadID]
		if d.SLADue == 0 || x.DueAt < d.SLADue {
			d.SLADue = x.DueAt
		}
		out[x.LeadID] = d
	}
	returns, err := s.returnsOf(ctx, corp, user)
	if err != nil {
		return nil, err
	}
	for _, r := range returns {
		d := out[r.LeadID]
		d.RecycleAt = r.At
		out[r.LeadID] = d
	}
	return out, nil
}
