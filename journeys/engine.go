package journeys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
)

// Run states.
const (
	StateReady   = "ready"   // due to execute its node
	StateWaiting = "waiting" // a timer: its wait ends at due_at
	StateEvent   = "event"   // waiting for wait_event; due_at is the timeout
	StateWoken   = "woken"   // the event came: leave the wait by "happened"
	StateDone    = "done"    // reached an exit
	StateGoal    = "goal"    // reached the journey's goal
	StateExited  = "exited"  // taken out (left the entry segment, archived)
	StateFailed  = "failed"  // an action kept failing
)

// Run is one lead's way through a journey version.
type Run struct {
	ID        int64  `db:"id" json:"id"`
	CorpID    string `db:"corp_id" json:"corp_id"`
	JourneyID int64  `db:"journey_id" json:"journey_id"`
	Version   int64  `db:"version" json:"version"`
	LeadID    int64  `db:"lead_id" json:"lead_id"`
	Node      string `db:"node" json:"node"`
	State     string `db:"state" json:"state"`
	DueAt     *int64 `db:"due_at" json:"due_at,omitempty"`
	WaitEvent string `db:"wait_event" json:"wait_event,omitempty"`
	Branch    string `db:"branch" json:"branch,omitempty"` // the last split's node:branch
	Step      int    `db:"step" json:"step"`
	Attempts  int    `db:"attempts" json:"attempts,omitempty"`
	LastError string `db:"last_error" json:"last_error,omitempty"`
	EnteredAt int64  `db:"entered_at" json:"entered_at"`
	UpdatedAt int64  `db:"updated_at" json:"updated_at"`
	EndedAt   *int64 `db:"ended_at" json:"ended_at,omitempty"`

	token string
}

func (r *Run) ended() bool {
	switch r.State {
	case StateDone, StateGoal, StateExited, StateFailed:
		return true
	}
	return false
}

// Engine tuning: how long a claim holds its runs, how many a tick claims,
// how many nodes one run may pass in one claim (a loop always waits, so
// this only bounds a long straight graph), and action retries.
const (
	leaseFor    = 60 * time.Second
	claimBatch  = 500
	maxHops     = 64
	maxAttempts = 5
	retryBase   = 30 * time.Second
)

// SetLease sets how long a claim holds its runs (set before the engine
// starts; tests shorten it to see a takeover sooner).
func (s *Service) SetLease(d time.Duration) { s.leaseFor = d }

func (s *Service) lease() time.Duration {
	if s.leaseFor > 0 {
		return s.leaseFor
	}
	return leaseFor
}

// stats are the counter changes a claim batch makes, applied at once.
type stats struct {
	nodes    map[nodeKey]*nodeDelta
	journeys map[int64]*journeyDelta
}

type nodeKey struct {
	journey, version int64
	node             string
}

type nodeDelta struct{ entered, waiting, completed, failed, conversions int64 }

type journeyDelta struct{ enrolled, active, goals, exited int64 }

func newStats() *stats {
	return &stats{nodes: map[nodeKey]*nodeDelta{}, journeys: map[int64]*journeyDelta{}}
}

func (st *stats) node(r *Run, node string) *nodeDelta {
	k := nodeKey{r.JourneyID, r.Version, node}
	d := st.nodes[k]
	if d == nil {
		d = &nodeDelta{}
		st.nodes[k] = d
	}
	return d
}

func (st *stats) journey(id int64) *journeyDelta {
	d := st.journeys[id]
	if d == nil {
		d = &journeyDelta{}
		st.journeys[id] = d
	}
	return d
}

// Tick claims the runs due now (a batch), moves each as far as it goes,
// and writes them back in one transaction. It returns how many runs it
// moved; the caller ticks again at once while a tick finds a full batch.
func (s *Service) Tick(ctx context.Context) (int, error) {
	now := s.now()
	runs, err := claimDue(ctx, s.db, newToken(), qsql.Millis(now), qsql.Millis(now.Add(s.lease())), claimBatch)
	if err != nil || len(runs) == 0 {
		return 0, err
	}
	profiles, err := s.profilesFor(ctx, runs)
	if err != nil {
		s.releaseClaim(runs, err)
		return 0, err
	}
	st := newStats()
	var acts []actionRecord
	for i := range runs {
		r := &runs[i]
		g, err := s.graph(ctx, r.JourneyID, r.Version)
		if err != nil {
			s.log.Error("journey version unreadable", "journey", r.JourneyID, "version", r.Version, "err", err)
			r.State, r.LastError = StateFailed, truncate(err.Error(), 500)
			continue
		}
		acts = append(acts, s.advance(ctx, g, r, profiles[r.LeadID], st, now)...)
	}
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if err := writeRuns(ctx, s.db, tx, runs, qsql.Millis(now)); err != nil {
			return err
		}
		if err := writeActions(ctx, s.db, tx, acts); err != nil {
			return err
		}
		return writeStats(ctx, s.db, tx, st)
	})
	if err != nil {
		return 0, err
	}
	if err := s.recheckGoals(ctx, runs); err != nil {
		s.log.Warn("journey goals not rechecked", "err", err)
	}
	return len(runs), nil
}

