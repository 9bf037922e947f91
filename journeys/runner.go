package journeys

import (
	"context"
	"fmt"
	"time"

	"github.com/qiflow/qiflow/leads"
)

// Run loop tuning: how often an idle engine looks for due runs and due
// segment checks. An event wakes this instance's engine at once; another
// instance's finds the woken run at its next look.
const (
	idlePoll  = 200 * time.Millisecond
	checkPoll = time.Second
)

// Engine moves due runs and checks due segment members until ctx ends.
// Every instance runs one; claims keep them from taking the same run.
type Engine struct {
	s    *Service
	wake chan struct{}
	done chan struct{}
}

// Engine returns the service's engine (not started).
func (s *Service) Engine() *Engine {
	if s.engine == nil {
		s.engine = &Engine{s: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
	}
	return s.engine
}

// Wake makes the engine look for due runs now.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run loops until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	defer close(e.done)
	poll := time.NewTicker(idlePoll)
	defer poll.Stop()
	lastCheck := time.Time{}
	for {
		n, err := e.s.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			e.s.log.Error("journey tick", "err", err)
		}
		if time.Since(lastCheck) >= checkPoll {
			lastCheck = time.Now()
			if _, err := e.s.CheckDue(ctx); err != nil && ctx.Err() == nil {
				e.s.log.Error("segment checks", "err", err)
			}
		}
		if n >= claimBatch && err == nil {
			continue // more are due
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-e.wake:
		}
	}
}

// Done is closed when Run has returned.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Stats are a journey's counters and its nodes'.
type Stats struct {
	Journey *Journey    `json:"journey"`
	Nodes   []NodeStats `json:"nodes"`
}

// JourneyStats reads a journey's statistics (kept as runs move).
func (s *Service) JourneyStats(ctx context.Context, corp string, id int64) (*Stats, error) {
	j, err := s.Journey(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	ns, err := nodeStats(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	return &Stats{Journey: j, Nodes: ns}, nil
}

// Runs pages through a journey's runs (state "" any).
func (s *Service) Runs(ctx context.Context, corp string, id int64, state string, after int64, limit int) ([]Run, error) {
	if _, err := s.Journey(ctx, corp, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return runsOf(ctx, s.db, id, state, after, limit)
}

// RunActions lists what a run did, by step.
func (s *Service) RunActions(ctx context.Context, corp string, journey, run int64) ([]ActionRow, error) {
	rs, err := runsOf(ctx, s.db, journey, "", run-1, 1)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || rs[0].ID != run || rs[0].CorpID != corp {
		return nil, ErrJourneyNotFound
	}
	return actionsOf(ctx, s.db, run)
}

// DryStep is one step of a dry run: the node, and why the person would
// leave it by the exit named.
type DryStep struct {
	Node string `json:"node"`
	Type string `json:"type"`
	Exit string `json:"exit,omitempty"`
	Why  string `json:"why"`
}

// DryRun explains the way a lead would take through the journey's draft
// today: each condition's value, the split branch, when each wait would
// end, and the actions it would take, without taking them. A wait for an
// activity is followed by its timeout exit (what happens if the person
// does nothing).
func (s *Service) DryRun(ctx context.Context, corp string, id, lead int64) ([]DryStep, error) {
	j, err := s.Journey(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if len(j.Problems) > 0 {
		return nil, j.Draft.Validate()
	}
	g, err := compileGraph(j.DraftJSON)
	if err != nil {
		return nil, err
	}
	ps, err := s.leads.ProfilesOf(ctx, corp, []int64{lead})
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, leads.ErrNotFound
	}
	p := &ps[0]
	var entry *Node
	for i := range g.Nodes {
		if g.Nodes[i].Type == NodeEntry {
			entry = &g.Nodes[i]
			break
		}
	}
	now := s.now()
	r := &Run{JourneyID: id, LeadID: lead, CorpID: corp}
	var out []DryStep
	if g.goal != nil && s.holds(ctx, g.goal, corp, p) {
		return []DryStep{{Node: entry.ID, Type: NodeEntry, Why: "the goal is already true: the person would convert at once"}}, nil
	}
	n := entry
	seen := map[string]int{}
	for hop := 0; hop < maxHops && n != nil; hop++ {
		if seen[n.ID]++; seen[n.ID] > 2 {
			out = append(out, DryStep{Node: n.ID, Type: n.Type, Why: "the loop goes on from here"})
			break
		}
		step := DryStep{Node: n.ID, Type: n.Type}
		next := ""
		switch n.Type {
		case NodeEntry:
			step.Exit, step.Why, next = "next", "enters", n.Exits["next"]
		case NodeJump:
			step.Why, next = "jumps back to "+n.To, n.To
		case NodeExit:
			step.Why = "leaves the journey"
		case NodeSplit:
			b := pickBranch(n, r)
			step.Exit, step.Why, next = b, "the person's stable branch", n.Exits[b]
		case NodeCondition:
			step.Exit, step.Why = s.way(ctx, n, corp, p)
			next = n.Exits[step.Exit]
		case NodeWait:
			due, event := s.waitUntil(n.Wait, corp, now)
			at := time.UnixMilli(due).In(s.calendars.For(corp).Location()).Format("2006-01-02 15:04 MST")
			if event != "" {
				step.Exit, step.Why = "timeout", fmt.Sprintf("waits for %s until %s; without it, times out", event, at)
				next = n.Exits["timeout"]
			} else {
				step.Exit, step.Why, next = "next", "waits until "+at, n.Exits["next"]
			}
			now = time.UnixMilli(due)
		case NodeAction:
			step.Exit, step.Why, next = "next", "would "+describe(n.Action), n.Exits["next"]
		}
		out = append(out, step)
		n = g.byID[next]
	}
	return out, nil
}

func describe(a *Action) string {
	switch a.Kind {
	case ActionStage:
		return "move the lead to stage " + a.Stage
	case ActionStatus:
		return "set the lead's status to " + a.Status
	case ActionActivity:
		return "record the activity " + a.Activity
	case ActionSegmentAdd:
		return fmt.Sprintf("add the person to segment %d", a.Segment)
	case ActionSegmentRemove:
		return fmt.Sprintf("remove the person from segment %d", a.Segment)
	case ActionWebhook:
		return "post a webhook to " + a.URL
	case ActionScore:
		return fmt.Sprintf("adjust the score by %+g", a.Points)
	case ActionInvite:
		return fmt.Sprintf("queue the card of group code %d for the customer (their staff member confirms)", a.Code)
	case ActionNotify:
		return "send the lead's owner an app message: " + a.Text
	case ActionPool:
		return fmt.Sprintf("move the lead to pool %d", a.Pool)
	case ActionTag:
		return fmt.Sprintf("tag the contact (add %v, remove %v)", a.TagsAdd, a.TagsRemove)
	case ActionMessage:
		return "queue a message to the customer for their staff member to confirm: " + a.Text
	}
	return a.Kind
}

// Messages lists the customer messages a journey queued, newest first.
func (s *Service) Messages(ctx context.Context, corp string, id int64, limit int) ([]MessageView, error) {
	if _, err := s.Journey(ctx, corp, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return journeyMessages(ctx, s.db, id, limit)
}
