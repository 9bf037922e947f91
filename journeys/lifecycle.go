package journeys

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// Journey statuses: draft → published → paused ⇄ published → archived.
const (
	StatusDraft     = "draft"
	StatusPublished = "published"
	StatusPaused    = "paused"
	StatusArchived  = "archived"
)

// Errors a user can act on.
var (
	ErrJourneyNotFound = apperr.NotFound("journey not found")
	ErrArchived        = apperr.Conflict("archived", "the journey is archived")
	ErrNotPublished    = apperr.Conflict("not_published", "the journey is not published")
	ErrChanged         = apperr.Conflict("version_conflict", "the journey was published meanwhile; reload it and try again")
)

// Journey is a journey with its draft and the counters of its runs.
type Journey struct {
	ID        int64  `db:"id" json:"id"`
	CorpID    string `db:"corp_id" json:"corp_id"`
	Name      string `db:"name" json:"name"`
	Status    string `db:"status" json:"status"`
	Draft     Graph  `db:"-" json:"draft"`
	Version   int64  `db:"version" json:"version"` // the latest published (0: never)
	Enrolled  int64  `db:"enrolled" json:"enrolled"`
	Active    int64  `db:"active" json:"active"`
	Goals     int64  `db:"goals" json:"goals"`
	Exited    int64  `db:"exited" json:"exited"`
	CreatedAt int64  `db:"created_at" json:"created_at"`
	UpdatedAt int64  `db:"updated_at" json:"updated_at"`
	// Problems are what stops the draft from being published, by node.
	Problems  map[string]string `db:"-" json:"problems,omitempty"`
	DraftJSON string            `db:"draft" json:"-"`
}

func (j *Journey) decode() error {
	if err := json.Unmarshal([]byte(j.DraftJSON), &j.Draft); err != nil {
		return fmt.Errorf("journey %d draft: %w", j.ID, err)
	}
	if err := j.Draft.Validate(); err != nil {
		if ae, ok := apperr.As(err); ok {
			j.Problems = ae.Fields
		}
	}
	return nil
}

// SaveJourney creates (ID 0) or updates a journey's name and draft. A draft
// may be unfinished: what stops it from being published comes back as
// Problems, and Publish refuses it.
func (s *Service) SaveJourney(ctx context.Context, j Journey) (*Journey, error) {
	j.Name = strings.TrimSpace(j.Name)
	if j.Name == "" || len([]rune(j.Name)) > 64 {
		return nil, apperr.Field("name", "is required, at most 64 characters")
	}
	if err := checkSchema("draft", j.Draft); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(j.Draft)
	j.DraftJSON = string(b)
	now := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if j.ID == 0 {
			id, err := insertJourney(ctx, tx, j, now)
			j.ID = id
			return err
		}
		was, err := readJourney(ctx, tx, j.CorpID, j.ID)
		if err != nil {
			return err
		}
		if was.Status == StatusArchived {
			return ErrArchived
		}
		return updateDraft(ctx, tx, j, now)
	})
	if qsql.IsDuplicate(err) {
		return nil, apperr.Field("name", "another journey has this name")
	}
	if err != nil {
		return nil, err
	}
	return s.Journey(ctx, j.CorpID, j.ID)
}

// Journey reads one journey.
func (s *Service) Journey(ctx context.Context, corp string, id int64) (*Journey, error) {
	j, err := readJourney(ctx, s.db, corp, id)
	if err != nil {
		return nil, err
	}
	if err := j.decode(); err != nil {
		return nil, err
	}
	return j, s.addFieldProblems(ctx, j)
}

// addFieldProblems adds to a journey's problems what its draft says
// wrongly of the corp's own fields (Validate cannot know them).
func (s *Service) addFieldProblems(ctx context.Context, j *Journey) error {
	f, err := s.graphFieldProblems(ctx, j.CorpID, &j.Draft)
	if err != nil || len(f) == 0 {
		return err
	}
	if j.Problems == nil {
		j.Problems = map[string]string{}
	}
	for k, v := range f {
		if _, ok := j.Problems[k]; !ok {
			j.Problems[k] = v
		}
	}
	return nil
}

