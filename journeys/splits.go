package journeys

import (
	"context"
	"math"
	"sort"
	"strings"

	"github.com/qiflow/qiflow/leads"
)

// BranchResult is one branch of a split: how many took it, how many of
// them reached the journey's goal, and how many are MQLs or further along
// the funnel now; with the goal rate's difference from the split's first
// branch, tested for significance (two-proportion z-test).
type BranchResult struct {
	Node        string  `json:"node"`
	Branch      string  `json:"branch"`
	Runs        int64   `json:"runs"`
	Goals       int64   `json:"goals"`
	MQLOrBetter int64   `json:"mql_or_better"`
	SQLOrBetter int64   `json:"sql_or_better"`
	GoalRate    float64 `json:"goal_rate"`
	// PValue compares this branch's goal rate with the first branch's (1
	// for the first); Significant when it is below 0.05.
	PValue      float64 `json:"p_value"`
	Significant bool    `json:"significant"`
}

var mqlOrBetter = map[string]bool{leads.StageMQL: true, leads.StageSAL: true, leads.StageSQL: true, leads.StageOpportunity: true, leads.StageCustomer: true}
var sqlOrBetter = map[string]bool{leads.StageSQL: true, leads.StageOpportunity: true, leads.StageCustomer: true}

// SplitResults reports every split branch of a journey (all versions).
func (s *Service) SplitResults(ctx context.Context, corp string, id int64) ([]BranchResult, error) {
	if _, err := s.Journey(ctx, corp, id); err != nil {
		return nil, err
	}
	byBranch := map[string]*BranchResult{}
	var after int64
	for {
		runs, err := branchRuns(ctx, s.db, id, after, 2000)
		if err != nil {
			return nil, err
		}
		if len(runs) == 0 {
			break
		}
		ids := make([]int64, len(runs))
		for i, r := range runs {
			ids[i] = r.LeadID
		}
		ps, err := s.leads.ProfilesOf(ctx, corp, uniq(ids))
		if err != nil {
			return nil, err
		}
		stage := make(map[int64]string, len(ps))
		for _, p := range ps {
			stage[p.LeadID] = p.Stage
		}
		for _, r := range runs {
			b := byBranch[r.Branch]
			if b == nil {
				node, name, _ := strings.Cut(r.Branch, ":")
				b = &BranchResult{Node: node, Branch: name}
				byBranch[r.Branch] = b
			}
			b.Runs++
			if r.State == StateGoal {
				b.Goals++
			}
			if mqlOrBetter[stage[r.LeadID]] {
				b.MQLOrBetter++
			}
			if sqlOrBetter[stage[r.LeadID]] {
				b.SQLOrBetter++
			}
		}
		after = runs[len(runs)-1].ID
	}
	out := make([]BranchResult, 0, len(byBranch))
	for _, b := range byBranch {
		b.GoalRate = float64(b.Goals) / float64(b.Runs)
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Node < out[j].Node || out[i].Node == out[j].Node && out[i].Branch < out[j].Branch
	})
	for i := range out {
		first := out[i]
		for j := range out {
			if out[j].Node == out[i].Node {
				first = out[j]
				break
			}
		}
		out[i].PValue = twoProportionP(first.Goals, first.Runs, out[i].Goals, out[i].Runs)
		out[i].Significant = out[i].PValue < 0.05
	}
	return out, nil
}

// twoProportionP is the two-sided p-value of a z-test that two rates
// (x1 of n1, x2 of n2) are equal (1 when it cannot be told).
func twoProportionP(x1, n1, x2, n2 int64) float64 {
	if n1 == 0 || n2 == 0 {
		return 1
	}
	p := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(p * (1 - p) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 1
	}
	z := math.Abs(float64(x1)/float64(n1)-float64(x2)/float64(n2)) / se
	return math.Erfc(z / math.Sqrt2)
}
