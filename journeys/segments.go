package journeys

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// Segment kinds.
const (
	KindStatic  = "static"   // a list: by hand, by import, by a journey
	KindAddOnly = "add_only" // joined when matching, never removed
	KindDynamic = "dynamic"  // joined and left as people match or stop
)

// Errors a user can act on.
var (
	ErrSegmentNotFound = apperr.NotFound("segment not found")
	ErrNotStatic       = apperr.Conflict("not_static", "only a static segment takes people from a journey")
	ErrStaticRebuild   = apperr.Conflict("static_segment", "a static segment has no condition to rebuild by")
)

// Segment is a named filter and who is in it.
type Segment struct {
	ID     int64  `db:"id" json:"id"`
	CorpID string `db:"corp_id" json:"corp_id"`
	Name   string `db:"name" json:"name"`
	Kind   string `db:"kind" json:"kind"`
	Filter Filter `db:"-" json:"filter"`
	// Version counts changes of the filter; BuiltVersion is the one the
	// members were last rebuilt for (they differ while a rebuild runs).
	Version      int64  `db:"version" json:"version"`
	BuiltVersion int64  `db:"built_version" json:"built_version"`
	Members      int64  `db:"member_count" json:"members"`
	BuiltAt      *int64 `db:"built_at" json:"built_at,omitempty"`
	CreatedAt    int64  `db:"created_at" json:"created_at"`
	UpdatedAt    int64  `db:"updated_at" json:"updated_at"`
	FilterJSON   string `db:"filter" json:"-"`
	// Building is the changed filter of the version being built (nil when
	// none): the members still follow Filter until it is swapped in.
	Building     *Filter `db:"-" json:"building,omitempty"`
	BuildingJSON *string `db:"building_filter" json:"-"`

	cond     *compiled
	building *compiled
}

// check validates a segment and compiles its filter.
func (g *Segment) check() error {
	f := apperr.Fields{}
	g.Name = strings.TrimSpace(g.Name)
	if g.Name == "" || len([]rune(g.Name)) > 64 {
		f.Add("name", "is required, at most 64 characters")
	}
	switch g.Kind {
	case KindStatic, KindAddOnly, KindDynamic:
	default:
		f.Add("kind", "is static, add_only or dynamic")
	}
	if len(f) > 0 {
		return f.Err()
	}
	if g.Kind == KindStatic && g.Filter.isZero() {
		g.Filter = Filter{Expr: "false"}
	}
	c, err := compileFilter("filter", g.Filter)
	if err != nil {
		return err
	}
	g.cond = c
	b, _ := json.Marshal(g.Filter)
	g.FilterJSON = string(b)
	return nil
}

func (t Filter) isZero() bool {
	return t.All == nil && t.Any == nil && t.Not == nil && t.Field == "" && t.Activity == "" && t.Expr == ""
}

func (g *Segment) decode() error {
	if err := json.Unmarshal([]byte(g.FilterJSON), &g.Filter); err != nil {
		return fmt.Errorf("segment %d filter: %w", g.ID, err)
	}
	c, err := compileStored(g.FilterJSON, g.Filter)
	if err != nil {
		return fmt.Errorf("segment %d filter no longer compiles: %w", g.ID, err)
	}
	g.cond = c
	if g.BuildingJSON != nil {
		g.Building = &Filter{}
		if err := json.Unmarshal([]byte(*g.BuildingJSON), g.Building); err != nil {
			return fmt.Errorf("segment %d building filter: %w", g.ID, err)
		}
		if g.building, err = compileStored(*g.BuildingJSON, *g.Building); err != nil {
			return fmt.Errorf("segment %d building filter no longer compiles: %w", g.ID, err)
		}
	}
	return nil
}

