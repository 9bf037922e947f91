package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/leads"
)

// listFieldDefs lists the corp's own lead fields.
func (s *Server) listFieldDefs(c *gin.Context) {
	defs, err := s.d.Leads.FieldDefs(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"fields": defs})
}

// defineField creates or changes a field: PUT /lead-fields/{key} with
// {"label","kind":"text|number|date|select","options":[…],"position"}.
func (s *Server) defineField(c *gin.Context) {
	var in struct {
		Label    string   `json:"label"`
		Kind     string   `json:"kind"`
		Options  []string `json:"options"`
		Position int      `json:"position"`
	}
	if !bind(c, &in) {
		return
	}
	d, err := s.d.Leads.DefineField(c.Request.Context(), leads.FieldDef{CorpID: principal(c).CorpID, Key: c.Param("key"),
		Label: in.Label, Kind: in.Kind, Options: in.Options, Position: in.Position})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

// deleteField removes a field and every lead's value of it.
func (s *Server) deleteField(c *gin.Context) {
	if err := s.d.Leads.DeleteField(c.Request.Context(), principal(c).CorpID, c.Param("key")); err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// setLeadFields sets values of the corp's own fields on a lead the caller
// may see: {"fields":{"renewal_date":"2027-03-01","seats":40},"reason"};
// null or "" clears one. It answers the lead's values now.
func (s *Server) setLeadFields(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in struct {
		Fields map[string]any `json:"fields"`
		Reason string         `json:"reason"`
	}
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	v, ok := s.viewer(c, p)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if _, _, err := s.d.Leads.Get(ctx, p.CorpID, id, v); err != nil {
		s.failErr(c, err)
		return
	}
	values, err := s.d.Leads.SetFields(ctx, p.CorpID, id, p.UserID, in.Fields, in.Reason)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"fields": values})
}