// recheckGoals checks the goals of the batch's runs whose lead changed
// while this engine held them (the event's goal check left them to it).
func (s *Service) recheckGoals(ctx context.Context, runs []Run) error {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	marked, err := takeRechecks(ctx, s.db, ids)
	if err != nil {
		return err
	}
	for _, r := range marked {
		active, err := activeRunsOf(ctx, s.db, r.CorpID, r.LeadID)
		if err != nil {
			return err
		}
		if err := s.checkGoals(ctx, r.CorpID, r.LeadID, nil, nil, active); err != nil {
			return err
		}
		if err := s.checkEntrySegment(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// checkEntrySegment ends a run that should exit on leaving its entry
// segment and whose lead is no longer in it.
func (s *Service) checkEntrySegment(ctx context.Context, r Run) error {
	g, err := s.graph(ctx, r.JourneyID, r.Version)
	if err != nil || !g.Settings.ExitOnSegmentLeave {
		return err
	}
	for _, n := range g.Nodes {
		if n.Type != NodeEntry || n.Entry == nil || n.Entry.On != "segment" {
			continue
		}
		in, err := s.InSegment(ctx, n.Entry.Segment, r.LeadID)
		if err != nil || in {
			return err
		}
	}
	runs, err := activeRunsOf(ctx, s.db, r.CorpID, r.LeadID)
	if err != nil {
		return err
	}
	for _, fresh := range runs {
		if fresh.ID == r.ID {
			return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
				return s.endRuns(ctx, tx, []Run{fresh}, StateExited, qsql.Millis(s.now()))
			})
		}
	}
	return nil
}

// releaseClaim gives claimed runs back (due now) after a tick failed before
// moving them; should this fail too, their lease ends them anyway.
func (s *Service) releaseClaim(runs []Run, cause error) {
	s.log.Warn("journey runs released", "runs", len(runs), "err", cause)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = releaseRuns(ctx, s.db, runs, qsql.Millis(s.now()))
}

// profilesFor reads the profiles of the claimed runs' leads (a batch read
// per corp): conditions, goals and webhooks read them.
func (s *Service) profilesFor(ctx context.Context, runs []Run) (map[int64]*leads.Profile, error) {
	byCorp := map[string][]int64{}
	for _, r := range runs {
		byCorp[r.CorpID] = append(byCorp[r.CorpID], r.LeadID)
	}
	out := map[int64]*leads.Profile{}
	for corp, ids := range byCorp {
		ps, err := s.leads.ProfilesOf(ctx, corp, uniq(ids))
		if err != nil {
			return nil, err
		}
		for i := range ps {
			out[ps[i].LeadID] = &ps[i]
		}
	}
	return out, nil
}

// graph returns a published version, compiled once.
func (s *Service) graph(ctx context.Context, journey, version int64) (*compiledGraph, error) {
	k := graphKey{journey, version}
	if g, ok := s.graphs.m.Load(k); ok {
		return g.(*compiledGraph), nil
	}
	raw, err := readVersion(ctx, s.db, journey, version)
	if err != nil {
		return nil, err
	}
	g, err := compileGraph(raw)
	if err != nil {
		return nil, err
	}
	s.graphs.m.Store(k, g)
	return g, nil
}

// advance moves one claimed run through its graph until it waits or ends,
// taking its actions on the way; it records statistics in st and returns
// the actions to record.
func (s *Service) advance(ctx context.Context, g *compiledGraph, r *Run, p *leads.Profile, st *stats, now time.Time) []actionRecord {
	var acts []actionRecord
	ms := qsql.Millis(now)
	end := func(state string) {
		st.node(r, r.Node).completed++
		r.State, r.DueAt, r.WaitEvent = state, nil, ""
		jd := st.journey(r.JourneyID)
		jd.active--
		switch state {
		case StateGoal:
			jd.goals++
			st.node(r, r.Node).conversions++
		case StateExited, StateFailed:
			jd.exited++
		}
	}
	if p == nil { // the lead is gone (merged into another)
		end(StateExited)
		return nil
	}
	if g.goal != nil && s.holds(ctx, g.goal, r.CorpID, p) {
		end(StateGoal)
		return nil
	}
	move := func(to string) {
		st.node(r, r.Node).completed++
		r.Node, r.State, r.Step, r.Attempts, r.LastError, r.WaitEvent = to, StateReady, r.Step+1, 0, "", ""
		st.node(r, to).entered++
	}
	for hop := 0; hop < maxHops; hop++ {
		n := g.byID[r.Node]
		if n == nil {
			r.LastError = fmt.Sprintf("node %q is not in version %d", r.Node, r.Version)
			end(StateFailed)
			return acts
		}
		switch r.State {
		case StateWaiting:
			st.node(r, n.ID).waiting--
			move(n.Exits["next"])
			continue
		case StateEvent:
			st.node(r, n.ID).waiting--
			move(n.Exits["timeout"])
			continue
		case StateWoken:
			st.node(r, n.ID).waiting--
			move(n.Exits["happened"])
			continue
		}
		switch n.Type {
		case NodeEntry:
			move(n.Exits["next"])
		case NodeJump:
			move(n.To)
		case NodeExit:
			end(StateDone)
			return acts
		case NodeSplit:
			b := pickBranch(n, r)
			r.Branch = n.ID + ":" + b
			move(n.Exits[b])
		case NodeCondition:
			exit, _ := s.way(ctx, n, r.CorpID, p)
			move(n.Exits[exit])
		case NodeWait:
			due, event := s.waitUntil(n.Wait, r.CorpID, now)
			r.DueAt, r.WaitEvent = &due, event
			r.State = StateWaiting
			if event != "" {
				r.State = StateEvent
			}
			st.node(r, n.ID).waiting++
			return acts
		case NodeAction:
			rec, err := s.act(ctx, g, n, r, p, now)
			acts = append(acts, rec)
			var wait waitError
			if errors.As(err, &wait) { // quiet hours or a cap: the step waits, no failure
				due := qsql.Millis(wait.until)
				r.DueAt, r.LastError = &due, truncate(wait.Error(), 500)
				return acts
			}
			if err != nil {
				r.Attempts++
				r.LastError = truncate(err.Error(), 500)
				if r.Attempts >= maxAttempts || errors.Is(err, errPermanent) {
					st.node(r, n.ID).failed++
					end(StateFailed)
					return acts
				}
				due := ms + int64(retryBase/time.Millisecond)<<(r.Attempts-1)
				r.DueAt = &due
				return acts
			}
			// An action may change the lead (a stage, a scored activity):
			// the goal is checked on what it is now.
			if g.goal != nil && n.Action.Kind != ActionWebhook {
				if fresh, err := s.leads.ProfilesOf(ctx, r.CorpID, []int64{r.LeadID}); err == nil && len(fresh) == 1 {
					*p = fresh[0]
					if s.holds(ctx, g.goal, r.CorpID, p) {
						end(StateGoal)
						return acts
					}
				}
			}
			move(n.Exits["next"])
		}
	}
	// A long straight graph: continue at the next claim.
	r.DueAt = &ms
	return acts
}

// holds evaluates a condition for a lead now (false on error, logged: a
// condition that cannot be read must not send anyone down the yes way).
func (s *Service) holds(ctx context.Context, c *compiled, corp string, p *leads.Profile) bool {
	vs, err := s.judge(ctx, corp, c, []leads.Profile{*p})
	if err != nil || len(vs) == 0 {
		s.log.Warn("journey condition not evaluated", "lead", p.LeadID, "err", err)
		return false
	}
	return vs[0].match
}

// pickBranch picks a split's branch for a run: stable for the lead (the
// same person takes the same branch of this node, even on re-entry).
func pickBranch(n *Node, r *Run) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%s/%d", r.JourneyID, n.ID, r.LeadID)
	x := int(h.Sum32() % 100)
	for _, b := range n.Branches {
		if x < b.Percent {
			return b.Name
		}
		x -= b.Percent
	}
	return n.Branches[len(n.Branches)-1].Name
}

