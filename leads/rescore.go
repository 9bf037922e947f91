package leads

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
)

// The rescore job (JobRescore): after a corp's fit or engagement rules or
// its settings change, every lead's fit and grade are recomputed, and its
// engagement is replayed from the stored activities when what engagement
// is computed by (the engagement rules, the half-life) changed since the
// last complete replay; a page of leads a transaction. A page is read once
// (its leads locked first), computed in Go, and each lead that changed is
// written once: fit, grade, engagement, cooling moment and, when it now
// meets the MQL bar, its promotion, with one history entry for the rescore
// (and one for the promotion).

type rescoreCheckpoint struct {
	After   int64  `json:"after"`
	Rules   string `json:"rules"` // the rules' and bounds' version the pass started with
	Done    int64  `json:"done"`
	Changed int64  `json:"changed"`
	// Engagement is the engagement rules' version the pass started with;
	// Replay, whether engagement is replayed: it changed since the last
	// complete replay.
	Engagement string `json:"engagement"`
	Replay     bool   `json:"replay"`
}

// RescoreResult is what a rescore did: the leads it went through, and
// those whose fit, grade or engagement changed.
type RescoreResult struct {
	Leads   int64 `json:"leads"`
	Changed int64 `json:"changed"`
}

// RunRescore is the JobRescore handler: pages of leads by id, a
// transaction each, with progress; cancelled between pages.
//
// On MySQL it works on three pages at once, each in its own transaction,
// which locks only its own leads. A page writes its leads and their history
// as soon as it has computed them, beside the others: none reads or locks a
// range another writes into, so they cannot deadlock. (When lead_rule_points
// was a table of its own, its upserts' gap locks deadlocked two pages
// writing at once, and pages took turns: 15% slower at 200,000 leads.) A
// page that assigns promoted leads takes its turn instead, after every page
// before it has committed (see startRescore). SQLite has one writer: a page
// at a time.
func (s *Service) RunRescore(ctx context.Context, j *jobs.Job) (any, error) {
	quiet := ctx
	ctx, cancel := context.WithCancel(bulk(ctx)) // bulk: one LeadsRescored at the end, not a LeadChanged a lead
	defer cancel()
	var cp rescoreCheckpoint
	if _, err := j.LoadCheckpoint(&cp); err != nil {
		return nil, err
	}
	total, err := s.store.countLeads(ctx, j.CorpID)
	if err != nil {
		return nil, err
	}
	page, depth := s.rescorePage, 3
	if s.db.SingleWriter() {
		depth = 1
	}
	var inflight []*rescoreRun // started, in page order
	// finish waits for the oldest page and records it in the checkpoint.
	finish := func() error {
		r := inflight[0]
		inflight = inflight[1:]
		if err := <-r.done; err != nil {
			return err
		}
		cp.After, cp.Done, cp.Changed = r.ids[len(r.ids)-1], cp.Done+int64(len(r.ids)), cp.Changed+int64(r.changed)
		return j.Checkpoint(ctx, cp, cp.Done, total)
	}
	// abandon stops the pages still running and waits for them to roll back.
	abandon := func(err error) (any, error) {
		cancel()
		for _, r := range inflight {
			<-r.done
		}
		return nil, err
	}
	after := cp.After // the last lead of the pages started
	for {
		version, err := s.store.rulesVersion(ctx, j.CorpID)
		if err != nil {
			return abandon(err)
		}
		if cp.Rules != version { // the rules changed: every lead again
			for len(inflight) > 0 {
				if err := finish(); err != nil {
					return abandon(err)
				}
			}
			cp, after = rescoreCheckpoint{Rules: version}, 0
			if cp.Engagement, err = s.store.engagementVersion(ctx, j.CorpID); err != nil {
				return abandon(err)
			}
			replayed, err := s.store.replayedVersion(ctx, j.CorpID)
			if err != nil {
				return abandon(err)
			}
			cp.Replay = replayed != cp.Engagement
		}
		ids, err := s.store.leadIDsAfter(ctx, j.CorpID, after, page)
		if err != nil {
			return abandon(err)
		}
		if len(ids) == 0 {
			for len(inflight) > 0 {
				if err := finish(); err != nil {
					return abandon(err)
				}
			}
			if cp.Replay {
				if err := s.store.setReplayedVersion(ctx, j.CorpID, cp.Engagement, qsql.Millis(s.now())); err != nil {
					return nil, err
				}
			}
			if s.store.bus != nil {
				if err := s.db.WriteTx(quiet, func(tx *qsql.Tx) error {
					return s.store.bus.Publish(quiet, tx, j.CorpID, LeadsRescored{CorpID: j.CorpID, At: qsql.Millis(s.now()), Key: fmt.Sprintf("%d/%s", j.ID, cp.Rules)})
				}); err != nil {
					return nil, err
				}
			}
			return RescoreResult{Leads: cp.Done, Changed: cp.Changed}, nil
		}
		var before <-chan struct{}
		if len(inflight) > 0 {
			before = inflight[len(inflight)-1].committed
		}
		inflight = append(inflight, s.startRescore(ctx, j.CorpID, ids, cp.Replay, before))
		after = ids[len(ids)-1]
		if len(inflight) == depth {
			if err := finish(); err != nil {
				return abandon(err)
			}
		}
	}
}

