package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/journeys"
	"github.com/qiflow/qiflow/leads"
)

// journeyRoutes are segments and journeys: marketers (journeys.manage)
// design and run them; whoever reads leads may look.
func (s *Server) journeyRoutes() []Route {
	if s.d.Journeys == nil {
		return nil
	}
	return []Route{
		{"GET", "/segments", auth.PermLeadsRead, s.listSegments},
		{"GET", "/segments/fields", auth.PermLeadsRead, s.segmentFields},
		{"POST", "/segments", auth.PermJourneysManage, s.saveSegment},
		{"POST", "/segments/preview", auth.PermJourneysManage, s.previewSegment},
		{"GET", "/segments/:id", auth.PermLeadsRead, s.getSegment},
		{"PUT", "/segments/:id", auth.PermJourneysManage, s.saveSegment},
		{"GET", "/segments/:id/members", auth.PermLeadsRead, s.segmentMembers},
		{"POST", "/segments/:id/rebuild", auth.PermJourneysManage, s.rebuildSegment},
		{"GET", "/segments/:id/export", auth.PermLeadsExport, s.exportSegment},
		{"POST", "/segments/:id/members", auth.PermJourneysManage, s.pinMembers(true)},
		{"DELETE", "/segments/:id/members", auth.PermJourneysManage, s.pinMembers(false)},
		{"GET", "/journeys", auth.PermLeadsRead, s.listJourneys},
		{"GET", "/journeys/schema", auth.PermLeadsRead, s.journeySchema},
		{"POST", "/journeys", auth.PermJourneysManage, s.saveJourney},
		{"GET", "/journeys/:id", auth.PermLeadsRead, s.getJourney},
		{"PUT", "/journeys/:id", auth.PermJourneysManage, s.saveJourney},
		{"POST", "/journeys/:id/publish", auth.PermJourneysManage, s.publishJourney},
		{"POST", "/journeys/:id/status", auth.PermJourneysManage, s.journeyStatus},
		{"POST", "/journeys/:id/enrolments", auth.PermJourneysManage, s.enrol},
		{"GET", "/journeys/:id/stats", auth.PermLeadsRead, s.journeyStats},
		{"GET", "/journeys/:id/runs", auth.PermLeadsRead, s.journeyRuns},
		{"GET", "/journeys/:id/splits", auth.PermLeadsRead, s.splitResults},
		{"GET", "/journeys/:id/runs/:run/actions", auth.PermLeadsRead, s.runActions},
		{"GET", "/journeys/:id/dry-run", auth.PermLeadsRead, s.dryRun},
		{"GET", "/journeys/:id/messages", auth.PermLeadsRead, s.journeyMessages},
		{"GET", "/journeys/settings", auth.PermLeadsRead, s.messageSettings},
		{"PUT", "/journeys/settings", auth.PermJourneysManage, s.setMessageSettings},
	}
}

func (s *Server) listSegments(c *gin.Context) {
	gs, err := s.d.Journeys.Segments(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"segments": gs})
}

// segmentFields lists what a filter may name, for the builders: the
// built-in fields, then the corp's own as fields.<key>.
func (s *Server) segmentFields(c *gin.Context) {
	fields, _, err := s.filterFields(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"fields": fields})
}

// filterFields are the fields a filter may name (the built-in ones, then
// the corp's own as fields.<key>) and the keys of the corp's date fields.
func (s *Server) filterFields(ctx context.Context, corp string) ([]string, []string, error) {
	defs, err := s.d.Leads.FieldDefs(ctx, corp)
	if err != nil {
		return nil, nil, err
	}
	fields, dates := journeys.Fields(), []string{}
	for _, d := range defs {
		fields = append(fields, leads.FieldPrefix+d.Key)
		if d.Kind == leads.FieldDate {
			dates = append(dates, d.Key)
		}
	}
	return fields, dates, nil
}

