package leads

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// MaxActivities is how many activities one call records.
const MaxActivities = 1000

// ActivityIn is one activity from another system. The person is named by
// their WeCom external contact or Qiflow's person id.
type ActivityIn struct {
	ExternalUserID string          `json:"external_userid"`
	PersonID       int64           `json:"person_id"`
	Type           string          `json:"type"`
	At             time.Time       `json:"at"`
	Properties     json.RawMessage `json:"properties"`
	// Key makes the call safe to repeat: an activity whose key was recorded
	// is a duplicate, not a second activity.
	Key string `json:"key"`
}

// Rejected is an activity refused, by its index in the call.
type Rejected struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ActivitiesResult is what a call recorded.
type ActivitiesResult struct {
	Recorded   int        `json:"recorded"`
	Duplicates int        `json:"duplicates"`
	Rejected   []Rejected `json:"rejected"`
}

var activityType = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,63}$`)

// RecordActivities records a batch of activities in one transaction. Each
// is checked on its own: a bad one is listed in Rejected with its field and
// reason and the others are recorded; nothing is half-written.
func (s *Service) RecordActivities(ctx context.Context, corp string, in []ActivityIn) (ActivitiesResult, error) {
	res := ActivitiesResult{Rejected: []Rejected{}}
	if len(in) == 0 || len(in) > MaxActivities {
		return res, apperr.Field("activities", fmt.Sprintf("holds 1 to %d activities", MaxActivities))
	}
	now := s.now()
	type ok struct {
		i     int
		props string
	}
	var good []ok
	for i, a := range in {
		reject := func(field, reason string) { res.Rejected = append(res.Rejected, Rejected{i, field, reason}) }
		switch {
		case (a.ExternalUserID == "") == (a.PersonID == 0):
			reject("external_userid", "name the person by external_userid or person_id (one of them)")
		case !activityType.MatchString(a.Type):
			reject("type", "is lowercase letters, digits, _ and ., at most 64, starting with a letter")
		case a.At.IsZero() || a.At.After(now.Add(time.Hour)):
			reject("at", "is required and not in the future")
		case len(a.Key) > 128:
			reject("key", "is at most 128 characters")
		default:
			props := strings.TrimSpace(string(a.Properties))
			if props == "" || props == "null" {
				props = "{}"
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(props), &obj); err != nil {
				reject("properties", "is a JSON object")
				continue
			}
			good = append(good, ok{i, props})
		}
	}
	checked := len(res.Rejected)
	record := func(tx *qsql.Tx) error {
		res.Recorded, res.Duplicates, res.Rejected = 0, 0, res.Rejected[:checked]
		var refs [][2]string
		for _, g := range good {
			if e := in[g.i].ExternalUserID; e != "" {
				refs = append(refs, [2]string{corp, e})
			}
		}
		people := map[[2]string]int64{}
		if len(refs) > 0 {
			var err error
			if people, err = s.store.peopleByIdentity(ctx, tx, IdentityWeCom, refs); err != nil {
				return err
			}
		}
		var ids []int64
		for _, g := range good {
			if in[g.i].PersonID > 0 {
				ids = append(ids, in[g.i].PersonID)
			}
		}
		known, err := s.resolvePeople(ctx, tx, corp, ids)
		if err != nil {
			return err
		}
		var rows []activityRow
		for _, g := range good {
			a := in[g.i]
			person := known[a.PersonID]
			if a.ExternalUserID != "" {
				person = people[[2]string{corp, a.ExternalUserID}]
			}
			if person == 0 {
				res.Rejected = append(res.Rejected, Rejected{g.i, "external_userid", "no such person in this corp"})
				continue
			}
			rows = append(rows, activityRow{Corp: corp, Person: person, Type: a.Type, At: qsql.Millis(a.At), Props: g.props, Key: a.Key})
		}
		n, err := s.recordAndScore(ctx, tx, rows, now)
		res.Recorded, res.Duplicates = n, len(rows)-n
		return err
	}
	err := s.db.WriteTx(ctx, record)
	for attempt := 1; qsql.IsDeadlock(err) && attempt < 3; attempt++ {
		// InnoDB chose this call as a deadlock's victim (inserts into the
		// same index gaps as another): it was rolled back and runs again.
		err = s.db.WriteTx(ctx, record)
	}
	sort.Slice(res.Rejected, func(i, j int) bool { return res.Rejected[i].Index < res.Rejected[j].Index })
	return res, err
}

// recordAndScore inserts activities (a key already recorded is skipped)
// and scores those this call inserted, by corp; it returns how many it
// inserted.
func (s *Service) recordAndScore(ctx context.Context, tx *qsql.Tx, rows []activityRow, now time.Time) (int, error) {
	people := make([][2]any, len(rows))
	for i, r := range rows {
		people[i] = [2]any{r.Corp, r.Person}
	}
	if err := s.store.lockLeadsOfPeople(ctx, tx, people); err != nil {
		return 0, err
	}
	batch := newBatchToken()
	n, err := s.store.insertActivities(ctx, tx, rows, batch, qsql.Millis(now))
	if err != nil || n == 0 {
		return n, err
	}
	fresh, err := s.store.insertedActivities(ctx, tx, batch)
	if err != nil {
		return n, err
	}
	owners := make([][2]any, len(fresh))
	for i, a := range fresh {
		owners[i] = [2]any{a.Corp, a.Person}
	}
	leadOf, err := s.store.leadsOfPeople(ctx, tx, owners)
	if err != nil {
		return n, err
	}
	byCorp := map[string][]scoredActivity{}
	var corps []string
	for _, a := range fresh {
		if lead := leadOf[a.Person]; lead > 0 {
			if byCorp[a.Corp] == nil {
				corps = append(corps, a.Corp)
			}
			byCorp[a.Corp] = append(byCorp[a.Corp], scoredActivity{Lead: lead, activityRow: a})
		}
	}
	var scored []scoredActivity
	for _, corp := range corps {
		scored = append(scored, byCorp[corp]...)
	}
	if err := s.store.publishActivities(ctx, tx, scored, qsql.Millis(now)); err != nil {
		return n, err
	}
	if len(corps) == 0 {
		return n, nil
	}
	rules, err := s.store.rulesOf(ctx, tx, corps)
	if err != nil {
		return n, err
	}
	for _, corp := range corps {
		if len(rules[corp]) == 0 {
			continue
		}
		if err := s.score(ctx, tx, corp, byCorp[corp], rules[corp], now); err != nil {
			return n, err
		}
	}
	return n, nil
}

func newBatchToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TimelineEntry is one thing that happened to a lead's person: a change of
// the lead, or an activity.
type TimelineEntry struct {
	At         int64           `json:"at"`
	Kind       string          `json:"kind"` // "lead" or "activity"
	Type       string          `json:"type"` // the history kind or activity type
	Actor      int64           `json:"actor_user_id,omitempty"`
	From       string          `json:"from,omitempty"`
	To         string          `json:"to,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Properties json.RawMessage `json:"properties,omitempty"`
}