// rescoreRun is a page of a rescore being done.
type rescoreRun struct {
	ids       []int64
	committed chan struct{} // closed once this page and every page before it have committed
	done      chan error    // the page's outcome
	changed   int           // set before done is sent
}

// startRescore rescores a page of leads in a transaction of its own. A page
// that promotes leads by the corp's assignment or SLA rules (rows every page
// shares: the rules' rotation, the SDRs' counters) writes once before is
// closed, every earlier page committed; one whose writes touch only its own
// leads and their history writes at once, beside the others.
func (s *Service) startRescore(ctx context.Context, corp string, ids []int64, replay bool, before <-chan struct{}) *rescoreRun {
	r := &rescoreRun{ids: ids, committed: make(chan struct{}), done: make(chan error, 1)}
	wait := func() error {
		if before == nil {
			return nil
		}
		select {
		case <-before:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() {
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			p, err := s.planRescore(ctx, tx, corp, ids, replay, qsql.Millis(s.now()))
			if err != nil {
				return err
			}
			if len(p.promote) > 0 {
				if err := wait(); err != nil {
					return err
				}
			}
			r.changed = p.changed
			return s.writeRescore(ctx, tx, p)
		})
		if err == nil {
			if err = wait(); err == nil {
				close(r.committed)
			}
		}
		r.done <- err
	}()
	return r
}

// rescorePlan is what a rescore of a page of leads will write.
type rescorePlan struct {
	corp    string
	ms      int64
	set     Settings
	scores  []leadScore // the leads that changed
	history []historyRow
	promote []promotion // leads that now meet the MQL bar, with assignment or SLA rules to apply
	rules   *corpRules  // read when there are promotions
	replay  engagementReplay
	changed int // how many leads' fit, grade or engagement changed
}

