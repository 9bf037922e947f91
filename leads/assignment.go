package leads

import (
	"context"
	"encoding/json"
	"fmt"
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
	CreatedAt int64   `db:"created_at" json:"created_at"`
	UpdatedAt int64   `db:"updated_at" json:"updated_at"`
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
	}
	return rules, err
}

// assign gives a new, unowned MQL to an SDR by the rules, in tx. It returns
// the history entry to record, or nil when the lead stays in the pool.
func (s *Service) assign(ctx context.Context, tx *qsql.Tx, corp string, leadID, now int64) (*HistoryEntry, error) {
	l, err := s.store.lead(ctx, tx, corp, leadID)
	if err != nil || l.OwnerUserID != 0 {
		return nil, err
	}
	rules, err := s.store.assignmentRules(ctx, tx, corp, RuleMQL)
	if err != nil || len(rules) == 0 {
		return nil, err
	}
	env, err := s.leadEnvOf(ctx, tx, corp, l)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		prog, err := compileLeadCond(r.Condition)
		if err != nil {
			continue
		}
		if ok, err := expr.Run(prog, env); err != nil || ok != true {
			continue
		}
		users := r.users()
		if len(users) == 0 {
			continue
		}
		p, err := s.store.pool(ctx, tx, corp, l.PoolID)
		if err != nil {
			return nil, err
		}
		day := s.calendars.For(corp).DayKey(qsql.FromMillis(now))
		// Each try takes the rotation's next position under the rule row's
		// lock; a user at a cap is passed over, each user tried at most once.
		for range users {
			pick, err := s.store.nextPick(ctx, tx, r.ID)
			if err != nil {
				return nil, err
			}
			u := users[pick%int64(len(users))]
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
			return &HistoryEntry{At: now, Kind: HistoryAssigned, To: itoa(u), Reason: "rule " + r.Name}, nil
		}
		return nil, nil // the matching rule's users are all at their caps
	}
	return nil, nil
}
