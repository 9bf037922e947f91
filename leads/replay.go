package leads

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Engagement replay: when the engagement rules change, the rescore job also
// recomputes each lead's engagement from the activities stored for its
// person (and the people merged into them), in the order they happened, by
// today's rules: caps, once-only rules, points decayed from each activity's
// time. A lead whose engagement changes gets the new one, what each rule
// has given it, a history entry with the before and after, and becomes an
// MQL if it now meets the bar.

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

// replayEngagement recomputes the engagement of leads of a corp in tx; it
// returns how many changed and the history to record.
func (s *Service) replayEngagement(ctx context.Context, tx *qsql.Tx, corp string, leads []int64, rules []Rule, set Settings, ms int64) (int, []historyRow, error) {
	rows, err := s.store.replayLeads(ctx, tx, corp, leads)
	if err != nil || len(rows) == 0 {
		return 0, nil, err
	}
	persons := make([]int64, 0, len(rows))
	leadOfPerson := map[int64]int64{}
	for _, r := range rows {
		persons = append(persons, r.Person)
		leadOfPerson[r.Person] = r.ID
	}
	absorbed, err := s.store.absorbedBy(ctx, tx, corp, persons)
	if err != nil {
		return 0, nil, err
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
	// Only what a rule scores is read: other activities give nothing.
	acts, err := s.store.activitiesOfPeople(ctx, tx, corp, persons, types)
	if err != nil {
		return 0, nil, err
	}
	// Each lead's activities in the order they happened: a person's come in
	// order; a lead with people merged into it needs its merged together.
	if len(absorbed) > 0 {
		slices.SortStableFunc(acts, func(a, b activityRow) int {
			return cmp.Or(cmp.Compare(leadOfPerson[a.Person], leadOfPerson[b.Person]), cmp.Compare(a.At, b.At))
		})
	}
	now := qsql.FromMillis(ms)
	engagement := map[int64]float64{}
	givenBy := map[[2]int64]given{}
	decoded := map[string]map[string]any{} // properties as stored → decoded, shared by equal ones
	for _, a := range acts {
		lead := leadOfPerson[a.Person]
		if lead == 0 || len(byType[a.Type]) == 0 {
			continue
		}
		props, ok := decoded[a.Props]
		if !ok {
			props = map[string]any{}
			_ = json.Unmarshal([]byte(a.Props), &props)
			decoded[a.Props] = props
		}
		env := activityEnv{Type: a.Type, Properties: props}
		for _, r := range byType[a.Type] {
			award, ok := s.award(r, env, givenBy, [2]int64{lead, r.ID})
			if !ok {
				continue
			}
			engagement[lead] += float64(award) * math.Pow(0.5, now.Sub(qsql.FromMillis(a.At)).Hours()/24/float64(set.HalfLifeDays))
		}
	}
	var history []historyRow
	var changed []int64
	var updates []engagementUpdate
	type ready struct {
		id    int64
		eng   float64
		grade string
	}
	var promote []ready
	for _, r := range rows {
		was := decayed(r.Milli, r.At, now, set.HalfLifeDays)
		eng := math.Max(0, engagement[r.ID])
		if math.Abs(eng-was) < 0.05 {
			continue
		}
		changed = append(changed, r.ID)
		milli := int64(math.Round(eng * 1000))
		u := engagementUpdate{Lead: r.ID, Milli: milli, At: ms, CoolsAt: coolsAt(float64(milli)/1000, ms, set), Cooling: r.Cooling}
		if u.CoolsAt != nil {
			u.Cooling = false // above the threshold again
		}
		updates = append(updates, u)
		history = append(history, historyRow{corp, r.ID, HistoryEntry{At: ms, Kind: HistoryScore, From: fmt.Sprintf("%.1f", was), To: fmt.Sprintf("%.1f", eng),
			Reason: fmt.Sprintf("rescored by the current rules: %.1f → %.1f", was, eng)}})
		if r.Stage == StageLead && eng >= float64(set.MQLThreshold) && gradeAtLeast(r.Grade, set.MQLMinGrade) {
			promote = append(promote, ready{r.ID, eng, r.Grade})
		}
	}
	if err := s.store.setEngagements(ctx, tx, updates); err != nil {
		return 0, nil, err
	}
	if len(promote) > 0 {
		rules, err := s.corpRules(ctx, tx, corp)
		if err != nil {
			return 0, nil, err
		}
		if len(rules.assign) == 0 && len(rules.sla) == 0 {
			// Nobody to assign to and no SLA to start: one statement for all.
			ids := make([]int64, len(promote))
			byID := map[int64]ready{}
			for i, p := range promote {
				ids[i], byID[p.id] = p.id, p
			}
			moved, err := s.store.promoteAll(ctx, tx, corp, ids, ms)
			if err != nil {
				return 0, nil, err
			}
			for _, id := range moved {
				history = append(history, historyRow{corp, id, HistoryEntry{At: ms, Kind: HistoryStage, From: StageLead, To: StageMQL,
					Reason: mqlReason(byID[id].eng, byID[id].grade, set)}})
			}
		} else {
			for _, p := range promote {
				promoted, err := s.promoteIfReady(ctx, tx, corp, rules, p.id, p.eng, p.grade, set, ms)
				if err != nil {
					return 0, nil, err
				}
				history = append(history, promoted...)
			}
		}
	}
	if len(changed) > 0 {
		if err := s.store.resetRulePoints(ctx, tx, changed); err != nil {
			return 0, nil, err
		}
		isChanged := make(map[int64]bool, len(changed))
		for _, id := range changed {
			isChanged[id] = true
		}
		mine := map[[2]int64]given{}
		for k, g := range givenBy {
			if isChanged[k[0]] {
				mine[k] = g
			}
		}
		if err := s.store.putRulePoints(ctx, tx, mine); err != nil {
			return 0, nil, err
		}
	}
	return len(changed), history, nil
}
