package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Engagement scoring: rules give points for activities (when their
// condition holds), each rule capped per lead and once or repeatable. A
// lead's engagement is stored with the moment it is as of and decays with
// the corp's half-life when read, so nothing rewrites scores nightly. A lead
// whose engagement reaches the corp's threshold moves from lead to mql.
// Every point given is in the lead's history with its rule.

// HistoryScore is a change of engagement: points a rule gave for an
// activity, or a rescore. From and To are the engagement before and after
// (as of the change, one decimal); the reason names the points and rule.
const HistoryScore = "score"

// Rule is an engagement rule.
type Rule struct {
	ID           int64  `db:"id" json:"id"`
	CorpID       string `db:"corp_id" json:"-"`
	Name         string `db:"name" json:"name"`
	ActivityType string `db:"activity_type" json:"activity_type"`
	// Condition is an expression over the activity (type, properties),
	// e.g. `properties.minutes >= 30`; empty means always.
	Condition  string `db:"cond" json:"condition"`
	Points     int    `db:"points" json:"points"`
	MaxPoints  int    `db:"max_points" json:"max_points"` // per lead; 0 = no cap
	Repeatable bool   `db:"repeatable" json:"repeatable"`
	CreatedAt  int64  `db:"created_at" json:"created_at"`
	UpdatedAt  int64  `db:"updated_at" json:"updated_at"`
}

// Settings are a corp's scoring settings.
type Settings struct {
	HalfLifeDays int `db:"half_life_days" json:"half_life_days"`
	MQLThreshold int `db:"mql_threshold" json:"mql_threshold"`
	// Fit points from which a lead is graded A, B and C (below: D).
	GradeA int `db:"grade_a" json:"grade_a"`
	GradeB int `db:"grade_b" json:"grade_b"`
	GradeC int `db:"grade_c" json:"grade_c"`
	// MQLMinGrade is the grade a lead needs besides the engagement to
	// become an MQL (D: any).
	MQLMinGrade string `db:"mql_min_grade" json:"mql_min_grade"`
	// Cooling is what an MQL whose engagement decays below the threshold
	// does: "keep" (marked cooling) or "nurture" (back to the pool).
	Cooling string `db:"cooling_action" json:"cooling_action"`
}

var defaultSettings = Settings{HalfLifeDays: 30, MQLThreshold: 50, GradeA: 60, GradeB: 40, GradeC: 20, MQLMinGrade: "D", Cooling: CoolingKeep}

// What a cooled MQL does.
const (
	CoolingKeep    = "keep"
	CoolingNurture = "nurture"
)

// activityEnv is what a rule's condition sees. Unknown names are refused
// when the rule is saved.
type activityEnv struct {
	Type       string         `expr:"type"`
	Properties map[string]any `expr:"properties"`
}

// compile checks and compiles a condition.
func compile(cond string) (*vm.Program, error) {
	if strings.TrimSpace(cond) == "" {
		cond = "true"
	}
	return expr.Compile(cond, expr.Env(activityEnv{}), expr.AsBool())
}

// programs caches compiled conditions by rule id and version.
type programs struct{ m sync.Map }

type programKey struct {
	id      int64
	updated int64
}

func (p *programs) get(r Rule) (*vm.Program, error) {
	k := programKey{r.ID, r.UpdatedAt}
	if v, ok := p.m.Load(k); ok {
		return v.(*vm.Program), nil
	}
	prog, err := compile(r.Condition)
	if err == nil {
		p.m.Store(k, prog)
	}
	return prog, err
}

func (r *Rule) check() error {
	f := apperr.Fields{}
	if n := strings.TrimSpace(r.Name); n == "" || len([]rune(n)) > 64 {
		f.Add("name", "is required, at most 64 characters")
	}
	if !activityType.MatchString(r.ActivityType) {
		f.Add("activity_type", "is lowercase letters, digits, _ and ., at most 64, starting with a letter")
	}
	if r.Points == 0 || r.Points < -1000 || r.Points > 1000 {
		f.Add("points", "is between -1000 and 1000, not 0")
	}
	if r.MaxPoints < 0 {
		f.Add("max_points", "is 0 (no cap) or more")
	}
	if _, err := compile(r.Condition); err != nil {
		f.Add("condition", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	if len(f) > 0 {
		return f.Err()
	}
	return nil
}

// CreateRule adds an engagement rule; its condition is compiled and
// refused (422 naming the problem) when it does not compile.
func (s *Service) CreateRule(ctx context.Context, r Rule) (*Rule, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	r.CreatedAt = qsql.Millis(s.now())
	r.UpdatedAt = r.CreatedAt
	if err := s.store.createRule(ctx, &r); err != nil {
		return nil, err
	}
	return &r, s.enqueueRescore(ctx, r.CorpID)
}

// Rules lists a corp's engagement rules.
func (s *Service) Rules(ctx context.Context, corp string) ([]Rule, error) {
	return s.store.rules(ctx, corp, "")
}

// ScoringSettings returns a corp's settings (the defaults until set).
func (s *Service) ScoringSettings(ctx context.Context, corp string) (Settings, error) {
	return s.store.settings(ctx, s.db, corp)
}

// SetScoringSettings changes a corp's scoring settings. New grade bounds
// regrade every lead, and a new threshold or half-life moves every lead's
// cooling moment, in the background (the rescore job).
func (s *Service) SetScoringSettings(ctx context.Context, corp string, st Settings) (Settings, error) {
	f := apperr.Fields{}
	if st.HalfLifeDays < 1 || st.HalfLifeDays > 3650 {
		f.Add("half_life_days", "is between 1 and 3650")
	}
	if st.MQLThreshold < 1 {
		f.Add("mql_threshold", "is 1 or more")
	}
	if !(st.GradeA > st.GradeB && st.GradeB > st.GradeC && st.GradeC >= 1) {
		f.Add("grade_a", "grade_a > grade_b > grade_c >= 1 (no points is grade D)")
	}
	if !slices.Contains(grades, st.MQLMinGrade) {
		f.Add("mql_min_grade", "is A, B, C or D")
	}
	if st.Cooling != CoolingKeep && st.Cooling != CoolingNurture {
		f.Add("cooling_action", "is keep or nurture")
	}
	if len(f) > 0 {
		return st, f.Err()
	}
	was, err := s.store.settings(ctx, s.db, corp)
	if err != nil {
		return st, err
	}
	if err := s.store.putSettings(ctx, corp, st, qsql.Millis(s.now())); err != nil {
		return st, err
	}
	if was.GradeA != st.GradeA || was.GradeB != st.GradeB || was.GradeC != st.GradeC ||
		was.MQLThreshold != st.MQLThreshold || was.HalfLifeDays != st.HalfLifeDays {
		return st, s.enqueueRescore(ctx, corp)
	}
	return st, nil
}

// award is what rule r gives for an activity (env) to the lead of key k,
// given what it has given that lead: nothing when its condition does not
// hold, when it is once-only and gave already, or when its cap is reached.
// It records the award in given.
func (s *Service) award(r Rule, env activityEnv, given map[[2]int64]given, k [2]int64) (int, bool) {
	if !s.holds(r, env) {
		return 0, false
	}
	return grant(r, given, k)
}

// holds says whether rule r's condition holds for an activity; a rule saved
// before its condition stopped compiling holds for nothing.
func (s *Service) holds(r Rule, env activityEnv) bool {
	prog, err := s.programs.get(r)
	if err != nil {
		return false
	}
	ok, err := expr.Run(prog, env)
	return err == nil && ok == true
}

// grant is what rule r gives, its condition holding, to the lead of key k
// (nothing when it is once-only and gave already, or its cap is reached),
// recorded in given.
func grant(r Rule, given map[[2]int64]given, k [2]int64) (int, bool) {
	g := given[k]
	if !r.Repeatable && g.Times > 0 {
		return 0, false
	}
	award := r.Points
	if r.MaxPoints > 0 && award > 0 {
		award = min(award, r.MaxPoints-g.Points)
	}
	if award <= 0 && r.Points > 0 {
		return 0, false // capped
	}
	g.Points, g.Times = g.Points+award, g.Times+1
	given[k] = g
	return award, true
}

// coolsAt is when an engagement of eng as of at decays below the MQL
// threshold; nil when it is below already.
func coolsAt(eng float64, at int64, set Settings) *int64 {
	if eng < float64(set.MQLThreshold) {
		return nil
	}
	days := float64(set.HalfLifeDays) * math.Log2(eng/float64(set.MQLThreshold))
	t := at + int64(math.Ceil(days*86400000))
	return &t
}

// mqlReason says why a lead became an MQL.
func mqlReason(eng float64, grade string, set Settings) string {
	why := fmt.Sprintf("engagement %.1f reached the MQL threshold %d", eng, set.MQLThreshold)
	if set.MQLMinGrade != "D" {
		why += fmt.Sprintf(" with grade %s (at least %s)", grade, set.MQLMinGrade)
	}
	return why
}

// corpRules are a corp's assignment (kind mql) and SLA rules, read once for
// a batch of promotions.
type corpRules struct {
	assign []AssignmentRule
	sla    []SLARule
}

func (s *Service) corpRules(ctx context.Context, tx *qsql.Tx, corp string) (*corpRules, error) {
	assign, err := s.store.assignmentRules(ctx, tx, corp, RuleMQL)
	if err != nil {
		return nil, err
	}
	sla, err := s.store.slaRules(ctx, tx, corp)
	return &corpRules{assign: assign, sla: sla}, err
}

// promoteIfReady moves a lead from lead to mql when its engagement and
// grade meet the corp's bar, has it assigned and starts its owner's SLA;
// it returns the history. rules are the corp's (corpRules), read once by
// the caller for its batch.
func (s *Service) promoteIfReady(ctx context.Context, tx *qsql.Tx, corp string, rules *corpRules, lead int64, eng float64, grade string, set Settings, ms int64) ([]historyRow, error) {
	if eng < float64(set.MQLThreshold) || !gradeAtLeast(grade, set.MQLMinGrade) {
		return nil, nil
	}
	moved, err := s.store.promote(ctx, tx, corp, lead, StageLead, StageMQL, ms)
	if err != nil || !moved {
		return nil, err
	}
	out := []historyRow{{corp, lead, HistoryEntry{At: ms, Kind: HistoryStage, From: StageLead, To: StageMQL, Reason: mqlReason(eng, grade, set)}}}
	if len(rules.assign) > 0 {
		assigned, err := s.assignBy(ctx, tx, corp, rules.assign, lead, ms)
		if err != nil {
			return nil, err
		}
		if assigned != nil {
			out = append(out, historyRow{corp, lead, *assigned})
		}
	}
	if len(rules.sla) > 0 {
		// The new MQL's owner (assigned now, or who held it) owes a first touch.
		l, err := s.store.lead(ctx, tx, corp, lead)
		if err != nil {
			return nil, err
		}
		if l.OwnerUserID != 0 {
			if err := s.startSLABy(ctx, tx, corp, rules.sla, l, SLAFirstTouch, l.OwnerUserID, ms); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// decayed is a score as of at, decayed to now with the half-life.
func decayed(milli, at int64, now time.Time, halfLifeDays int) float64 {
	if milli == 0 {
		return 0
	}
	age := now.Sub(qsql.FromMillis(at))
	if age < 0 {
		age = 0
	}
	return float64(milli) / 1000 * math.Pow(0.5, age.Hours()/24/float64(halfLifeDays))
}

// scoredActivity is an activity newly recorded, to score.
type scoredActivity struct {
	Lead int64
	activityRow
}

// score gives the rules' points for newly recorded activities in tx,
// updates the leads' engagement as of now, records each award in the
// history and moves leads that reach the threshold from lead to mql.
// rules are the corp's rules, read once for the whole batch.
func (s *Service) score(ctx context.Context, tx *qsql.Tx, corp string, acts []scoredActivity, rules []Rule, now time.Time) error {
	byType := map[string][]Rule{}
	for _, r := range rules {
		byType[r.ActivityType] = append(byType[r.ActivityType], r)
	}
	acts = slices.DeleteFunc(slices.Clone(acts), func(a scoredActivity) bool { return len(byType[a.Type]) == 0 })
	if len(acts) == 0 {
		return nil // no rule scores these: nothing to read or write
	}
	set, err := s.store.settings(ctx, tx, corp)
	if err != nil {
		return err
	}
	var leadIDs []int64
	for _, a := range acts {
		leadIDs = append(leadIDs, a.Lead)
	}
	given, err := s.store.rulePoints(ctx, tx, leadIDs)
	if err != nil {
		return err
	}
	// Each lead's engagement as of now, read (under the lead's lock, taken
	// by the caller) at its first award, with the batch's awards so far:
	// every score entry says what the engagement was and became.
	type engagementNow struct {
		eng   float64
		grade string
	}
	current := map[int64]*engagementNow{}
	var order []int64
	var history []historyRow
	ms := qsql.Millis(now)
	for _, a := range acts {
		env := activityEnv{Type: a.Type, Properties: map[string]any{}}
		_ = json.Unmarshal([]byte(a.Props), &env.Properties) // checked to be an object when recorded
		for _, r := range byType[a.Type] {
			k := [2]int64{a.Lead, r.ID}
			award, ok := s.award(r, env, given, k)
			if !ok {
				continue
			}
			cur := current[a.Lead]
			if cur == nil {
				row, err := s.store.engagement(ctx, tx, a.Lead)
				if err != nil {
					return err
				}
				cur = &engagementNow{decayed(row.Milli, row.At, now, set.HalfLifeDays), row.Grade}
				current[a.Lead] = cur
				order = append(order, a.Lead)
			}
			was := cur.eng
			cur.eng += float64(award) * math.Pow(0.5, now.Sub(qsql.FromMillis(a.At)).Hours()/24/float64(set.HalfLifeDays))
			history = append(history, historyRow{corp, a.Lead, HistoryEntry{At: ms, Kind: HistoryScore, From: fmt.Sprintf("%.1f", was), To: fmt.Sprintf("%.1f", cur.eng),
				Reason: fmt.Sprintf("%+d %s (rule %s)", award, a.Type, r.Name)}})
		}
	}
	if err := s.store.putRulePoints(ctx, tx, order, given); err != nil { // a rule gave only to these
		return err
	}
	var rules2 *corpRules
	for _, lead := range order {
		cur := current[lead]
		if err := s.store.setEngagement(ctx, tx, lead, int64(math.Round(cur.eng*1000)), ms, coolsAt(cur.eng, ms, set)); err != nil {
			return err
		}
		if rules2 == nil {
			var err error
			if rules2, err = s.corpRules(ctx, tx, corp); err != nil {
				return err
			}
		}
		promoted, err := s.promoteIfReady(ctx, tx, corp, rules2, lead, cur.eng, cur.grade, set, ms)
		if err != nil {
			return err
		}
		history = append(history, promoted...)
	}
	return s.store.addHistories(ctx, tx, history)
}

// HistoryAdjust is a score adjusted by a journey or by hand.
const HistoryAdjust = "adjust"

// AdjustScore adds points (negative: takes them) to a lead's engagement
// now, with a reason in its history, and promotes it to MQL when the bar
// is met. key makes the call safe to repeat: an adjustment whose key was
// recorded changes nothing ("" : no key). It reports whether it applied.
func (s *Service) AdjustScore(ctx context.Context, corp string, leadID int64, points float64, reason, key string) (bool, error) {
	if points == 0 || math.Abs(points) > 1000 {
		return false, apperr.Field("points", "is between -1000 and 1000, not 0")
	}
	applied := false
	now := s.now()
	ms := qsql.Millis(now)
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		if key != "" {
			seen, err := s.store.seenEvents(ctx, tx, [][2]string{{corp, key}})
			if err != nil || seen[[2]string{corp, key}] {
				return err
			}
		}
		set, err := s.store.settings(ctx, tx, corp)
		if err != nil {
			return err
		}
		if err := s.addEngagement(ctx, tx, leadID, points, set, now); err != nil {
			return err
		}
		cur, err := s.store.engagement(ctx, tx, leadID)
		if err != nil {
			return err
		}
		eng := decayed(cur.Milli, cur.At, now, set.HalfLifeDays)
		history := []historyRow{{corp, leadID, HistoryEntry{At: ms, Kind: HistoryAdjust, To: fmt.Sprintf("%+g", points), Reason: truncate(reason, 500), eventKey: key}}}
		if l.Stage == StageLead {
			rules, err := s.corpRules(ctx, tx, corp)
			if err != nil {
				return err
			}
			promoted, err := s.promoteIfReady(ctx, tx, corp, rules, leadID, eng, l.Grade, set, ms)
			if err != nil {
				return err
			}
			history = append(history, promoted...)
		}
		applied = true
		return s.store.addHistories(ctx, tx, history)
	})
	return applied, err
}
