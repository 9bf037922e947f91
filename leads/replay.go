package leads

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"slices"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Engagement replay: when the engagement rules change, the rescore job also
// recomputes each lead's engagement from the activities stored for its
// person (and the people merged into them), in the order they happened, by
// today's rules: caps, once-only rules, points decayed from each activity's
// time. Every lead's record of what each rule has given it becomes what
// today's rules give; a lead whose engagement changes gets the new one, a
// history entry with the before and after, and becomes an MQL if it now
// meets the bar.

// DeleteRule removes an engagement rule and rescores the corp's leads.
func (s *Service) DeleteRule(ctx context.Context, corp string, id int64) error {
	ok, err := s.store.deleteRule(ctx, corp, id)
	if err != nil {
		return err
	}
	if !ok {
		return apperr.NotFound("scoring rule not found")
	}
	return s.enqueueRescore(ctx, corp)
}

// engagementReplay is what today's engagement rules give leads for their
// stored activities.
type engagementReplay struct {
	engagement map[int64]float64  // by lead, decayed to now
	given      map[[2]int64]given // by [lead, rule]
}

// replayEngagement recomputes in tx, as of ms, the engagement of the leads
// of some people of a corp (leadOfPerson) from the activities of those
// people and of the people merged into them. It writes nothing.
func (s *Service) replayEngagement(ctx context.Context, tx *qsql.Tx, corp string, leadOfPerson map[int64]int64, rules []Rule, set Settings, ms int64) (engagementReplay, error) {
	out := engagementReplay{engagement: map[int64]float64{}, given: map[[2]int64]given{}}
	if len(leadOfPerson) == 0 {
		return out, nil
	}
	persons := make([]int64, 0, len(leadOfPerson))
	for p := range leadOfPerson {
		persons = append(persons, p)
	}
	slices.Sort(persons)
	absorbed, err := s.store.absorbedBy(ctx, tx, corp, persons)
	if err != nil {
		return out, err
	}
	for merged, into := range absorbed {
		leadOfPerson[merged] = leadOfPerson[into]
		persons = append(persons, merged)
	}
	byType := map[string][]Rule{}
	var types []string
	for _, r := range rules {
		if byType[r.ActivityType] == nil {
			types = append(types, r.ActivityType)
		}
		byType[r.ActivityType] = append(byType[r.ActivityType], r)
	}
	now := qsql.FromMillis(ms)
	// A condition's outcome depends only on the activity's properties, and
	// the same properties recur (a webinar's thousand attendees): each rule
	// is evaluated once per distinct properties, by their stored text.
	type ruleProps struct {
		rule  int64
		props string
	}
	holds := map[ruleProps]bool{}
	decoded := map[string]map[string]any{} // properties as stored → decoded, shared by equal ones
	score := func(a replayActivity) {
		lead := leadOfPerson[a.Person]
		rules := byType[a.Type]
		if lead == 0 || len(rules) == 0 {
			return
		}
		decay := -1.0 // how much of a point is left today: reckoned at the first award
		for _, r := range rules {
			rp := ruleProps{r.ID, a.Props}
			ok, known := holds[rp]
			if !known {
				props, seen := decoded[a.Props]
				if !seen {
					props = map[string]any{}
					_ = json.Unmarshal([]byte(a.Props), &props)
					decoded[a.Props] = props
				}
				ok = s.holds(r, activityEnv{Type: a.Type, Properties: props})
				holds[rp] = ok
			}
			if !ok {
				continue
			}
			if award, ok := grant(r, out.given, [2]int64{lead, r.ID}); ok {
				if decay < 0 {
					decay = math.Pow(0.5, now.Sub(qsql.FromMillis(a.At)).Hours()/24/float64(set.HalfLifeDays))
				}
				out.engagement[lead] += float64(award) * decay
			}
		}
	}
	// Each lead's activities in the order they happened: a person's come in
	// order, and are scored as they are read; a lead with people merged
	// into it needs theirs together, so they are gathered and sorted first.
	visit := score
	var merged []replayActivity
	if len(absorbed) > 0 {
		visit = func(a replayActivity) { merged = append(merged, a) }
	}
	// Only what a rule scores is read: other activities give nothing.
	if err := s.store.eachActivityOfPeople(ctx, tx, corp, persons, types, visit); err != nil {
		return out, err
	}
	slices.SortStableFunc(merged, func(a, b replayActivity) int {
		return cmp.Or(cmp.Compare(leadOfPerson[a.Person], leadOfPerson[b.Person]), cmp.Compare(a.At, b.At))
	})
	for _, a := range merged {
		score(a)
	}
	return out, nil
}