// Journeys lists a corp's journeys.
func (s *Service) Journeys(ctx context.Context, corp string) ([]Journey, error) {
	js, err := readJourneys(ctx, s.db, corp)
	if err != nil {
		return nil, err
	}
	for i := range js {
		if err := js[i].decode(); err != nil {
			return nil, err
		}
	}
	return js, nil
}

// PublishIn publishes the draft as a new version. Runs already on earlier
// versions stay there unless Migrate: then each moves to the node of the
// same id in the new version, or to Mapping[node]; a node where runs are
// that the new version lacks must be mapped.
type PublishIn struct {
	Migrate bool              `json:"migrate"`
	Mapping map[string]string `json:"mapping"`
	Actor   int64             `json:"-"`
}

// Publish validates the draft and publishes it as the next version (which
// never changes after). It returns the journey.
func (s *Service) Publish(ctx context.Context, corp string, id int64, in PublishIn) (*Journey, error) {
	j, err := s.Journey(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if j.Status == StatusArchived {
		return nil, ErrArchived
	}
	if err := j.Draft.Validate(); err != nil {
		return nil, err
	}
	if len(j.Problems) > 0 { // the corp's own fields, found by Journey
		return nil, apperr.Fields(j.Problems).Err()
	}
	next, err := compileGraph(j.DraftJSON)
	if err != nil {
		return nil, err
	}
	now := qsql.Millis(s.now())
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		version := j.Version + 1
		if err := insertVersion(ctx, tx, id, version, j.DraftJSON, in.Actor, now); err != nil {
			return err
		}
		if err := setPublished(ctx, tx, id, j.Version, version, now); err != nil {
			return err
		}
		if !in.Migrate || j.Version == 0 {
			return nil
		}
		at, err := activeNodes(ctx, tx, id, version)
		if err != nil {
			return err
		}
		f := apperr.Fields{}
		moves := map[string]string{}
		for _, node := range at {
			to := in.Mapping[node]
			if to == "" && next.byID[node] != nil {
				to = node
			}
			t := next.byID[to]
			switch {
			case to == "":
				f.Add("mapping."+node, "people are at this node, which the new version lacks: map it to a node")
			case t == nil || t.Type == NodeEntry:
				f.Add("mapping."+node, fmt.Sprintf("%q is not a node of the new version (or is an entry)", to))
			default:
				moves[node] = to
			}
		}
		if len(f) > 0 {
			return f.Err()
		}
		for from, to := range moves {
			// A run moved onto a wait keeps its timer; onto anything else it
			// runs that node at once.
			keep := next.byID[to].Type == NodeWait
			if err := migrateRuns(ctx, tx, id, version, from, to, keep, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Journey(ctx, corp, id)
}

// SetStatus pauses, resumes or archives a journey. A paused journey's runs
// hold where they are (their timers wait for the resume); archiving ends
// every active run (exited).
func (s *Service) SetStatus(ctx context.Context, corp string, id int64, status string) (*Journey, error) {
	j, err := s.Journey(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if j.Status == StatusArchived {
		return nil, ErrArchived
	}
	switch status {
	case StatusPaused, StatusPublished:
		if j.Version == 0 {
			return nil, ErrNotPublished
		}
	case StatusArchived:
	default:
		return nil, apperr.Field("status", "is published, paused or archived")
	}
	now := qsql.Millis(s.now())
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if err := setStatus(ctx, tx, id, status, now); err != nil {
			return err
		}
		switch {
		case status == StatusPaused && j.Status != StatusPaused:
			return shiftDue(ctx, tx, id, pauseShift)
		case status != StatusPaused && j.Status == StatusPaused:
			return shiftDue(ctx, tx, id, -pauseShift)
		}
		if status != StatusArchived {
			return nil
		}
		runs, err := activeRunsOfJourney(ctx, tx, id, nil)
		if err != nil {
			return err
		}
		return s.endRuns(ctx, tx, runs, StateExited, now)
	})
	if err != nil {
		return nil, err
	}
	return s.Journey(ctx, corp, id)
}

// published are a corp's published journeys with their current graphs.
func (s *Service) published(ctx context.Context, q sqlx.QueryerContext, corp string) ([]livejourney, error) {
	live, err := s.publishedOf(ctx, q, []string{corp})
	return live[corp], err
}

// publishedOf are the published journeys of corps with their current
// graphs, by corp.
func (s *Service) publishedOf(ctx context.Context, q sqlx.QueryerContext, corps []string) (map[string][]livejourney, error) {
	rows, err := publishedJourneysOf(ctx, q, corps)
	if err != nil {
		return nil, err
	}
	out := map[string][]livejourney{}
	for _, r := range rows {
		g, err := s.graph(ctx, r.ID, r.Version)
		if err != nil {
			return nil, err
		}
		out[r.CorpID] = append(out[r.CorpID], livejourney{id: r.ID, version: r.Version, g: g})
	}
	return out, nil
}

type livejourney struct {
	id, version int64
	g           *compiledGraph
}

// entry is the entry node of g that admits a trigger (nil: none).
func (lj livejourney) entries(match func(e *Entry) bool) *Node {
	for i := range lj.g.Nodes {
		n := &lj.g.Nodes[i]
		if n.Type == NodeEntry && n.Entry != nil && match(n.Entry) {
			return n
		}
	}
	return nil
}

// Enrol puts leads into a published journey by hand or through the API, at
// its manual entry (or, without one, its first entry). A lead already
// running, or not allowed back in by the re-entry setting, is skipped; it
// returns how many were enrolled.
func (s *Service) Enrol(ctx context.Context, corp string, id int64, ids []int64) (int, error) {
	j, err := s.Journey(ctx, corp, id)
	if err != nil {
		return 0, err
	}
	if j.Status != StatusPublished {
		return 0, ErrNotPublished
	}
	g, err := s.graph(ctx, id, j.Version)
	if err != nil {
		return 0, err
	}
	lj := livejourney{id: id, version: j.Version, g: g}
	entry := lj.entries(func(e *Entry) bool { return e.On == "manual" })
	if entry == nil {
		entry = lj.entries(func(*Entry) bool { return true })
	}
	ps, err := s.leads.ProfilesOf(ctx, corp, uniq(ids))
	if err != nil {
		return 0, err
	}
	if len(ps) != len(uniq(ids)) {
		return 0, apperr.Field("lead_ids", "names a lead that does not exist")
	}
	n := 0
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		var err error
		n, err = s.enrol(ctx, tx, corp, lj, entry, uniq(ids), qsql.Millis(s.now()))
		return err
	})
	return n, err
}