// waitUntil is when a wait ends (its timeout for an event) and the event
// it waits for ("" for time alone).
func (s *Service) waitUntil(w *Wait, corp string, now time.Time) (int64, string) {
	switch w.For {
	case "duration":
		return qsql.Millis(now.Add(time.Duration(w.Minutes) * time.Minute)), ""
	case "until":
		t, _ := time.Parse(time.RFC3339, w.Until)
		return qsql.Millis(t), ""
	case "workday":
		return qsql.Millis(s.nextWorkdayAt(corp, now, w.At)), ""
	case "activity":
		return qsql.Millis(now.Add(time.Duration(w.TimeoutMinutes) * time.Minute)), w.Activity
	}
	return qsql.Millis(now), ""
}

// nextWorkdayAt is the first moment after now that is hh:mm on a working
// day of the corp's calendar, in the corp's zone (holidays skipped, make-up
// workdays taken).
func (s *Service) nextWorkdayAt(corp string, now time.Time, at string) time.Time {
	cal := s.calendars.For(corp)
	h, _ := strconv.Atoi(at[:2])
	m, _ := strconv.Atoi(at[3:])
	local := now.In(cal.Location())
	day := time.Date(local.Year(), local.Month(), local.Day(), h, m, 0, 0, cal.Location())
	for i := 0; i < 400; i++ {
		t := day.AddDate(0, 0, i)
		if t.After(now) && cal.IsWorkday(t) {
			return t
		}
	}
	return day.AddDate(0, 0, 1)
}

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
