package handlers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/journeys"
)

// The marketing pages: segments (list, editor with a live count) and
// journeys (list, the designer). The designer and the segment editor keep
// their graph and filter in the page's script and save them as JSON (with
// the CSRF header), through the same services and validators as the API.

func (s *Server) journeyConsoleRoutes() []Route {
	if s.d.Journeys == nil {
		return nil
	}
	return []Route{
		{"GET", "/console/segments", auth.PermLeadsRead, s.segmentsPage},
		{"GET", "/console/segments/new", auth.PermJourneysManage, s.segmentPage},
		{"GET", "/console/segments/:id", auth.PermLeadsRead, s.segmentPage},
		{"GET", "/console/segments/:id/export", auth.PermLeadsExport, s.exportSegment},
		{"POST", "/console/segments/preview", auth.PermJourneysManage, s.previewSegment},
		{"POST", "/console/segments/save", auth.PermJourneysManage, s.saveSegmentFromPage},
		{"GET", "/console/journeys", auth.PermLeadsRead, s.journeysPage},
		{"POST", "/console/journeys", auth.PermJourneysManage, s.createJourneyFromPage},
		{"GET", "/console/journeys/:id", auth.PermLeadsRead, s.designerPage},
		{"POST", "/console/journeys/:id/draft", auth.PermJourneysManage, s.saveDraftFromPage},
		{"POST", "/console/journeys/media", auth.PermJourneysManage, s.uploadMedia},
		{"POST", "/console/journeys/:id/publish", auth.PermJourneysManage, s.publishJourney},
		{"POST", "/console/journeys/:id/status", auth.PermJourneysManage, s.journeyStatusFromPage},
		{"POST", "/console/journeys/:id/enrol", auth.PermJourneysManage, s.enrolFromPage},
		{"GET", "/console/journeys/:id/stats", auth.PermLeadsRead, s.journeyStats},
	}
}

func (s *Server) segmentsPage(c *gin.Context) {
	gs, err := s.d.Journeys.Segments(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, http.StatusOK, "segments", "", s.newView(c, "nav.segments", "segments.title", gs))
}

// segmentData is the segment editor: the segment (zero for a new one), the
// fields a filter may name, and its first members.
type segmentData struct {
	Segment journeys.Segment
	Fields  []string
	Members []int64
	CanEdit bool
}