// enrol inserts runs at an entry for leads the re-entry setting admits,
// and counts them.
func (s *Service) enrol(ctx context.Context, tx *qsql.Tx, corp string, lj livejourney, entry *Node, ids []int64, now int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	past, err := lastRuns(ctx, tx, lj.id, ids)
	if err != nil {
		return 0, err
	}
	set := lj.g.Settings
	var admit []int64
	for _, id := range ids {
		last, ran := past[id]
		switch {
		case !ran:
		case last.active:
			continue // one run at a time
		case set.Reentry == "" || set.Reentry == "never":
			continue
		case set.Reentry == "after_days" && now < last.enteredAt+int64(set.ReentryDays)*int64(24*time.Hour/time.Millisecond):
			continue
		}
		admit = append(admit, id)
	}
	n, err := insertRuns(ctx, s.db, tx, corp, lj.id, lj.version, entry.ID, admit, now)
	if err != nil || n == 0 {
		return n, err
	}
	s.wakeAfter(tx)
	st := newStats()
	st.journey(lj.id).enrolled += int64(n)
	st.journey(lj.id).active += int64(n)
	st.nodes[nodeKey{lj.id, lj.version, entry.ID}] = &nodeDelta{entered: int64(n)}
	return n, writeStats(ctx, s.db, tx, st)
}

// trigger is what one lead event may do to journeys: wake the lead's runs
// waiting for its activity types, enrol the lead where an entry matches it,
// and end runs whose goal reads its fields or types.
type trigger struct {
	corp         string
	lead         int64
	contact      string // a saved contact, whose tags an entry on a tag reads
	wake         []string
	fields       []string
	types        []string
	scoreChanged bool
	matches      func(e *Entry, score *float64, tags []string) bool
}

