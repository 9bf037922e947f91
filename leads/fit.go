package leads

import (
	"context"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
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

// JobRescore recomputes the fit and grade, and the engagement (replayed
// from the stored activities), of every lead of a corp after its fit or
// engagement rules or its settings changed. It is resumable (its checkpoint
// is the last lead done) and restarts from the first lead when the rules
// change again while it runs.
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

// refit recomputes the fit of leads of a corp in tx with the given rules
// and settings, stores what changed, and promotes those that now meet the
// MQL bar. It returns how many changed and the history to record.
func (s *Service) refit(ctx context.Context, tx *qsql.Tx, corp string, leads []int64, rules []FitRule, set Settings, ms int64) (int, []historyRow, error) {
	if len(leads) == 0 {
		return 0, nil, nil
	}
	inputs, err := s.store.fitInputs(ctx, tx, corp, leads)
	if err != nil {
		return 0, nil, err
	}
	progs := make([]*vm.Program, len(rules))
	for i, r := range rules {
		if progs[i], err = compileFit(r.Condition); err != nil {
			progs[i] = nil // saved before it stopped compiling: it gives nothing
		}
	}
	byID := make(map[int64]fitInput, len(inputs))
	var changed []fitChange
	var history []historyRow
	for _, in := range inputs {
		byID[in.ID] = in
		points, why := 0, []string{}
		for i, r := range rules {
			if progs[i] == nil {
				continue
			}
			if ok, err := expr.Run(progs[i], in.fitEnv); err == nil && ok == true {
				points += r.Points
				why = append(why, fmt.Sprintf("%+d %s", r.Points, r.Name))
			}
		}
		grade := gradeOf(points, set)
		if points == in.FitPoints && grade == in.Grade {
			continue
		}
		changed = append(changed, fitChange{in.ID, points, grade})
		reason := "no fit rule holds"
		if len(why) > 0 {
			reason = strings.Join(why, ", ")
		}
		history = append(history, historyRow{corp, in.ID, HistoryEntry{At: ms, Kind: HistoryFit, From: fmt.Sprintf("%d %s", in.FitPoints, in.Grade),
			To: fmt.Sprintf("%d %s", points, grade), Reason: reason}})
	}
	if err := s.store.setFits(ctx, tx, corp, changed, ms); err != nil {
		return 0, nil, err
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
				return 0, nil, err
			}
		}
		promoted, err := s.promoteIfReady(ctx, tx, corp, corpRules, c.lead, eng, c.grade, set, ms)
		if err != nil {
			return 0, nil, err
		}
		history = append(history, promoted...)
	}
	return len(changed), history, nil
}

// mergeRescoreHistory records a lead's new fit and new engagement from one
// rescore as one history entry ("fit 0 D → 55 B (+30 exec); engagement
// 0.0 → 62.0"), other entries (promotions) as they are: a rescore of a
// million leads writes a row fewer for each.
func mergeRescoreHistory(fits, scores []historyRow) []historyRow {
	out := make([]historyRow, 0, len(fits)+len(scores))
	fitOf := map[int64]int{}
	for _, h := range fits {
		if h.Kind == HistoryFit {
			fitOf[h.Lead] = len(out)
		}
		out = append(out, h)
	}
	for _, h := range scores {
		i, ok := fitOf[h.Lead]
		if h.Kind != HistoryScore || !ok {
			out = append(out, h)
			continue
		}
		f := &out[i]
		f.Kind = HistoryScore
		f.Reason = fmt.Sprintf("rescored by the current rules: fit %s → %s (%s); engagement %s → %s", f.From, f.To, f.Reason, h.From, h.To)
		f.From, f.To = h.From, h.To
	}
	return out
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
	rules, err := s.store.fitRules(ctx, tx, corp)
	if err != nil || len(rules) == 0 {
		return err
	}
	set, err := s.store.settings(ctx, tx, corp)
	if err != nil {
		return err
	}
	_, history, err := s.refit(ctx, tx, corp, leads, rules, set, ms)
	if err != nil {
		return err
	}
	return s.store.addHistories(ctx, tx, history)
}

const rescorePage = 2000

type rescoreCheckpoint struct {
	After   int64  `json:"after"`
	Rules   string `json:"rules"` // the rules' and bounds' version the pass started with
	Done    int64  `json:"done"`
	Changed int64  `json:"changed"`
}

// RescoreResult is what a rescore did.
type RescoreResult struct {
	Leads   int64 `json:"leads"`
	Changed int64 `json:"changed"`
}

// RunRescore is the JobRescore handler: pages of leads by id, a
// transaction each, with progress; cancelled between pages.
func (s *Service) RunRescore(ctx context.Context, j *jobs.Job) (any, error) {
	quiet := ctx
	ctx = bulk(ctx) // one LeadsRescored at the end, not a LeadChanged a lead
	var cp rescoreCheckpoint
	if _, err := j.LoadCheckpoint(&cp); err != nil {
		return nil, err
	}
	total, err := s.store.countLeads(ctx, j.CorpID)
	if err != nil {
		return nil, err
	}
	for {
		version, err := s.store.rulesVersion(ctx, j.CorpID)
		if err != nil {
			return nil, err
		}
		if cp.Rules != version {
			cp = rescoreCheckpoint{Rules: version} // the rules changed: every lead again
		}
		page := rescorePage
		if s.db.SingleWriter() {
			page = rescorePage / 4 // SQLite's one writer is not held long
		}
		ids, err := s.store.leadIDsAfter(ctx, j.CorpID, cp.After, page)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			if s.store.bus != nil {
				if err := s.db.WriteTx(quiet, func(tx *qsql.Tx) error {
					return s.store.bus.Publish(quiet, tx, j.CorpID, LeadsRescored{CorpID: j.CorpID, At: qsql.Millis(s.now()), Key: fmt.Sprintf("%d/%s", j.ID, cp.Rules)})
				}); err != nil {
					return nil, err
				}
			}
			return RescoreResult{Leads: cp.Done, Changed: cp.Changed}, nil
		}
		var changed int
		err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			// The page's leads are locked first, so activities scored while
			// it runs wait for it and add to what it writes, and what it
			// reads next (the activities among them) is as of the lock.
			if err := s.store.lockLeads(ctx, tx, j.CorpID, ids); err != nil {
				return err
			}
			rules, err := s.store.fitRules(ctx, tx, j.CorpID)
			if err != nil {
				return err
			}
			set, err := s.store.settings(ctx, tx, j.CorpID)
			if err != nil {
				return err
			}
			ms := qsql.Millis(s.now())
			nf, fits, err := s.refit(ctx, tx, j.CorpID, ids, rules, set, ms)
			if err != nil {
				return err
			}
			engagementRules, err := s.store.rulesOf(ctx, tx, []string{j.CorpID})
			if err != nil {
				return err
			}
			ne, scores, err := s.replayEngagement(ctx, tx, j.CorpID, ids, engagementRules[j.CorpID], set, ms)
			if err != nil {
				return err
			}
			changed = nf + ne
			if err := s.store.addHistories(ctx, tx, mergeRescoreHistory(fits, scores)); err != nil {
				return err
			}
			return s.recool(ctx, tx, j.CorpID, ids, set)
		})
		if err != nil {
			return nil, err
		}
		cp.After, cp.Done, cp.Changed = ids[len(ids)-1], cp.Done+int64(len(ids)), cp.Changed+int64(changed)
		if err := j.Checkpoint(ctx, cp, cp.Done, total); err != nil {
			return nil, err
		}
	}
}