// CreateSegment saves a segment; a dynamic or add-only one is built in the
// background (its count starts at 0 and grows as the build goes).
func (s *Service) CreateSegment(ctx context.Context, g Segment) (*Segment, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	if err := s.checkFilter(ctx, g.CorpID, "filter", g.Filter); err != nil {
		return nil, err
	}
	now := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		id, err := insertSegment(ctx, tx, g, now)
		g.ID = id
		return err
	})
	if qsql.IsDuplicate(err) {
		return nil, apperr.Field("name", "another segment has this name")
	}
	if err != nil {
		return nil, err
	}
	if err := s.queueRebuild(ctx, &g); err != nil {
		return nil, err
	}
	return s.Segment(ctx, g.CorpID, g.ID)
}

// UpdateSegment changes a segment's name or filter; a new filter is a new
// version, rebuilt in the background (members move to it as the rebuild
// reaches them, each applied as a difference).
func (s *Service) UpdateSegment(ctx context.Context, g Segment) (*Segment, error) {
	was, err := s.Segment(ctx, g.CorpID, g.ID)
	if err != nil {
		return nil, err
	}
	g.Kind = was.Kind // a kind never changes: members were kept under its rules
	if err := g.check(); err != nil {
		return nil, err
	}
	if err := s.checkFilter(ctx, g.CorpID, "filter", g.Filter); err != nil {
		return nil, err
	}
	latest := was.FilterJSON
	if was.BuildingJSON != nil {
		latest = *was.BuildingJSON
	}
	changed := g.FilterJSON != latest
	// A segment that has served members keeps serving them by its old
	// filter while the new one builds; one never built takes it at once.
	staged := changed && g.Kind != KindStatic && was.BuiltVersion > 0
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if staged {
			return stageSegment(ctx, tx, g, qsql.Millis(s.now()))
		}
		return updateSegment(ctx, tx, g, changed, qsql.Millis(s.now()))
	})
	if qsql.IsDuplicate(err) {
		return nil, apperr.Field("name", "another segment has this name")
	}
	if err != nil {
		return nil, err
	}
	if changed {
		if err := s.queueRebuild(ctx, &g); err != nil {
			return nil, err
		}
	}
	return s.Segment(ctx, g.CorpID, g.ID)
}

// QueueRebuild queues a full rebuild of a segment now (one pass that
// applies only the difference), for whoever runs Qiflow: after an upgrade,
// or after data changed around it (a restored backup). It returns the
// rebuild's job. A rebuild already queued or running is the one returned;
// one running may have passed a lead changed meanwhile: ask again when it
// is done.
func (s *Service) QueueRebuild(ctx context.Context, corp string, id int64) (int64, error) {
	g, err := s.Segment(ctx, corp, id)
	if err != nil {
		return 0, err
	}
	if g.Kind == KindStatic {
		return 0, ErrStaticRebuild
	}
	return s.enqueueRebuild(ctx, g)
}

func (s *Service) queueRebuild(ctx context.Context, g *Segment) error {
	_, err := s.enqueueRebuild(ctx, g)
	return err
}

func (s *Service) enqueueRebuild(ctx context.Context, g *Segment) (int64, error) {
	if g.Kind == KindStatic || s.jobs == nil {
		return 0, nil
	}
	return s.jobs.Enqueue(ctx, g.CorpID, JobRebuild, fmt.Sprintf("segment:%d", g.ID), rebuildParams{Segment: g.ID}, 0)
}

// Segment reads one segment.
func (s *Service) Segment(ctx context.Context, corp string, id int64) (*Segment, error) {
	g, err := readSegment(ctx, s.db, corp, id)
	if err != nil {
		return nil, err
	}
	return g, g.decode()
}

// Segments lists a corp's segments.
func (s *Service) Segments(ctx context.Context, corp string) ([]Segment, error) {
	return s.segmentsOf(ctx, []string{corp})
}