// planRescore reads some leads of a corp in tx (locking them) and computes
// their rescore as of ms, their engagement replayed from their activities
// when replay is set; it writes nothing.
func (s *Service) planRescore(ctx context.Context, tx *qsql.Tx, corp string, ids []int64, replay bool, ms int64) (*rescorePlan, error) {
	// The leads are locked by this read (MySQL), so activities scored
	// meanwhile wait for the page and add to what it writes, and what is
	// read next (their activities among it) is as of the lock.
	rows, err := s.store.rescoreRows(ctx, tx, corp, ids)
	if err != nil || len(rows) == 0 {
		return &rescorePlan{corp: corp, ms: ms}, err
	}
	fitRules, err := s.store.fitRules(ctx, tx, corp)
	if err != nil {
		return nil, err
	}
	set, err := s.store.settings(ctx, tx, corp)
	if err != nil {
		return nil, err
	}
	// Sized for the worst case, every lead rescored and promoted: a page
	// grew these a dozen times over.
	p := &rescorePlan{corp: corp, ms: ms, set: set, scores: make([]leadScore, 0, len(rows)), history: make([]historyRow, 0, 2*len(rows))}
	if replay {
		engagementRules, err := s.store.rulesOf(ctx, tx, []string{corp})
		if err != nil {
			return nil, err
		}
		leadOfPerson := make(map[int64]int64, len(rows))
		for _, r := range rows {
			if r.Merged == 0 { // a lead merged into another scores nothing itself
				leadOfPerson[r.Person] = r.ID
			}
		}
		if p.replay, err = s.replayEngagement(ctx, tx, corp, leadOfPerson, engagementRules[corp], set, ms); err != nil {
			return nil, err
		}
	}
	fit := newFitScorer(fitRules)
	now := qsql.FromMillis(ms)
	// What the rules give each replayed lead now, to keep in its row in
	// place of what they gave it before (a rule that gives it nothing now,
	// or that no longer exists, is dropped).
	var givenNow map[int64][]ruleGiven
	if replay {
		givenNow = givenByLead(p.replay.given)
	}
	for _, r := range rows {
		u := r.leadScore
		points, why := fit.score(r.fitEnv)
		u.FitPoints, u.Grade = points, gradeOf(points, set)
		fitChanged := u.FitPoints != r.FitPoints || u.Grade != r.Grade
		was := decayed(r.Milli, r.At, now, set.HalfLifeDays)
		eng, engChanged := was, false
		if e := math.Max(0, p.replay.engagement[r.ID]); replay && r.Merged == 0 && math.Abs(e-was) >= 0.05 {
			eng, engChanged = e, true
			u.Milli, u.At = int64(math.Round(e*1000)), ms
		}
		// When the lead will cool (the threshold or half-life may have
		// changed even where its engagement did not); a second apart is
		// the same moment, as stored engagement is rounded.
		want := coolsAt(float64(u.Milli)/1000, u.At, set)
		coolsMoved := (want == nil) != (r.CoolsAt == nil) || (want != nil && (*want-*r.CoolsAt > 1000 || *r.CoolsAt-*want > 1000))
		if engChanged || coolsMoved {
			u.CoolsAt = want
		}
		if engChanged && want != nil {
			u.Cooling = false // above the threshold again
		}
		pointsChanged := false
		if replay && r.Merged == 0 {
			if pointsChanged, err = givenChanged(r.ID, r.RulePoints, givenNow[r.ID]); err != nil {
				return nil, err
			}
			if pointsChanged {
				u.RulePoints = encodeGiven(givenNow[r.ID])
			}
		}
		if !fitChanged && !engChanged && !coolsMoved && !pointsChanged {
			continue
		}
		if fitChanged || engChanged {
			p.changed++
			p.history = append(p.history, historyRow{corp, r.ID, rescoreEntry(r.leadScore, u, fitChanged, engChanged, was, eng, why, ms)})
		}
		if (fitChanged || engChanged) && r.Merged == 0 && r.Stage == StageLead &&
			eng >= float64(set.MQLThreshold) && gradeAtLeast(u.Grade, set.MQLMinGrade) {
			p.promote = append(p.promote, promotion{len(p.scores), eng})
		}
		p.scores = append(p.scores, u)
	}
	if len(p.promote) == 0 {
		return p, nil
	}
	// Promotions: in the leads' own write when there is nobody to assign
	// and no SLA to start, one by one when written otherwise.
	if p.rules, err = s.corpRules(ctx, tx, corp); err != nil {
		return nil, err
	}
	if len(p.rules.assign) == 0 && len(p.rules.sla) == 0 {
		for _, pr := range p.promote {
			u := &p.scores[pr.i]
			u.Stage, u.Status, u.StatusReason, u.Version = StageMQL, "new", "", u.Version+1
			p.history = append(p.history, historyRow{corp, u.ID, HistoryEntry{At: ms, Kind: HistoryStage, From: StageLead, To: StageMQL,
				Reason: mqlReason(pr.eng, u.Grade, set)}})
		}
		p.promote = nil
	}
	return p, nil
}

// writeRescore writes a page's rescore in the transaction it was planned in.
func (s *Service) writeRescore(ctx context.Context, tx *qsql.Tx, p *rescorePlan) error {
	if err := s.store.setScores(ctx, tx, p.scores, p.ms); err != nil {
		return err
	}
	for _, pr := range p.promote {
		u := p.scores[pr.i]
		promoted, err := s.promoteIfReady(ctx, tx, p.corp, p.rules, u.ID, pr.eng, u.Grade, p.set, p.ms)
		if err != nil {
			return err
		}
		p.history = append(p.history, promoted...)
	}
	return s.store.addHistories(ctx, tx, p.history)
}

// givenChanged reports whether what the rules give a lead now differs from
// what its row keeps.
func givenChanged(lead int64, stored *string, now []ruleGiven) (bool, error) {
	was, err := parseGiven(lead, stored)
	return !slices.Equal(was, now), err
}

// promotion is a lead that now meets the MQL bar: its index in a page's
// scores, and its engagement.
type promotion struct {
	i   int
	eng float64
}

// rescoreEntry is the history entry of a lead's rescore from was to is: a
// new fit (with the rules that gave it, why), a new engagement (from
// wasEng to eng, decayed to now), or both in one entry.
func rescoreEntry(was, is leadScore, fitChanged, engChanged bool, wasEng, eng float64, why []string, ms int64) HistoryEntry {
	fit := fitEntry(was.FitPoints, was.Grade, is.FitPoints, is.Grade, why, ms)
	if !engChanged {
		return fit
	}
	e := HistoryEntry{At: ms, Kind: HistoryScore, From: fmt.Sprintf("%.1f", wasEng), To: fmt.Sprintf("%.1f", eng)}
	if fitChanged {
		e.Reason = fmt.Sprintf("rescored by the current rules: fit %s → %s (%s); engagement %s → %s", fit.From, fit.To, fit.Reason, e.From, e.To)
	} else {
		e.Reason = fmt.Sprintf("rescored by the current rules: %s → %s", e.From, e.To)
	}
	return e
}
