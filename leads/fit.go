package leads

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Fit scoring: who a lead is. Fit rules are conditions over the person's
// and lead's fields, each worth points; a lead's fit is the sum of the
// points of the rules that hold, and its grade (A–D) follows from the
// corp's bounds. Fit is computed when the fields change (an upsert, a new
// lead) and for every lead when the rules or bounds change (JobRescore, in
// the background). A change of fit is in the history with the rules that
// gave it.

// HistoryFit is a change of a lead's fit and grade.
const HistoryFit = "fit"

// grades from best to worst.
var grades = []string{"A", "B", "C", "D"}

// gradeAtLeast reports whether grade g is as good as min.
func gradeAtLeast(g, min string) bool {
	if g == "" {
		g = "D"
	}
	return strings.Compare(g, min) <= 0 // "A" < "B": better grades sort first
}

// gradeOf is the grade of fit points under the corp's bounds.
func gradeOf(points int, set Settings) string {
	switch {
	case points >= set.GradeA:
		return "A"
	case points >= set.GradeB:
		return "B"
	case points >= set.GradeC:
		return "C"
	}
	return "D"
}

// FitRule gives points to leads its condition holds for.
type FitRule struct {
	ID     int64  `db:"id" json:"id"`
	CorpID string `db:"corp_id" json:"-"`
	Name   string `db:"name" json:"name"`
	// Condition is an expression over the lead, e.g.
	// `industry == "internet" && company_size >= 100`.
	Condition string `db:"cond" json:"condition"`
	Points    int    `db:"points" json:"points"`
	CreatedAt int64  `db:"created_at" json:"created_at"`
	UpdatedAt int64  `db:"updated_at" json:"updated_at"`
}

// fitEnv is what a fit rule's condition sees; other names are refused
// when the rule is saved.
type fitEnv struct {
	Title       string `expr:"title" db:"title"`
	Region      string `expr:"region" db:"region"`
	Industry    string `expr:"industry" db:"industry"`
	CompanySize int    `expr:"company_size" db:"company_size"`
	Budget      string `expr:"budget" db:"budget"`
	Authority   string `expr:"authority" db:"authority"`
	Need        string `expr:"need" db:"need"`
	Timeline    string `expr:"timeline" db:"timeline"`
	Source      string `expr:"source" db:"source"`
	Channel     string `expr:"channel" db:"channel"`
	CodeID      int64  `expr:"code_id" db:"code_id"`
}

func compileFit(cond string) (*vm.Program, error) {
	return expr.Compile(cond, expr.Env(fitEnv{}), expr.AsBool())
}