// segmentsOf lists the segments of corps, by corp and id, decoded.
func (s *Service) segmentsOf(ctx context.Context, corps []string) ([]Segment, error) {
	gs, err := readSegmentsOf(ctx, s.db, corps)
	if err != nil {
		return nil, err
	}
	for i := range gs {
		if err := gs[i].decode(); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

// Preview is what a filter would match: counted over the corp's leads up to
// a limit, so the editor answers while the marketer types.
type Preview struct {
	Matched  int64 `json:"matched"`
	Scanned  int64 `json:"scanned"`
	Complete bool  `json:"complete"` // every lead was scanned
}

// previewLimit bounds a preview's pass (beyond it the answer is a sample).
const previewLimit = 50000

// PreviewFilter counts the leads a filter matches now.
func (s *Service) PreviewFilter(ctx context.Context, corp string, f Filter) (*Preview, error) {
	c, err := compileFilter("filter", f)
	if err != nil {
		return nil, err
	}
	if err := s.checkFilter(ctx, corp, "filter", f); err != nil {
		return nil, err
	}
	p := &Preview{Complete: true}
	err = s.scan(ctx, corp, c, func(page []verdict, _ int64) error {
		p.Scanned += int64(len(page))
		for _, v := range page {
			if v.match {
				p.Matched++
			}
		}
		if p.Scanned >= previewLimit {
			p.Complete = false
			return errStopScan
		}
		return nil
	})
	return p, err
}

var errStopScan = fmt.Errorf("stop")

// verdict is a condition's answer for one lead, and when to ask again.
type verdict struct {
	lead    int64
	match   bool
	checkAt int64
	pin     int // by hand: 1 in, -1 out (0: as stored)
}

const scanPage = 2000

// scan evaluates c over every live lead of the corp, a page at a time in
// lead order; fn gets each page's verdicts and the last lead id of the page.
func (s *Service) scan(ctx context.Context, corp string, c *compiled, fn func(page []verdict, last int64) error) error {
	var after int64
	for {
		ps, err := s.leads.Profiles(ctx, corp, after, scanPage, c.fields["fields"])
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return nil
		}
		vs, err := s.judge(ctx, corp, c, ps)
		if err != nil {
			return err
		}
		after = ps[len(ps)-1].LeadID
		if err := fn(vs, after); err == errStopScan {
			return nil
		} else if err != nil {
			return err
		}
		if len(ps) < scanPage {
			return nil
		}
	}
}

// judge evaluates c for profiles, with the activity counts it needs.
func (s *Service) judge(ctx context.Context, corp string, c *compiled, ps []leads.Profile) ([]verdict, error) {
	var counts map[int64][]leads.ActivityCount
	if len(c.queries) > 0 {
		ids := make([]int64, len(ps))
		for i, p := range ps {
			ids[i] = p.LeadID
		}
		var err error
		if counts, err = s.leads.CountActivities(ctx, corp, ids, c.activityQueries(s.now())); err != nil {
			return nil, err
		}
	}
	var tags map[string][]string
	if c.fields["tags"] && s.dir != nil {
		var exts []string
		for _, p := range ps {
			if p.ExternalUserID != "" {
				exts = append(exts, p.ExternalUserID)
			}
		}
		var err error
		if tags, err = s.dir.TagNamesOf(ctx, corp, exts); err != nil {
			return nil, err
		}
	}
	var teams map[int64][]string
	if c.fields["teams"] && s.teams != nil {
		var err error
		if teams, err = s.teams(ctx, corp); err != nil {
			return nil, err
		}
	}
	var groups map[int64][]string
	var names map[string]string
	if c.fields["groups"] || c.fields["group_names"] {
		ids := make([]int64, len(ps))
		for i, p := range ps {
			ids[i] = p.LeadID
		}
		var err error
		if groups, err = s.leads.GroupsOf(ctx, corp, ids); err != nil {
			return nil, err
		}
		if c.fields["group_names"] && s.dir != nil {
			var chats []string
			for _, gs := range groups {
				chats = append(chats, gs...)
			}
			if names, err = s.dir.GroupNames(ctx, corp, chats); err != nil {
				return nil, err
			}
		}
	}
	out := make([]verdict, len(ps))
	for i, p := range ps {
		cs := counts[p.LeadID]
		x := extras{tags: tags[p.ExternalUserID], teams: teams[p.OwnerUserID], groups: groups[p.LeadID]}
		for _, chat := range x.groups {
			if n := names[chat]; n != "" {
				x.groupNames = append(x.groupNames, n)
			}
		}
		ok, err := c.eval(p, x, cs)
		if err != nil {
			return nil, fmt.Errorf("lead %d: %w", p.LeadID, err)
		}
		out[i] = verdict{lead: p.LeadID, match: ok, checkAt: c.nextFlip(cs, p, s.now())}
	}
	return out, nil
}

// Member is a lead's membership of a segment, as stored: in or out, pinned by hand, when it entered and left.
type Member struct {
	Lead      int64  `db:"lead_id" json:"lead_id"`
	Member    bool   `db:"member" json:"member"`
	Pinned    int    `db:"pinned" json:"pinned,omitempty"`
	EnteredAt *int64 `db:"entered_at" json:"entered_at,omitempty"`
	ExitedAt  *int64 `db:"exited_at" json:"exited_at,omitempty"`
	CheckAt   *int64 `db:"check_at" json:"-"`
}

// change is the membership moves one apply made.
type change struct {
	entered, exited []int64
}

// apply writes the difference between verdicts and the stored membership
// of their leads, under the segment's kind, and returns who entered and
// who left. stored holds the rows of those leads read in tx; absent is the
// leads of the range that no longer exist (merged away): they leave.
func (s *Service) apply(ctx context.Context, tx *qsql.Tx, g *Segment, vs []verdict, stored map[int64]Member, now int64) (change, error) {
	var ch change
	var rows []Member
	for _, v := range vs {
		m, had := stored[v.lead]
		was := m.Member
		want := v.match
		pinned := m.Pinned
		if v.pin != 0 {
			m.Pinned = v.pin
		}
		switch {
		case m.Pinned != 0:
			want = m.Pinned > 0
		case g.Kind == KindStatic:
			want = was
		case g.Kind == KindAddOnly:
			want = was || v.match
		}
		var check *int64
		if v.checkAt > 0 && g.Kind == KindDynamic && m.Pinned == 0 || v.checkAt > 0 && g.Kind == KindAddOnly && !want {
			check = &v.checkAt
		}
		if want == was && had && eqPtr(check, m.CheckAt) && pinned == m.Pinned {
			continue
		}
		if !had && !want && check == nil && m.Pinned == 0 {
			continue // never in, nothing to watch: no row
		}
		m.Lead, m.Member, m.CheckAt = v.lead, want, check
		switch {
		case want && !was:
			m.EnteredAt, m.ExitedAt = &now, nil
			ch.entered = append(ch.entered, v.lead)
		case !want && was:
			m.ExitedAt = &now
			ch.exited = append(ch.exited, v.lead)
		}
		rows = append(rows, m)
	}
	if err := writeMembers(ctx, s.db, tx, g, rows, int64(len(ch.entered)-len(ch.exited)), now); err != nil {
		return ch, err
	}
	if len(ch.entered)+len(ch.exited) > 0 {
		if err := s.segmentMoved(ctx, tx, g, ch, now); err != nil {
			return ch, err
		}
	}
	return ch, nil
}

func eqPtr(a, b *int64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

type rebuildParams struct {
	Segment int64 `json:"segment"`
}

type rebuildCheckpoint struct {
	After   int64 `json:"after"`
	Version int64 `json:"version"`
	// Swapping: a changed filter's verdicts are built; they are being
	// swapped in (After is then the swap's cursor).
	Swapping bool `json:"swapping,omitempty"`
}

// RunRebuild is the rebuild job: one pass over the corp's leads in lead
// order, a page at a time; each page's difference from the stored members
// is applied in one transaction (never a wholesale replace), so the
// segment keeps serving while it is rebuilt and a resumed job continues
// from its checkpoint.
func (s *Service) RunRebuild(ctx context.Context, j *jobs.Job) (any, error) {
	var p rebuildParams
	if err := json.Unmarshal(j.Params, &p); err != nil {
		return nil, jobs.Permanent(err)
	}
	var cp rebuildCheckpoint
	if _, err := j.LoadCheckpoint(&cp); err != nil {
		return nil, err
	}
	// A definition changed while this job ran queues no second job (the
	// key is the segment's): the job goes round again until the version it
	// built is the latest.
	for {
		g, err := s.Segment(ctx, j.CorpID, p.Segment)
		if err != nil {
			return nil, jobs.Permanent(err)
		}
		if cp.Version != g.Version {
			cp = rebuildCheckpoint{Version: g.Version}
		}
		progress := func(after, scanned int64) error {
			cp.After = after
			return j.Checkpoint(ctx, cp, scanned, 0)
		}
		var res *RebuildResult
		if g.building != nil {
			res, err = s.redefine(ctx, g, &cp, progress)
		} else {
			res, err = s.rebuild(ctx, g, cp.After, progress)
		}
		if err != nil {
			return nil, err
		}
		now, err := s.Segment(ctx, j.CorpID, p.Segment)
		if err != nil {
			return nil, jobs.Permanent(err)
		}
		if now.Version == g.Version {
			return res, nil
		}
	}
}

// rebuildNow rebuilds a segment in the caller (benchmarks).
func (s *Service) rebuildNow(ctx context.Context, corp string, id int64) error {
	g, err := s.Segment(ctx, corp, id)
	if err != nil {
		return err
	}
	if g.building != nil {
		_, err = s.redefine(ctx, g, &rebuildCheckpoint{Version: g.Version}, nil)
		return err
	}
	_, err = s.rebuild(ctx, g, 0, nil)
	return err
}

// RebuildResult is what a rebuild changed.
type RebuildResult struct {
	Scanned int64 `json:"scanned"`
	Entered int64 `json:"entered"`
	Exited  int64 `json:"exited"`
}

// rebuild applies the difference between g's condition and its members,
// from the lead after on; progress (optional) hears after each page.
func (s *Service) rebuild(ctx context.Context, g *Segment, after int64, progress func(after, scanned int64) error) (*RebuildResult, error) {
	res := &RebuildResult{}
	start := after
	err := s.scanFrom(ctx, g.CorpID, g.cond, after, func(vs []verdict, last int64) error {
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			stored, err := readMembers(ctx, tx, g.ID, start, last)
			if err != nil {
				return err
			}
			seen := make(map[int64]bool, len(vs))
			for _, v := range vs {
				seen[v.lead] = true
			}
			for lead, m := range stored {
				if !seen[lead] && m.Member && m.Pinned == 0 {
					vs = append(vs, verdict{lead: lead}) // merged away: leaves a dynamic segment
				}
			}
			ch, err := s.apply(ctx, tx, g, vs, stored, qsql.Millis(s.now()))
			res.Entered += int64(len(ch.entered))
			res.Exited += int64(len(ch.exited))
			return err
		})
		if err != nil {
			return err
		}
		res.Scanned += int64(len(vs))
		start = last
		if progress != nil {
			return progress(last, res.Scanned)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		// Members past the last lead (merged away at the end) leave too.
		stored, err := readMembers(ctx, tx, g.ID, start, 1<<62)
		if err != nil {
			return err
		}
		var vs []verdict
		for lead, m := range stored {
			if m.Member && m.Pinned == 0 {
				vs = append(vs, verdict{lead: lead})
			}
		}
		ch, err := s.apply(ctx, tx, g, vs, stored, qsql.Millis(s.now()))
		if err != nil {
			return err
		}
		res.Exited += int64(len(ch.exited))
		return markBuilt(ctx, tx, g.ID, g.Version, qsql.Millis(s.now()))
	})
	return res, err
}

// scanFrom is scan starting after a lead id.
func (s *Service) scanFrom(ctx context.Context, corp string, c *compiled, after int64, fn func(page []verdict, last int64) error) error {
	for {
		ps, err := s.leads.Profiles(ctx, corp, after, scanPage, c.fields["fields"])
		if err != nil || len(ps) == 0 {
			return err
		}
		vs, err := s.judge(ctx, corp, c, ps)
		if err != nil {
			return err
		}
		after = ps[len(ps)-1].LeadID
		if err := fn(vs, after); err != nil {
			return err
		}
		if len(ps) < scanPage {
			return nil
		}
	}
}

// UpdateMembership re-evaluates, for the leads the events are about, the
// segments whose conditions name what changed (a stage change never
// re-checks a segment on tags), and applies the differences.
func (s *Service) UpdateMembership(ctx context.Context, evs []any) error {
	v, err := s.viewOf(ctx, evs)
	if err != nil {
		return err
	}
	return s.updateMembership(ctx, evs, v)
}

// updateMembership is UpdateMembership with the batch's view read.
func (s *Service) updateMembership(ctx context.Context, evs []any, v *batchView) error {
	type touch struct {
		fields []string
		types  []string
		any    bool
	}
	byCorp := map[string]map[int64]*touch{}
	for _, ev := range evs {
		var corp string
		var lead int64
		var fields, types []string
		anyField := false
		switch e := ev.(type) {
		case leads.LeadChanged:
			corp, lead = e.CorpID, e.LeadID
			for _, k := range e.Kinds() {
				fs, ok := leads.ProfileFields[k]
				if !ok {
					anyField = true
				}
				fields = append(fields, fs...)
			}
			ts, fs := touchedByActivities(e.Activities)
			types, fields = ts, append(fields, fs...)
		case directory.ContactSaved:
			corp, lead = e.CorpID, v.leadOf[leads.Contact{CorpID: e.CorpID, ExternalUserID: e.ExternalUserID}]
			fields = contactFields
		case leads.LeadsRescored:
			if err := s.rebuildTouched(ctx, e.CorpID, leads.RescoredFields); err != nil {
				return err
			}
			continue
		case auth.TeamsChanged:
			if err := s.ownersTeamsChanged(ctx, e); err != nil {
				return err
			}
			continue
		default:
			continue
		}
		if lead == 0 {
			continue
		}
		if byCorp[corp] == nil {
			byCorp[corp] = map[int64]*touch{}
		}
		t := byCorp[corp][lead]
		if t == nil {
			t = &touch{}
			byCorp[corp][lead] = t
		}
		t.fields = append(t.fields, fields...)
		t.types = append(t.types, types...)
		t.any = t.any || anyField
	}
	for corp, touched := range byCorp {
		segs := v.segments[corp]
		for i := range segs {
			g := &segs[i]
			if g.Kind == KindStatic {
				continue
			}
			var ids []int64
			for lead, t := range touched {
				if t.any || g.cond.touchedBy(t.fields, t.types) {
					ids = append(ids, lead)
				}
			}
			if err := s.reevaluate(ctx, corp, g, ids); err != nil {
				return err
			}
		}
	}
	return nil
}

// ownersTeamsChanged re-evaluates, in the segments whose conditions name
// the owner's teams, the leads of the users whose teams changed, a page at
// a time.
func (s *Service) ownersTeamsChanged(ctx context.Context, e auth.TeamsChanged) error {
	segs, err := s.Segments(ctx, e.CorpID)
	if err != nil {
		return err
	}
	var touched []*Segment
	for i := range segs {
		if g := &segs[i]; g.Kind != KindStatic && g.cond.touchedBy([]string{"teams"}, nil) {
			touched = append(touched, g)
		}
	}
	if len(touched) == 0 {
		return nil
	}
	for after := int64(0); ; {
		ids, err := s.leads.LeadsOwnedBy(ctx, e.CorpID, e.UserIDs, after, 1000)
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, g := range touched {
			if err := s.reevaluate(ctx, e.CorpID, g, ids); err != nil {
				return err
			}
		}
		after = ids[len(ids)-1]
	}
}

// reevaluate judges leads for one segment and applies the difference.
func (s *Service) reevaluate(ctx context.Context, corp string, g *Segment, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	vs, err := s.judgeLeads(ctx, corp, g.cond, ids)
	if err != nil {
		return err
	}
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if g.building != nil { // the version being built must look at them again
			if err := markDirty(ctx, s.db, tx, g.ID, ids); err != nil {
				return err
			}
		}
		stored, err := readMembersOf(ctx, tx, g.ID, ids)
		if err != nil {
			return err
		}
		_, err = s.apply(ctx, tx, g, vs, stored, qsql.Millis(s.now()))
		return err
	})
}