// triggerOf reads a lead event; ok is false for events that move no journey.
func triggerOf(ev any) (t trigger, ok bool) {
	switch e := ev.(type) {
	case leads.LeadChanged:
		t.corp, t.lead = e.CorpID, e.LeadID
		anyField := false
		for _, k := range e.Kinds() {
			fs, ok := leads.ProfileFields[k]
			if !ok {
				anyField = true
				break
			}
			t.fields = append(t.fields, fs...)
		}
		types, fields := touchedByActivities(e.Activities)
		t.wake, t.types, t.fields = types, types, append(t.fields, fields...)
		if anyField { // a change no field names: every goal is checked
			t.fields, t.types = nil, nil
		}
		t.scoreChanged = touchesScore(e)
		t.matches = func(en *Entry, score *float64, _ []string) bool {
			switch en.On {
			case "score":
				return score != nil && *score >= en.Above
			case "lead_change":
				for _, c := range e.Changes {
					if c.Kind == en.Change && (en.To == "" || en.To == c.To) {
						return true
					}
				}
			case "activity":
				for _, a := range e.Activities {
					if a.Type == en.Activity && propsMatch(a.Properties, en.Properties) {
						return true
					}
				}
			}
			return false
		}
	case directory.ContactSaved:
		// Its lead is looked up with the batch's others.
		t.corp, t.contact, t.fields = e.CorpID, e.ExternalUserID, contactFields
		// "Tag added": the contact now has the entry's tag (re-entry rules
		// keep a person who keeps the tag from entering again).
		t.matches = func(en *Entry, _ *float64, tags []string) bool { return en.On == "tag" && contains(tags, en.Tag) }
	default:
		return t, false
	}
	return t, true
}

// HandleEvents is the bus subscriber's work for lead events: it wakes the
// runs waiting for them, enrols each lead where an entry admits its event,
// and ends runs whose goal an event makes true. A batch is read a
// statement per kind of lookup and corp, and writes (in one transaction)
// only where a run wakes or a lead enters; most events do neither.
func (s *Service) HandleEvents(ctx context.Context, evs []any) error {
	v, err := s.viewOf(ctx, evs)
	if err != nil {
		return err
	}
	return s.handleEvents(ctx, evs, v)
}

// handleEvents is HandleEvents with the batch's view read.
func (s *Service) handleEvents(ctx context.Context, evs []any, v *batchView) error {
	byCorp := map[string][]trigger{}
	var corps []string
	var refs []leadRef
	for _, ev := range evs {
		if e, ok := ev.(leads.LeadsRescored); ok {
			if err := s.goalsAfterRescore(ctx, e.CorpID); err != nil {
				return err
			}
			continue
		}
		t, ok := triggerOf(ev)
		if !ok {
			continue
		}
		if t.contact != "" {
			t.lead = v.leadOf[leads.Contact{CorpID: t.corp, ExternalUserID: t.contact}]
		}
		if t.lead == 0 { // a contact with no lead yet
			continue
		}
		if byCorp[t.corp] == nil {
			corps = append(corps, t.corp)
		}
		byCorp[t.corp] = append(byCorp[t.corp], t)
		refs = append(refs, leadRef{t.corp, t.lead})
	}
	// The runs of every lead of the batch, in one read.
	runs, err := activeRunsOfLeadsIn(ctx, s.db, refs)
	if err != nil {
		return err
	}
	for _, corp := range corps {
		if err := s.handleTriggers(ctx, corp, byCorp[corp], v.journeys[corp], runs); err != nil {
			return err
		}
	}
	return nil
}