// saveSegment creates (POST) or updates (PUT /:id) a segment.
func (s *Server) saveSegment(c *gin.Context) {
	var in struct {
		Name   string          `json:"name"`
		Kind   string          `json:"kind"`
		Filter journeys.Filter `json:"filter"`
	}
	if !bind(c, &in) {
		return
	}
	g := journeys.Segment{CorpID: principal(c).CorpID, Name: in.Name, Kind: in.Kind, Filter: in.Filter}
	ctx := c.Request.Context()
	if c.Param("id") == "" {
		out, err := s.d.Journeys.CreateSegment(ctx, g)
		if err != nil {
			s.failErr(c, err)
			return
		}
		c.JSON(http.StatusCreated, out)
		return
	}
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	g.ID = id
	out, err := s.d.Journeys.UpdateSegment(ctx, g)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) previewSegment(c *gin.Context) {
	var in struct {
		Filter journeys.Filter `json:"filter"`
	}
	if !bind(c, &in) {
		return
	}
	p, err := s.d.Journeys.PreviewFilter(c.Request.Context(), principal(c).CorpID, in.Filter)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (s *Server) getSegment(c *gin.Context) {
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		return s.d.Journeys.Segment(ctx, corp, id)
	})
}

// rebuildSegment queues a full rebuild of a segment: 202 with its job
// (GET /jobs/{id} follows it).
func (s *Server) rebuildSegment(c *gin.Context) {
	s.answerByIDWith(c, http.StatusAccepted, func(ctx context.Context, corp string, id int64) (any, error) {
		job, err := s.d.Journeys.QueueRebuild(ctx, corp, id)
		return gin.H{"job_id": job}, err
	})
}

// segmentMembers pages through members: ?after=<lead id>&limit=.
func (s *Server) segmentMembers(c *gin.Context) {
	after, limit, ok := afterLimit(c)
	if !ok {
		return
	}
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		ms, err := s.d.Journeys.Members(ctx, corp, id, after, limit)
		return gin.H{"members": ms}, err
	})
}

// pinMembers adds (POST) or removes (DELETE) leads by hand.
func (s *Server) pinMembers(in bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		var body struct {
			LeadIDs []int64 `json:"lead_ids"`
		}
		if !bind(c, &body) {
			return
		}
		if len(body.LeadIDs) == 0 || len(body.LeadIDs) > 1000 {
			invalid(c, "lead_ids", "are 1 to 1000 lead ids")
			return
		}
		g, err := s.d.Journeys.Pin(c.Request.Context(), principal(c).CorpID, id, body.LeadIDs, in)
		if err != nil {
			s.failErr(c, err)
			return
		}
		c.JSON(http.StatusOK, g)
	}
}

func (s *Server) listJourneys(c *gin.Context) {
	js, err := s.d.Journeys.Journeys(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"journeys": js})
}

// saveJourney creates (POST) or updates (PUT /:id) a journey's draft.
func (s *Server) saveJourney(c *gin.Context) {
	var in struct {
		Name  string         `json:"name"`
		Draft journeys.Graph `json:"draft"`
	}
	if !bind(c, &in) {
		return
	}
	j := journeys.Journey{CorpID: principal(c).CorpID, Name: in.Name, Draft: in.Draft}
	status := http.StatusCreated
	if c.Param("id") != "" {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		j.ID, status = id, http.StatusOK
	}
	out, err := s.d.Journeys.SaveJourney(c.Request.Context(), j)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(status, out)
}

func (s *Server) getJourney(c *gin.Context) {
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		return s.d.Journeys.Journey(ctx, corp, id)
	})
}

func (s *Server) publishJourney(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in journeys.PublishIn
	if c.Request.ContentLength != 0 && !bind(c, &in) {
		return
	}
	in.Actor = principal(c).UserID
	j, err := s.d.Journeys.Publish(c.Request.Context(), principal(c).CorpID, id, in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, j)
}

func (s *Server) journeyStatus(c *gin.Context) {
	changeRecord(s, c, func(ctx context.Context, p auth.Principal, id int64, in struct {
		Status string `json:"status"`
	}) (*journeys.Journey, error) {
		return s.d.Journeys.SetStatus(ctx, p.CorpID, id, in.Status)
	})
}

func (s *Server) enrol(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in struct {
		LeadIDs []int64 `json:"lead_ids"`
	}
	if !bind(c, &in) {
		return
	}
	if len(in.LeadIDs) == 0 || len(in.LeadIDs) > 1000 {
		invalid(c, "lead_ids", "are 1 to 1000 lead ids")
		return
	}
	n, err := s.d.Journeys.Enrol(c.Request.Context(), principal(c).CorpID, id, in.LeadIDs)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"enrolled": n})
}

