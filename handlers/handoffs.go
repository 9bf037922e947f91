package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
)

// qualifyLead moves one's lead to SQL and hands it to sales:
// {"budget","authority","need","timeline","note","to_user_id"}; without
// to_user_id the handoff rules pick the rep.
func (s *Server) qualifyLead(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in leads.QualifyIn
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	h, err := s.d.Leads.Qualify(ctx, p.CorpID, id, p.UserID, p.Can(auth.PermPoolsManage), in,
		func(u int64) (bool, error) { return s.d.Auth.IsMember(ctx, p.CorpID, u) })
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, h)
}

// listHandoffs lists handoffs, newest first (?status=pending|accepted|
// rejected|withdrawn, ?limit=): a sales rep's are those to them, an SDR's
// those they made; a manager sees all.
func (s *Server) listHandoffs(c *gin.Context) {
	limit, _, ok := idPage(c)
	if !ok {
		return
	}
	p := principal(c)
	f := leads.HandoffFilter{CorpID: p.CorpID, Status: c.Query("status"), Limit: limit}
	v, ok := s.viewer(c, p)
	if !ok {
		return
	}
	switch {
	case v.Handoffs:
		f.ToUser = p.UserID
	case !v.All:
		f.FromUser = p.UserID
	}
	list, err := s.d.Leads.Handoffs(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"handoffs": list})
}

// answerHandoff accepts, or rejects with {"reason"}, a handoff to oneself.
func (s *Server) answerHandoff(accept bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		p := principal(c)
		var h *leads.Handoff
		var err error
		if accept {
			h, err = s.d.Leads.Accept(c.Request.Context(), p.CorpID, id, p.UserID)
		} else {
			var in struct {
				Reason string `json:"reason"`
			}
			if !bind(c, &in) {
				return
			}
			h, err = s.d.Leads.Reject(c.Request.Context(), p.CorpID, id, p.UserID, in.Reason)
		}
		if err != nil {
			s.failErr(c, err)
			return
		}
		c.JSON(http.StatusOK, h)
	}
}

func (s *Server) listSLARules(c *gin.Context) {
	rules, err := s.d.Leads.SLARules(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"rules": rules})
}

// createSLARule adds an SLA rule: {"position","name","condition","hours"}
// (working hours for a new MQL's first touch and a handoff's answer).
func (s *Server) createSLARule(c *gin.Context) {
	var in struct {
		Position  int    `json:"position"`
		Name      string `json:"name"`
		Condition string `json:"condition"`
		Hours     int    `json:"hours"`
	}
	if !bind(c, &in) {
		return
	}
	r, err := s.d.Leads.CreateSLARule(c.Request.Context(), leads.SLARule{CorpID: principal(c).CorpID, Position: in.Position, Name: in.Name,
		Condition: in.Condition, Hours: in.Hours})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, r)
}

// slaReport counts the SLAs started from ?from= to ?to= (dates in the
// corp's zone, both included) met, breached, open and closed, by user and
// by team (a user in two teams counts in both).
func (s *Server) slaReport(c *gin.Context) {
	p := principal(c)
	rows, err := s.d.Leads.SLAReport(c.Request.Context(), p.CorpID, c.Query("from"), c.Query("to"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	members, err := s.d.Auth.Memberships(c.Request.Context(), p.CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	type teamRow struct {
		TeamID   int64  `json:"team_id"`
		Team     string `json:"team"`
		Met      int    `json:"met"`
		Breached int    `json:"breached"`
		Open     int    `json:"open"`
		Closed   int    `json:"closed"`
	}
	byUser := map[int64]leads.SLARow{}
	for _, r := range rows {
		byUser[r.UserID] = r
	}
	teams := []teamRow{}
	for _, m := range members {
		if len(teams) == 0 || teams[len(teams)-1].TeamID != m.TeamID {
			teams = append(teams, teamRow{TeamID: m.TeamID, Team: m.Team})
		}
		t, u := &teams[len(teams)-1], byUser[m.UserID]
		t.Met, t.Breached, t.Open, t.Closed = t.Met+u.Met, t.Breached+u.Breached, t.Open+u.Open, t.Closed+u.Closed
	}
	c.JSON(http.StatusOK, gin.H{"users": rows, "teams": teams})
}