// handleTriggers is handleEvents for one corp's events (each with its
// lead), against the corp's published journeys (live) and the leads'
// active runs.
func (s *Service) handleTriggers(ctx context.Context, corp string, ts []trigger, live []livejourney, runs map[int64][]Run) error {
	var tagsOf map[string][]string
	if s.dir != nil && enterOn(live, "tag") {
		var contacts []string
		for _, t := range ts {
			if t.contact != "" {
				contacts = append(contacts, t.contact)
			}
		}
		if len(contacts) > 0 {
			var err error
			if tagsOf, err = s.dir.TagNamesOf(ctx, corp, contacts); err != nil {
				return err
			}
		}
	}
	ids := make([]int64, 0, len(ts))
	for _, t := range ts {
		ids = append(ids, t.lead)
	}
	// "Score reached": read the scores once, when a journey enters on it and
	// a change may have moved them.
	scores := map[int64]*float64{}
	if enterOn(live, "score") && slices.ContainsFunc(ts, func(t trigger) bool { return t.scoreChanged }) {
		ps, err := s.leads.ProfilesOf(ctx, corp, ids)
		if err != nil {
			return err
		}
		for i := range ps {
			scores[ps[i].LeadID] = &ps[i].Score
		}
	}
	type entering struct {
		lead  int64
		lj    livejourney
		entry *Node
	}
	var enter []entering
	var wakes []trigger
	for _, t := range ts {
		// A run that starts waiting after this read waits for what comes
		// after it, not for this.
		if len(t.wake) > 0 && slices.ContainsFunc(runs[t.lead], func(r Run) bool { return r.State == StateEvent }) {
			wakes = append(wakes, t)
		}
		var score *float64
		if t.scoreChanged {
			score = scores[t.lead]
		}
		for _, lj := range live {
			if entry := lj.entries(func(e *Entry) bool { return t.matches(e, score, tagsOf[t.contact]) }); entry != nil {
				enter = append(enter, entering{t.lead, lj, entry})
			}
		}
	}
	if len(wakes) > 0 || len(enter) > 0 {
		now := qsql.Millis(s.now())
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			for _, t := range wakes {
				if err := wakeRuns(ctx, tx, corp, t.lead, t.wake, now); err != nil {
					return err
				}
			}
			if len(wakes) > 0 {
				s.wakeAfter(tx)
			}
			for _, e := range enter {
				if _, err := s.enrol(ctx, tx, corp, e.lj, e.entry, []int64{e.lead}, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(enter) > 0 { // the runs just started have goals too
			refs := make([]leadRef, len(ids))
			for i, id := range ids {
				refs[i] = leadRef{corp, id}
			}
			if runs, err = activeRunsOfLeadsIn(ctx, s.db, refs); err != nil {
				return err
			}
		}
	}
	for _, t := range ts {
		if err := s.checkGoals(ctx, corp, t.lead, t.fields, t.types, runs[t.lead]); err != nil {
			return err
		}
	}
	return nil
}

// checkGoals ends those of the lead's active runs (runs) whose journey's
// goal has become true (a run being moved by an engine right now is left to
// it: the engine checks the goal before each claim's steps).
func (s *Service) checkGoals(ctx context.Context, corp string, lead int64, fields, types []string, runs []Run) error {
	var p *leads.Profile
	for i := range runs {
		r := &runs[i]
		g, err := s.graph(ctx, r.JourneyID, r.Version)
		if err != nil {
			return err
		}
		if g.goal == nil || !g.goal.touchedBy(fields, types) && (fields != nil || types != nil) {
			continue
		}
		if p == nil {
			ps, err := s.leads.ProfilesOf(ctx, corp, []int64{lead})
			if err != nil || len(ps) == 0 {
				return err
			}
			p = &ps[0]
		}
		if !s.holds(ctx, g.goal, corp, p) {
			continue
		}
		err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			return s.endRuns(ctx, tx, []Run{*r}, StateGoal, qsql.Millis(s.now()))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// propsMatch reports whether an activity's properties have every wanted
// value (compared as text: code_id 7 matches "7").
func propsMatch(raw json.RawMessage, want map[string]string) bool {
	if len(want) == 0 {
		return true
	}
	var props map[string]any
	if json.Unmarshal(raw, &props) != nil {
		return false
	}
	for k, v := range want {
		if fmt.Sprint(props[k]) != v {
			return false
		}
	}
	return true
}

// segmentMoved enrols the leads that entered a segment in the journeys it
// starts, and ends the runs of those that left where the journey says so.
func (s *Service) segmentMoved(ctx context.Context, tx *qsql.Tx, g *Segment, ch change, now int64) error {
	live, err := s.published(ctx, tx, g.CorpID)
	if err != nil {
		return err
	}
	for _, lj := range live {
		entry := lj.entries(func(e *Entry) bool { return e.On == "segment" && e.Segment == g.ID })
		if entry == nil {
			continue
		}
		if _, err := s.enrol(ctx, tx, g.CorpID, lj, entry, ch.entered, now); err != nil {
			return err
		}
		if lj.g.Settings.ExitOnSegmentLeave && len(ch.exited) > 0 {
			runs, err := activeRunsOfJourney(ctx, tx, lj.id, ch.exited)
			if err != nil {
				return err
			}
			if err := s.endRuns(ctx, tx, runs, StateExited, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// endRuns ends active runs that no engine holds (a held one is left to its
// engine, which ends it itself), with their statistics.
func (s *Service) endRuns(ctx context.Context, tx *qsql.Tx, runs []Run, state string, now int64) error {
	st := newStats()
	for i := range runs {
		r := &runs[i]
		ok, err := s.endRunAsItIs(ctx, tx, r, state, now)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		jd := st.journey(r.JourneyID)
		jd.active--
		d := st.node(r, r.Node)
		if r.State == StateWaiting || r.State == StateEvent || r.State == StateWoken {
			d.waiting--
		}
		if state == StateGoal {
			jd.goals++
			d.conversions++
		} else {
			jd.exited++
		}
	}
	return writeStats(ctx, s.db, tx, st)
}

// endRunAsItIs ends a run where it is now: moved since it was read, it is
// read again; held by an engine, it is left to it (asked to check its goal
// and entry segment again once it has written the run back).
func (s *Service) endRunAsItIs(ctx context.Context, tx *qsql.Tx, r *Run, state string, now int64) (bool, error) {
	for range 3 {
		ok, err := endRun(ctx, tx, r, state, now)
		if err != nil || ok {
			return ok, err
		}
		fresh, held, err := readRun(ctx, tx, r.ID)
		if err != nil || fresh.ended() {
			return false, err
		}
		if held { // its engine checks the goal and the entry segment again after
			return false, markRecheck(ctx, tx, r.ID)
		}
		*r = fresh
	}
	return false, nil
}

// touchesScore reports whether a lead change may have moved its score.
func touchesScore(e leads.LeadChanged) bool {
	for _, k := range e.Kinds() {
		if k == leads.HistoryScore || k == leads.HistoryMerged || k == leads.HistoryUnmerged {
			return true
		}
	}
	return false
}

// enterOn reports whether a live journey has an entry of kind on.
func enterOn(live []livejourney, on string) bool {
	for _, lj := range live {
		if lj.entries(func(e *Entry) bool { return e.On == on }) != nil {
			return true
		}
	}
	return false
}

// goalsAfterRescore checks, after a rescore changed many leads at once
// (it publishes one LeadsRescored, not a change per lead), the goal of
// every active run whose journey's goal reads what a rescore changes, a
// page of runs at a time, and ends those whose goal now holds.
func (s *Service) goalsAfterRescore(ctx context.Context, corp string) error {
	js, err := s.Journeys(ctx, corp)
	if err != nil {
		return err
	}
	for _, j := range js {
		if j.Status != StatusPublished && j.Status != StatusPaused {
			continue
		}
		for after := int64(-1); ; {
			runs, err := activeRunsPage(ctx, s.db, j.ID, after, 500)
			if err != nil || len(runs) == 0 {
				if err != nil {
					return err
				}
				break
			}
			after = runs[len(runs)-1].LeadID
			if err := s.goalsOf(ctx, corp, runs); err != nil {
				return err
			}
		}
	}
	return nil
}

// goalsOf ends the runs among runs (of one journey) whose goal holds now.
func (s *Service) goalsOf(ctx context.Context, corp string, runs []Run) error {
	byVersion := map[int64][]Run{}
	for _, r := range runs {
		byVersion[r.Version] = append(byVersion[r.Version], r)
	}
	for version, rs := range byVersion {
		g, err := s.graph(ctx, rs[0].JourneyID, version)
		if err != nil {
			return err
		}
		if g.goal == nil || !g.goal.touchedBy(leads.RescoredFields, nil) {
			continue
		}
		ids := make([]int64, len(rs))
		for i, r := range rs {
			ids[i] = r.LeadID
		}
		ps, err := s.leads.ProfilesOf(ctx, corp, ids)
		if err != nil {
			return err
		}
		vs, err := s.judge(ctx, corp, g.goal, ps)
		if err != nil {
			return err
		}
		reached := map[int64]bool{}
		for _, v := range vs {
			reached[v.lead] = v.match
		}
		var done []Run
		for _, r := range rs {
			if reached[r.LeadID] {
				done = append(done, r)
			}
		}
		if len(done) == 0 {
			continue
		}
		if err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			return s.endRuns(ctx, tx, done, StateGoal, qsql.Millis(s.now()))
		}); err != nil {
			return err
		}
	}
	return nil
}