func (s *Server) journeyStats(c *gin.Context) {
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		return s.d.Journeys.JourneyStats(ctx, corp, id)
	})
}

// journeyRuns pages through runs: ?state=&after=<run id>&limit=.
func (s *Server) journeyRuns(c *gin.Context) {
	after, limit, ok := afterLimit(c)
	if !ok {
		return
	}
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		rs, err := s.d.Journeys.Runs(ctx, corp, id, c.Query("state"), after, limit)
		return gin.H{"runs": rs}, err
	})
}

func (s *Server) runActions(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	run, ok := pathID(c, "run")
	if !ok {
		return
	}
	as, err := s.d.Journeys.RunActions(c.Request.Context(), principal(c).CorpID, id, run)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"actions": as})
}

// dryRun explains a lead's way through the draft: ?lead=<id>.
func (s *Server) dryRun(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	lead, err := strconv.ParseInt(c.Query("lead"), 10, 64)
	if err != nil || lead <= 0 {
		invalid(c, "lead", "must be a lead id")
		return
	}
	steps, err := s.d.Journeys.DryRun(c.Request.Context(), principal(c).CorpID, id, lead)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"steps": steps})
}

// afterLimit reads a list's ?after= cursor and ?limit= (0: the list's default).
func afterLimit(c *gin.Context) (after int64, limit int, ok bool) {
	if after, ok = optInt(c, "after"); !ok {
		return 0, 0, false
	}
	l, ok := optInt(c, "limit")
	return after, int(l), ok
}

// optInt reads an optional non-negative integer query parameter.
func optInt(c *gin.Context, name string) (int64, bool) {
	v := c.Query(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		invalid(c, name, "must be a non-negative integer")
		return 0, false
	}
	return n, true
}

func (s *Server) journeyMessages(c *gin.Context) {
	_, limit, ok := afterLimit(c)
	if !ok {
		return
	}
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		ms, err := s.d.Journeys.Messages(ctx, corp, id, limit)
		return gin.H{"messages": ms}, err
	})
}

// messageSettings are the corp's caps, quiet hours and opt-out for
// messages to customers across journeys.
func (s *Server) messageSettings(c *gin.Context) {
	m, err := s.d.Journeys.MessageSettingsOf(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

func (s *Server) setMessageSettings(c *gin.Context) {
	var in journeys.MessageSettings
	if !bind(c, &in) {
		return
	}
	m, err := s.d.Journeys.SetMessageSettings(c.Request.Context(), principal(c).CorpID, in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

// journeySchema serves the journey graph's JSON Schema.
func (s *Server) journeySchema(c *gin.Context) {
	c.Data(http.StatusOK, "application/schema+json", journeys.Schema)
}

// splitResults are each split branch's runs, goals and funnel progress,
// with the significance of its difference from the split's first branch.
func (s *Server) splitResults(c *gin.Context) {
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		rs, err := s.d.Journeys.SplitResults(ctx, corp, id)
		return gin.H{"branches": rs}, err
	})
}

// exportSegment downloads a segment's members as the lead export does
// (the leads the user may see, masked without pii, audited).
func (s *Server) exportSegment(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	if _, err := s.d.Journeys.Segment(ctx, p.CorpID, id); err != nil {
		s.failErr(c, err)
		return
	}
	v, err := s.viewerOf(ctx, p)
	if err != nil {
		s.failErr(c, err)
		return
	}
	next := func(ctx context.Context, after int64, limit int) ([]int64, error) {
		ms, err := s.d.Journeys.Members(ctx, p.CorpID, id, after, limit)
		ids := make([]int64, len(ms))
		for i, m := range ms {
			ids[i] = m.Lead
		}
		return ids, err
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="segment-%d.csv"`, id))
	if _, err := s.d.Leads.ExportLeadsOf(ctx, leads.ListFilter{CorpID: p.CorpID, Viewer: v}, next, fmt.Sprintf("segment %d", id), p.UserID,
		exportMask(p), c.Writer); err != nil {
		s.logger(c).Error("segment export cut short", "segment", id, "err", err)
	}
}
