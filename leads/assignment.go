package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Assignment: a lead that becomes an MQL while in a pool is given to an SDR
// by the corp's rules, in order: the first rule whose condition holds for
// the lead rotates through its users (round-robin, the rotation's position
// taken under the rule row's lock, so instances share one rotation),
// skipping users at the pool's caps. No rule matches, or every user is at
// their cap: the lead stays in the pool.

// HistoryAssigned is an MQL given to an SDR by a rule.
const HistoryAssigned = "assigned"

// AssignmentRule is one rule.
type AssignmentRule struct {
	ID       int64  `db:"id" json:"id"`
	CorpID   string `db:"corp_id" json:"-"`
	Kind     string `db:"kind" json:"kind"` // mql (who gets a new MQL) or handoff (which rep gets an SQL)
	Position int    `db:"position" json:"position"`
	Name     string `db:"name" json:"name"`
	// Condition is an expression over the lead (source, channel, code_id,
	// pool_id, staff_userid); empty means every lead.
	Condition string  `db:"cond" json:"condition"`
	Users     []int64 `db:"-" json:"users"`
	UsersJSON string  `db:"users" json:"-"`
	// Strategy is how a user is picked: round_robin (in turn), weighted
	// (in turn, each as often as their weight) or least_loaded (who holds
	// the fewest leads in the lead's pool: the count its max_open caps).
	Strategy    string        `db:"strategy" json:"strategy"`
	Weights     map[int64]int `db:"-" json:"weights,omitempty"`
	WeightsJSON *string       `db:"weights" json:"-"`
	// WorkingHours: leads are assigned only in the corp's working hours;
	// the others wait in the pool and are assigned when work starts.
	WorkingHours bool  `db:"working_hours" json:"working_hours"`
	CreatedAt    int64 `db:"created_at" json:"created_at"`
	UpdatedAt    int64 `db:"updated_at" json:"updated_at"`
}

// leadEnv is what an assignment condition sees: the fit fields (source,
// channel, code, title, region, industry, company size, BANT) and the
// lead's pool, staff member, fit and grade.
type leadEnv struct {
	fitEnv
	PoolID      int64  `expr:"pool_id"`
	StaffUserID string `expr:"staff_userid"`
	Grade       string `expr:"grade"`
	FitPoints   int    `expr:"fit"`
}

// leadEnvOf is what a condition sees of a lead.
func (s *Service) leadEnvOf(ctx context.Context, tx *qsql.Tx, corp string, l *Lead) (leadEnv, error) {
	in, err := s.store.fitInputs(ctx, tx, corp, []int64{l.ID})
	if err != nil || len(in) == 0 {
		return leadEnv{}, cmpErr(err, ErrNotFound)
	}
	return leadEnv{fitEnv: in[0].fitEnv, PoolID: l.PoolID, StaffUserID: l.StaffUserID, Grade: l.Grade, FitPoints: l.FitPoints}, nil
}

// users are the users a rule rotates through.
func (r AssignmentRule) users() []int64 {
	var users []int64
	_ = json.Unmarshal([]byte(r.UsersJSON), &users)
	return users
}

// holds reports whether a rule's condition holds for a lead; a condition
// saved before it stopped compiling holds for nothing.
func holds(cond string, env leadEnv) bool {
	prog, err := compileLeadCond(cond)
	if err != nil {
		return false
	}
	ok, err := expr.Run(prog, env)
	return err == nil && ok == true
}

func compileLeadCond(cond string) (*vm.Program, error) {
	if strings.TrimSpace(cond) == "" {
		cond = "true"
	}
	return expr.Compile(cond, expr.Env(leadEnv{}), expr.AsBool())
}