func (s *Server) segmentPage(c *gin.Context) {
	p := principal(c)
	fields, _, err := s.filterFields(c.Request.Context(), p.CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := segmentData{Fields: fields, CanEdit: p.Can(auth.PermJourneysManage), Segment: journeys.Segment{Kind: journeys.KindDynamic}}
	if c.Param("id") != "" {
		id, ok := s.pageID(c)
		if !ok {
			return
		}
		g, err := s.d.Journeys.Segment(c.Request.Context(), p.CorpID, id)
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.Segment = *g
		ms, err := s.d.Journeys.Members(c.Request.Context(), p.CorpID, id, 0, 50)
		if err != nil {
			s.failPage(c, err)
			return
		}
		for _, m := range ms {
			d.Members = append(d.Members, m.Lead)
		}
	}
	v := s.newView(c, "nav.segments", "segments.title", d)
	v.Scripts = []string{"/static/filters.js"}
	s.render(c, http.StatusOK, "segment", "", v)
}

// saveSegmentFromPage creates or updates a segment from the editor's JSON
// ({id, name, kind, filter}); it answers the saved segment or the refusal.
func (s *Server) saveSegmentFromPage(c *gin.Context) {
	var in struct {
		ID     int64           `json:"id"`
		Name   string          `json:"name"`
		Kind   string          `json:"kind"`
		Filter journeys.Filter `json:"filter"`
	}
	if !bind(c, &in) {
		return
	}
	g := journeys.Segment{ID: in.ID, CorpID: principal(c).CorpID, Name: in.Name, Kind: in.Kind, Filter: in.Filter}
	var out *journeys.Segment
	var err error
	if in.ID == 0 {
		out, err = s.d.Journeys.CreateSegment(c.Request.Context(), g)
	} else {
		out, err = s.d.Journeys.UpdateSegment(c.Request.Context(), g)
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) journeysPage(c *gin.Context) {
	js, err := s.d.Journeys.Journeys(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, http.StatusOK, "journeys", "", s.newView(c, "nav.journeys", "journeys.title", js))
}

// createJourneyFromPage starts a journey with a one-entry draft and opens
// the designer on it.
func (s *Server) createJourneyFromPage(c *gin.Context) {
	draft := journeys.Graph{Nodes: []journeys.Node{{ID: "entry1", Type: journeys.NodeEntry, Entry: &journeys.Entry{On: "manual"}, X: 120, Y: 160}}}
	j, err := s.d.Journeys.SaveJourney(c.Request.Context(), journeys.Journey{CorpID: principal(c).CorpID, Name: c.PostForm("name"), Draft: draft})
	if err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/journeys/"+strconv.FormatInt(j.ID, 10))
}

// designerData is what the designer's script starts from.
type designerData struct {
	Journey *journeys.Journey    `json:"journey"`
	Stats   []journeys.NodeStats `json:"stats"`
	Fields  []string             `json:"fields"`
	// Users are who the assign action may give a lead to.
	Users []designerUser `json:"users"`
	// DateFields are the keys of the corp's date fields (entries on a date).
	DateFields []string                 `json:"date_fields"`
	Segments   []journeys.Segment       `json:"segments"`
	CanEdit    bool                     `json:"can_edit"`
	Texts      map[string]string        `json:"texts"`
	Settings   journeys.MessageSettings `json:"settings"`
	Splits     []journeys.BranchResult  `json:"-"`
}

// designerUser is a user as the designer's owner picker shows them.
type designerUser struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (s *Server) designerPage(c *gin.Context) {
	id, ok := s.pageID(c)
	if !ok {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	st, err := s.d.Journeys.JourneyStats(ctx, p.CorpID, id)
	if err != nil {
		s.failPage(c, err)
		return
	}
	segs, err := s.d.Journeys.Segments(ctx, p.CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	set, err := s.d.Journeys.MessageSettingsOf(ctx, p.CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	splits, err := s.d.Journeys.SplitResults(ctx, p.CorpID, id)
	if err != nil {
		s.failPage(c, err)
		return
	}
	v := s.newView(c, "nav.journeys", "journeys.title", nil)
	texts := map[string]string{}
	for k := range messages {
		switch {
		case strings.HasPrefix(k, "designer."):
			texts[strings.TrimPrefix(k, "designer.")] = v.T(k)
		case strings.HasPrefix(k, "filter."):
			texts[k] = v.T(k)
		}
	}
	fields, dates, err := s.filterFields(ctx, p.CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	users, err := s.d.Auth.ListUsers(ctx, p.CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	people := make([]designerUser, len(users))
	for i, u := range users {
		people[i] = designerUser{ID: u.ID, Name: u.Name, Email: u.Email}
	}
	v.Data = designerData{Journey: st.Journey, Stats: st.Nodes, Fields: fields, DateFields: dates, Users: people, Segments: segs, CanEdit: p.Can(auth.PermJourneysManage),
		Texts: texts, Settings: set, Splits: splits}
	v.Styles = []string{"/static/vendor/logicflow-core-2.2.5/index.css"}
	v.Scripts = []string{"/static/vendor/logicflow-core-2.2.5/index.min.js", "/static/filters.js", "/static/journeys.js"}
	s.render(c, http.StatusOK, "journey", "", v)
}

// saveDraftFromPage saves the designer's draft ({name, draft}) and answers
// the journey with what stops it from being published (problems by node).
func (s *Server) saveDraftFromPage(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in struct {
		Name  string         `json:"name"`
		Draft journeys.Graph `json:"draft"`
	}
	if !bind(c, &in) {
		return
	}
	j, err := s.d.Journeys.SaveJourney(c.Request.Context(), journeys.Journey{ID: id, CorpID: principal(c).CorpID, Name: in.Name, Draft: in.Draft})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, j)
}

func (s *Server) journeyStatusFromPage(c *gin.Context) {
	id, ok := s.pageID(c)
	if !ok {
		return
	}
	if _, err := s.d.Journeys.SetStatus(c.Request.Context(), principal(c).CorpID, id, c.PostForm("status")); err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/journeys/"+strconv.FormatInt(id, 10))
}

// enrolFromPage enrols leads by id (one per line or comma) by hand.
func (s *Server) enrolFromPage(c *gin.Context) {
	id, ok := s.pageID(c)
	if !ok {
		return
	}
	var ids []int64
	for _, f := range strings.FieldsFunc(c.PostForm("lead_ids"), func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '\r' }) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n <= 0 {
			s.pageError(c, http.StatusUnprocessableEntity, translate(s.lang(c, principal(c)), "journeys.enrol.bad", f))
			return
		}
		ids = append(ids, n)
	}
	if len(ids) == 0 || len(ids) > 1000 {
		s.pageError(c, http.StatusUnprocessableEntity, translate(s.lang(c, principal(c)), "journeys.enrol.bad", ""))
		return
	}
	if _, err := s.d.Journeys.Enrol(c.Request.Context(), principal(c).CorpID, id, ids); err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/journeys/"+strconv.FormatInt(id, 10))
}