// Timeline is the newest limit things that happened to a lead's person,
// newest first: the lead's history and the person's activities, and those
// of the people and leads merged into them (a merge undone takes its
// timeline back with it).
func (s *Service) Timeline(ctx context.Context, corp string, leadID int64, v Viewer, limit int) ([]TimelineEntry, error) {
	l, _, err := s.Get(ctx, corp, leadID, v)
	if err != nil {
		return nil, err
	}
	people, err := s.withAbsorbed(ctx, corp, l.PersonID)
	if err != nil {
		return nil, err
	}
	acts, err := s.store.activitiesOf(ctx, corp, people, limit)
	if err != nil {
		return nil, err
	}
	leadIDs, err := s.store.leadIDsOfPeople(ctx, corp, people)
	if err != nil {
		return nil, err
	}
	history, err := s.store.historiesOf(ctx, corp, leadIDs)
	if err != nil {
		return nil, err
	}
	out := make([]TimelineEntry, 0, len(history)+len(acts))
	for _, h := range history {
		out = append(out, TimelineEntry{At: h.At, Kind: "lead", Type: h.Kind, Actor: h.ActorUserID, From: h.From, To: h.To, Reason: h.Reason})
	}
	for _, a := range acts {
		out = append(out, TimelineEntry{At: a.At, Kind: "activity", Type: a.Type, Properties: json.RawMessage(a.Props)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At > out[j].At })
	return out[:min(len(out), limit)], nil
}

// withAbsorbed is a person and everyone merged into them, at any depth.
func (s *Service) withAbsorbed(ctx context.Context, corp string, person int64) ([]int64, error) {
	all, frontier := []int64{person}, []int64{person}
	for len(frontier) > 0 && len(all) < 1000 {
		next, err := s.store.absorbed(ctx, corp, frontier)
		if err != nil {
			return nil, err
		}
		all, frontier = append(all, next...), next
	}
	return all, nil
}

// resolvePeople maps person ids to the live people they are now (a merged
// person's activities belong to whom they were merged into); an id not of
// the corp is missing from the map.
func (s *Service) resolvePeople(ctx context.Context, tx *qsql.Tx, corp string, ids []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	into, err := s.store.mergedInto(ctx, tx, corp, ids)
	if err != nil {
		return nil, err
	}
	for id, to := range into {
		for hops := 0; to != 0 && hops < 100; hops++ {
			next, err := s.store.mergedInto(ctx, tx, corp, []int64{to})
			if err != nil {
				return nil, err
			}
			id2 := to
			if to = next[to]; to == 0 {
				out[id] = id2
			}
		}
		if _, ok := out[id]; !ok {
			out[id] = id
		}
	}
	return out, nil
}