// CreateAssignmentRule adds a rule at its position; users must belong to
// the corp (isUser says whether one does).
func (s *Service) CreateAssignmentRule(ctx context.Context, r AssignmentRule, isUser func(int64) (bool, error)) (*AssignmentRule, error) {
	f := apperr.Fields{}
	if r.Kind == "" {
		r.Kind = RuleMQL
	}
	if r.Kind != RuleMQL && r.Kind != RuleHandoff {
		f.Add("kind", "is mql (who gets a new MQL) or handoff (which sales rep gets an SQL)")
	}
	if n := strings.TrimSpace(r.Name); n == "" || len([]rune(n)) > 64 {
		f.Add("name", "is required, at most 64 characters")
	}
	if _, err := compileLeadCond(r.Condition); err != nil {
		f.Add("condition", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	if len(r.Users) == 0 || len(r.Users) > 200 {
		f.Add("users", "lists 1 to 200 users")
	}
	if r.Strategy == "" {
		r.Strategy = StrategyRoundRobin
	}
	if !slices.Contains([]string{StrategyRoundRobin, StrategyWeighted, StrategyLeastLoaded}, r.Strategy) {
		f.Add("strategy", "is round_robin, weighted or least_loaded")
	}
	for u, w := range r.Weights {
		if !slices.Contains(r.Users, u) {
			f.Add(fmt.Sprintf("weights.%d", u), "is not one of the rule's users")
		} else if w < 1 || w > 100 {
			f.Add(fmt.Sprintf("weights.%d", u), "is 1 to 100")
		}
	}
	for i, u := range r.Users {
		ok, err := isUser(u)
		if err != nil {
			return nil, err
		}
		if !ok {
			f.Add(fmt.Sprintf("users[%d]", i), "is not a user of this corp")
		}
	}
	if len(f) > 0 {
		return nil, f.Err()
	}
	b, _ := json.Marshal(r.Users)
	r.UsersJSON = string(b)
	if len(r.Weights) > 0 {
		w, _ := json.Marshal(r.Weights)
		ws := string(w)
		r.WeightsJSON = &ws
	}
	r.CreatedAt = qsql.Millis(s.now())
	r.UpdatedAt = r.CreatedAt
	if err := s.store.createAssignmentRule(ctx, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AssignmentRules lists a corp's rules in order.
func (s *Service) AssignmentRules(ctx context.Context, corp string) ([]AssignmentRule, error) {
	rules, err := s.store.assignmentRules(ctx, s.db, corp, "")
	for i := range rules {
		rules[i].Users = rules[i].users()
		if rules[i].WeightsJSON != nil {
			_ = json.Unmarshal([]byte(*rules[i].WeightsJSON), &rules[i].Weights)
		}
	}
	return rules, err
}

// assign gives a new, unowned MQL to an SDR by the rules, in tx. It returns
// the history entry to record, or nil when the lead stays in the pool.
func (s *Service) assign(ctx context.Context, tx *qsql.Tx, corp string, leadID, now int64) (*HistoryEntry, error) {
	rules, err := s.store.assignmentRules(ctx, tx, corp, RuleMQL)
	if err != nil || len(rules) == 0 {
		return nil, err
	}
	return s.assignBy(ctx, tx, corp, rules, leadID, now)
}

// assignBy is assign with the corp's rules read by the caller.
func (s *Service) assignBy(ctx context.Context, tx *qsql.Tx, corp string, rules []AssignmentRule, leadID, now int64) (*HistoryEntry, error) {
	l, err := s.store.lead(ctx, tx, corp, leadID)
	if err != nil || l.OwnerUserID != 0 {
		return nil, err
	}
	env, err := s.leadEnvOf(ctx, tx, corp, l)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		users := r.users()
		if !holds(r.Condition, env) || len(users) == 0 {
			continue
		}
		if r.WorkingHours && !s.calendars.For(corp).IsWorkingTime(qsql.FromMillis(now)) {
			return nil, nil // waits in the pool; AssignWaiting gives it out when work starts
		}
		p, err := s.store.pool(ctx, tx, corp, l.PoolID)
		if err != nil {
			return nil, err
		}
		day := s.calendars.For(corp).DayKey(qsql.FromMillis(now))
		order, err := s.pickOrder(ctx, tx, corp, p.ID, r, users)
		if err != nil {
			return nil, err
		}
		// A user at a cap is passed over, each user tried at most once.
		for _, u := range order {
			counted, err := s.store.countClaim(ctx, tx, corp, p.ID, u, day, p.MaxOpen, 0)
			if err != nil {
				return nil, err
			}
			if !counted {
				continue
			}
			won, err := s.store.takeLead(ctx, tx, corp, leadID, p.ID, u, now)
			if err != nil {
				return nil, err
			}
			if !won {
				return nil, s.store.uncountOpen(ctx, tx, corp, p.ID, u)
			}
			return &HistoryEntry{At: now, Kind: HistoryAssigned, To: itoa(u), Reason: "rule " + r.Name + " (" + r.Strategy + ")"}, nil
		}
		return nil, nil // the matching rule's users are all at their caps
	}
	return nil, nil
}

// Assignment strategies.
const (
	StrategyRoundRobin  = "round_robin"
	StrategyWeighted    = "weighted"
	StrategyLeastLoaded = "least_loaded"
)

// pickOrder is the order in which a rule's users are offered a lead: the
// rotation's next position is taken under the rule row's lock (so
// instances share one rotation), then the strategy orders from there.
func (s *Service) pickOrder(ctx context.Context, tx *qsql.Tx, corp string, pool int64, r AssignmentRule, users []int64) ([]int64, error) {
	pick, err := s.store.nextPick(ctx, tx, r.ID)
	if err != nil {
		return nil, err
	}
	switch r.Strategy {
	case StrategyWeighted:
		var weights map[int64]int
		if r.WeightsJSON != nil {
			_ = json.Unmarshal([]byte(*r.WeightsJSON), &weights)
		}
		return rotateDistinct(weightedSequence(users, weights), pick), nil
	case StrategyLeastLoaded:
		load, err := s.store.openCounts(ctx, tx, corp, pool, users)
		if err != nil {
			return nil, err
		}
		order := rotateDistinct(users, pick) // ties go in turn
		slices.SortStableFunc(order, func(a, b int64) int { return load[a] - load[b] })
		return order, nil
	}
	return rotateDistinct(users, pick), nil
}

// rotateDistinct is seq from position pick on (wrapping), each user once.
func rotateDistinct(seq []int64, pick int64) []int64 {
	var out []int64
	for i := range seq {
		u := seq[(int(pick%int64(len(seq)))+i)%len(seq)]
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// weightedSequence spreads users over a cycle as often as their weights
// (1 when not given), interleaved (smooth weighted round robin: a, b, a
// rather than a, a, b for weights 2 and 1).
func weightedSequence(users []int64, weights map[int64]int) []int64 {
	w := make([]int, len(users))
	total := 0
	for i, u := range users {
		if w[i] = weights[u]; w[i] < 1 {
			w[i] = 1
		}
		total += w[i]
	}
	current := make([]int, len(users))
	seq := make([]int64, 0, total)
	for range total {
		best := 0
		for i := range users {
			current[i] += w[i]
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		seq = append(seq, users[best])
	}
	return seq
}

// AssignWaiting gives out the unowned MQLs that rules could not assign when
// they became MQLs (outside working hours, or every user at a cap); cron,
// every minute. It returns how many it assigned.
func (s *Service) AssignWaiting(ctx context.Context) (int, error) {
	corps, err := s.store.corpsWithRules(ctx, RuleMQL)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, corp := range corps {
		ids, err := s.store.waitingMQLs(ctx, corp, 200)
		if err != nil {
			return n, err
		}
		for _, id := range ids {
			err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
				ms := qsql.Millis(s.now())
				h, err := s.assign(ctx, tx, corp, id, ms)
				if err != nil || h == nil {
					return err
				}
				n++
				l, err := s.store.lead(ctx, tx, corp, id)
				if err != nil {
					return err
				}
				if err := s.startSLA(ctx, tx, corp, l, SLAFirstTouch, l.OwnerUserID, ms); err != nil {
					return err
				}
				return s.store.addHistory(ctx, tx, corp, id, *h)
			})
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Outcomes of AssignOwner.
const (
	AssignedNow   = "assigned" // the lead is the user's now
	AssignedOwned = "owned"    // it had an owner already (never taken from them)
	AssignedAtCap = "at_cap"   // the user holds as many open leads as the pool allows
	AssignedNone  = "none"     // by the rules: no rule gave it out (none matched, outside working hours, all at caps)
)

// AssignOwner gives an unowned lead to user (0: by the corp's assignment
// rules for MQLs), within the pool's caps, starting the first-touch SLA,
// with the reason in its history. A lead with an owner keeps them; a user
// isUser denies is refused (a lead held by someone not of the corp would
// be seen by nobody). It answers what happened (AssignedNow and the
// others) and the owner.
func (s *Service) AssignOwner(ctx context.Context, corp string, leadID, user int64, reason string, isUser func(int64) (bool, error)) (string, int64, error) {
	if user != 0 && isUser != nil {
		ok, err := isUser(user)
		if err != nil {
			return "", 0, err
		}
		if !ok {
			return "", 0, apperr.Field("owner", fmt.Sprintf("user %d is not a user of the corp", user))
		}
	}
	outcome, owner := AssignedNone, int64(0)
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		ms := qsql.Millis(s.now())
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		if l.MergedInto != 0 {
			return ErrMerged
		}
		if l.OwnerUserID != 0 {
			outcome, owner = AssignedOwned, l.OwnerUserID
			return nil
		}
		var h *HistoryEntry
		if user == 0 {
			if h, err = s.assign(ctx, tx, corp, leadID, ms); err != nil || h == nil {
				outcome = AssignedNone
				return err
			}
		} else {
			p, err := s.store.pool(ctx, tx, corp, l.PoolID)
			if err != nil {
				return err
			}
			counted, err := s.store.countClaim(ctx, tx, corp, p.ID, user, s.calendars.For(corp).DayKey(qsql.FromMillis(ms)), p.MaxOpen, 0)
			if err != nil {
				return err
			}
			if !counted {
				outcome = AssignedAtCap
				return nil
			}
			won, err := s.store.takeLead(ctx, tx, corp, leadID, p.ID, user, ms)
			if err != nil {
				return err
			}
			if !won { // claimed (or moved) since it was read
				outcome = AssignedOwned
				return s.store.uncountOpen(ctx, tx, corp, p.ID, user)
			}
			h = &HistoryEntry{At: ms, Kind: HistoryAssigned, To: itoa(user)}
		}
		if reason = strings.TrimSpace(reason); reason != "" {
			h.Reason = strings.TrimSpace(h.Reason + " " + reason)
		}
		if l, err = s.store.lead(ctx, tx, corp, leadID); err != nil {
			return err
		}
		if err := s.startSLA(ctx, tx, corp, l, SLAFirstTouch, l.OwnerUserID, ms); err != nil {
			return err
		}
		outcome, owner = AssignedNow, l.OwnerUserID
		return s.store.addHistory(ctx, tx, corp, leadID, *h)
	})
	return outcome, owner, err
}