// CheckDue re-evaluates the members whose windowed conditions may have
// changed by now ("no activity for 30 days" turning true), claimed a batch
// at a time by clearing check_at where it still holds the time read, so
// two instances never check one row twice. It returns how many it checked.
func (s *Service) CheckDue(ctx context.Context) (int, error) {
	due, err := claimDueChecks(ctx, s.db, qsql.Millis(s.now()), 500)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	bySeg := map[int64][]int64{}
	corps := map[int64]string{}
	for _, d := range due {
		bySeg[d.Segment] = append(bySeg[d.Segment], d.Lead)
		corps[d.Segment] = d.Corp
	}
	for id, ids := range bySeg {
		g, err := s.Segment(ctx, corps[id], id)
		if err == ErrSegmentNotFound {
			continue
		}
		if err != nil {
			return 0, err
		}
		if err := s.reevaluate(ctx, g.CorpID, g, ids); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

// Pin adds (in) or removes (!in) leads by hand: the condition no longer
// decides for them, in any kind of segment.
func (s *Service) Pin(ctx context.Context, corp string, id int64, ids []int64, in bool) (*Segment, error) {
	g, err := s.Segment(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	ps, err := s.leads.ProfilesOf(ctx, corp, ids)
	if err != nil {
		return nil, err
	}
	if len(ps) != len(uniq(ids)) {
		return nil, apperr.Field("lead_ids", "names a lead that does not exist")
	}
	pin := -1
	if in {
		pin = 1
	}
	err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		return s.pinTx(ctx, tx, g, ids, pin)
	})
	if err != nil {
		return nil, err
	}
	return s.Segment(ctx, corp, id)
}

func (s *Service) pinTx(ctx context.Context, tx *qsql.Tx, g *Segment, ids []int64, pin int) error {
	stored, err := readMembersOf(ctx, tx, g.ID, ids)
	if err != nil {
		return err
	}
	vs := make([]verdict, 0, len(ids))
	for _, id := range uniq(ids) {
		vs = append(vs, verdict{lead: id, match: pin > 0, pin: pin})
	}
	_, err = s.apply(ctx, tx, g, vs, stored, qsql.Millis(s.now()))
	return err
}

func uniq(ids []int64) []int64 {
	seen := map[int64]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Members pages through a segment's members in lead order.
func (s *Service) Members(ctx context.Context, corp string, id, after int64, limit int) ([]Member, error) {
	if _, err := s.Segment(ctx, corp, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return listMembers(ctx, s.db, id, after, limit)
}

// InSegment says whether a lead is in a segment now.
func (s *Service) InSegment(ctx context.Context, id, lead int64) (bool, error) {
	return isMember(ctx, s.db, id, lead)
}

// contactFields are the condition fields a saved WeCom contact may change.
var contactFields = []string{"tags", "name"}

// rebuildTouched queues the rebuild of every segment of the corp whose
// condition names one of fields (after a change in bulk).
func (s *Service) rebuildTouched(ctx context.Context, corp string, fields []string) error {
	segs, err := s.Segments(ctx, corp)
	if err != nil {
		return err
	}
	for i := range segs {
		if g := &segs[i]; g.Kind != KindStatic && g.cond.touchedBy(fields, nil) {
			if err := s.queueRebuild(ctx, g); err != nil {
				return err
			}
		}
	}
	return nil
}

// judgeLeads judges the leads among ids by c now; a lead that is gone
// (merged into another) gets a verdict of out.
func (s *Service) judgeLeads(ctx context.Context, corp string, c *compiled, ids []int64) ([]verdict, error) {
	ps, err := s.leads.ProfilesOf(ctx, corp, ids)
	if err != nil {
		return nil, err
	}
	vs, err := s.judge(ctx, corp, c, ps)
	if err != nil {
		return nil, err
	}
	found := make(map[int64]bool, len(ps))
	for _, p := range ps {
		found[p.LeadID] = true
	}
	for _, id := range ids {
		if !found[id] {
			vs = append(vs, verdict{lead: id}) // merged away
		}
	}
	return vs, nil
}