func (r *FitRule) check() error {
	f := apperr.Fields{}
	if n := strings.TrimSpace(r.Name); n == "" || len([]rune(n)) > 64 {
		f.Add("name", "is required, at most 64 characters")
	}
	if r.Points == 0 || r.Points < -1000 || r.Points > 1000 {
		f.Add("points", "is between -1000 and 1000, not 0")
	}
	if strings.TrimSpace(r.Condition) == "" {
		f.Add("condition", "is required (e.g. industry == \"internet\")")
	} else if _, err := compileFit(r.Condition); err != nil {
		f.Add("condition", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	if len(f) > 0 {
		return f.Err()
	}
	return nil
}

// JobRescore recomputes the fit and grade of every lead of a corp after
// its fit or engagement rules or its settings changed, and its engagement,
// replayed from the stored activities, when the engagement rules or the
// half-life changed since the last complete replay. It is resumable (its
// checkpoint is the last lead done) and restarts from the first lead when
// the rules change again while it runs.
const JobRescore = "leads.rescore"

// Jobs queues background jobs (the jobs runner).
type Jobs interface {
	Enqueue(ctx context.Context, corpID, kind, uniqueKey string, params any, createdBy int64) (int64, error)
}

// SetJobs gives the service the runner that rescoring is queued on.
func (s *Service) SetJobs(j Jobs) { s.jobs = j }

func (s *Service) enqueueRescore(ctx context.Context, corp string) error {
	if s.jobs == nil {
		return nil // no runner (tests of other things): fit is recomputed as leads change
	}
	_, err := s.jobs.Enqueue(ctx, corp, JobRescore, JobRescore+":"+corp, nil, 0)
	return err
}

// CreateFitRule adds a fit rule and rescores the corp's leads.
func (s *Service) CreateFitRule(ctx context.Context, r FitRule) (*FitRule, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	r.Name = strings.TrimSpace(r.Name)
	r.CreatedAt = qsql.Millis(s.now())
	r.UpdatedAt = r.CreatedAt
	if err := s.store.createFitRule(ctx, &r); err != nil {
		return nil, err
	}
	return &r, s.enqueueRescore(ctx, r.CorpID)
}

// DeleteFitRule removes a fit rule and rescores the corp's leads.
func (s *Service) DeleteFitRule(ctx context.Context, corp string, id int64) error {
	ok, err := s.store.deleteFitRule(ctx, corp, id)
	if err != nil {
		return err
	}
	if !ok {
		return apperr.NotFound("fit rule not found")
	}
	return s.enqueueRescore(ctx, corp)
}

// FitRules lists a corp's fit rules.
func (s *Service) FitRules(ctx context.Context, corp string) ([]FitRule, error) {
	return s.store.fitRules(ctx, s.db, corp)
}

// fitScorer gives leads the points of the fit rules that hold for them.
type fitScorer struct {
	rules []FitRule
	progs []*vm.Program // nil: a rule saved before it stopped compiling gives nothing
}

func newFitScorer(rules []FitRule) fitScorer {
	f := fitScorer{rules: rules, progs: make([]*vm.Program, len(rules))}
	for i, r := range rules {
		f.progs[i], _ = compileFit(r.Condition)
	}
	return f
}

// score is a lead's fit points, and the rules that gave them ("+30 exec").
func (f fitScorer) score(env fitEnv) (int, []string) {
	points, why := 0, []string(nil)
	for i, r := range f.rules {
		if f.progs[i] == nil {
			continue
		}
		if ok, err := expr.Run(f.progs[i], env); err == nil && ok == true {
			points += r.Points
			why = append(why, fmt.Sprintf("%+d %s", r.Points, r.Name))
		}
	}
	return points, why
}

// refit recomputes the fit of leads of a corp in tx with the given rules
// and settings, stores what changed, and promotes those that now meet the
// MQL bar. It returns the history to record.
func (s *Service) refit(ctx context.Context, tx *qsql.Tx, corp string, leads []int64, rules []FitRule, set Settings, ms int64) ([]historyRow, error) {
	if len(leads) == 0 {
		return nil, nil
	}
	inputs, err := s.store.fitInputs(ctx, tx, corp, leads)
	if err != nil {
		return nil, err
	}
	fit := newFitScorer(rules)
	byID := make(map[int64]fitInput, len(inputs))
	var changed []fitChange
	var history []historyRow
	for _, in := range inputs {
		byID[in.ID] = in
		points, why := fit.score(in.fitEnv)
		grade := gradeOf(points, set)
		if points == in.FitPoints && grade == in.Grade {
			continue
		}
		changed = append(changed, fitChange{in.ID, points, grade})
		history = append(history, historyRow{corp, in.ID, fitEntry(in.FitPoints, in.Grade, points, grade, why, ms)})
	}
	if err := s.store.setFits(ctx, tx, corp, changed, ms); err != nil {
		return nil, err
	}
	// A better grade may be what a lead lacked to become an MQL.
	var corpRules *corpRules
	for _, c := range changed {
		in := byID[c.lead]
		if in.Stage != StageLead {
			continue
		}
		eng := decayed(in.EngagementMilli, in.EngagementAt, qsql.FromMillis(ms), set.HalfLifeDays)
		if eng < float64(set.MQLThreshold) {
			continue
		}
		if corpRules == nil {
			if corpRules, err = s.corpRules(ctx, tx, corp); err != nil {
				return nil, err
			}
		}
		promoted, err := s.promoteIfReady(ctx, tx, corp, corpRules, c.lead, eng, c.grade, set, ms)
		if err != nil {
			return nil, err
		}
		history = append(history, promoted...)
	}
	return history, nil
}

// fitEntry is the history entry of a lead's new fit, with the rules that
// gave it (why).
func fitEntry(wasPoints int, wasGrade string, points int, grade string, why []string, ms int64) HistoryEntry {
	reason := "no fit rule holds"
	if len(why) > 0 {
		reason = strings.Join(why, ", ")
	}
	return HistoryEntry{At: ms, Kind: HistoryFit, From: fmt.Sprintf("%d %s", wasPoints, wasGrade), To: fmt.Sprintf("%d %s", points, grade), Reason: reason}
}

// fitChange is a lead's new fit.
type fitChange struct {
	lead   int64
	points int
	grade  string
}

// fitInput is what a lead's fit is computed from, and what it was.
type fitInput struct {
	ID              int64  `db:"id"`
	Stage           string `db:"stage"`
	FitPoints       int    `db:"fit_points"`
	Grade           string `db:"grade"`
	EngagementMilli int64  `db:"engagement_milli"`
	EngagementAt    int64  `db:"engagement_at"`
	fitEnv
}

// refitLeads recomputes the fit of some leads of a corp in tx, reading the
// corp's rules (nothing to do without rules and with no fit recorded).
func (s *Service) refitLeads(ctx context.Context, tx *qsql.Tx, corp string, leads []int64, ms int64) error {
	return s.refitLeadsOf(ctx, tx, map[string][]int64{corp: leads}, ms)
}

// refitLeadsOf is refitLeads for leads of many corps (by corp), whose
// rules are read in one statement.
func (s *Service) refitLeadsOf(ctx context.Context, tx *qsql.Tx, byCorp map[string][]int64, ms int64) error {
	if len(byCorp) == 0 {
		return nil
	}
	corps := slices.Sorted(maps.Keys(byCorp))
	rules, err := s.store.fitRulesOf(ctx, tx, corps)
	if err != nil {
		return err
	}
	for _, corp := range corps {
		if len(rules[corp]) == 0 {
			continue
		}
		set, err := s.store.settings(ctx, tx, corp)
		if err != nil {
			return err
		}
		history, err := s.refit(ctx, tx, corp, byCorp[corp], rules[corp], set, ms)
		if err != nil {
			return err
		}
		if err := s.store.addHistories(ctx, tx, history); err != nil {
			return err
		}
	}
	return nil
}
