package handlers

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
)

func (s *Server) leadRoutes() []Route {
	return []Route{
		{"GET", "/leads", auth.PermLeadsRead, s.listLeads},
		{"GET", "/leads/:id", auth.PermLeadsRead, s.getLead},
		{"POST", "/leads/:id/claim", auth.PermLeadsClaim, s.claimLead},
		{"POST", "/leads/:id/release", auth.PermLeadsClaim, s.releaseLead},
		{"POST", "/leads/:id/stage", auth.PermLeadsClaim, s.changeStage},
		{"GET", "/pools", auth.PermLeadsRead, s.listPools},
		{"POST", "/pools", auth.PermPoolsManage, s.createPool},
		{"PUT", "/pools/:id", auth.PermPoolsManage, s.updatePool},
	}
}

// listLeads pages through leads: ?pool=, ?owner= (me, none, or a user id),
// ?stage=, ?limit=, ?cursor=.
func (s *Server) listLeads(c *gin.Context) {
	limit, cursor, ok := idPage(c)
	if !ok {
		return
	}
	p := principal(c)
	f := leads.ListFilter{CorpID: p.CorpID, Stage: c.Query("stage"), After: cursor, Limit: limit}
	if v := c.Query("pool"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			invalid(c, "pool", "must be a pool id")
			return
		}
		f.PoolID = id
	}
	switch v := c.Query("owner"); v {
	case "":
	case "me":
		f.Owner = p.UserID
	case "none":
		f.Owner = -1
	default:
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			invalid(c, "owner", "must be me, none or a user id")
			return
		}
		f.Owner = id
	}
	list, err := s.d.Leads.List(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "leads", list, limit, func(l leads.Lead) string { return strconv.FormatInt(l.ID, 10) })
}

func (s *Server) getLead(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	l, history, err := s.d.Leads.Get(c.Request.Context(), principal(c).CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"lead": l, "history": history})
}

// claimLead makes the signed-in SDR the lead's owner; a lead someone else
// won answers 409 already_claimed, a cap 409 claim_cap_reached.
func (s *Server) claimLead(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	l, err := s.d.Leads.Claim(c.Request.Context(), p.CorpID, id, p.UserID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, l)
}

func (s *Server) releaseLead(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	l, err := s.d.Leads.Release(c.Request.Context(), p.CorpID, id, p.UserID, in.Reason)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, l)
}

// changeStage moves a lead: {"stage", "reason"}. Owners move their leads;
// holders of pools.manage move any.
func (s *Server) changeStage(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in struct {
		Stage  string `json:"stage"`
		Reason string `json:"reason"`
	}
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	l, err := s.d.Leads.ChangeStage(c.Request.Context(), p.CorpID, id, p.UserID, p.Can(auth.PermPoolsManage), in.Stage, in.Reason)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, l)
}

func (s *Server) listPools(c *gin.Context) {
	pools, err := s.d.Leads.Pools(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"pools": pools})
}

// poolInput is a pool's name and claim rules (0 = no limit).
type poolInput struct {
	Name          string `json:"name"`
	MaxOpen       int    `json:"max_open"`
	MaxClaimsDay  int    `json:"max_claims_day"`
	CooldownHours int    `json:"cooldown_hours"`
}

func (in poolInput) pool(corp string) leads.Pool {
	return leads.Pool{CorpID: corp, Name: in.Name, MaxOpen: in.MaxOpen, MaxClaimsDay: in.MaxClaimsDay, CooldownHours: in.CooldownHours}
}

func (s *Server) createPool(c *gin.Context) {
	var in poolInput
	if !bind(c, &in) {
		return
	}
	p, err := s.d.Leads.CreatePool(c.Request.Context(), in.pool(principal(c).CorpID))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

func (s *Server) updatePool(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in poolInput
	if !bind(c, &in) {
		return
	}
	p := in.pool(principal(c).CorpID)
	p.ID = id
	out, err := s.d.Leads.UpdatePool(c.Request.Context(), p)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}
