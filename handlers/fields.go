package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
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
	ctx := c.Request.Context()
	if err := s.seeLead(ctx, p, id); err != nil {
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

// listTasks lists the caller's tasks: open ones by due time, or
// ?status=done the latest done (?limit=, at most 200).
func (s *Server) listTasks(c *gin.Context) {
	limit, _, ok := idPage(c)
	if !ok {
		return
	}
	p := principal(c)
	ts, err := s.d.Leads.TasksOf(c.Request.Context(), p.CorpID, p.UserID, c.Query("status") == "done", limit)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tasks": ts})
}

// createTask adds a task on a lead the caller may see:
// {"title","due_at":"2027-03-01T10:00:00+08:00","user_id"} (user_id 0 or
// absent: the lead's owner; 409 no_owner when it has none).
func (s *Server) createTask(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in struct {
		Title  string    `json:"title"`
		DueAt  time.Time `json:"due_at"`
		UserID int64     `json:"user_id"`
	}
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	if err := s.seeLead(ctx, p, id); err != nil {
		s.failErr(c, err)
		return
	}
	if in.UserID != 0 {
		member, err := s.d.Auth.IsMember(ctx, p.CorpID, in.UserID)
		if err == nil && !member {
			err = apperr.Field("user_id", "is not a user of the corp")
		}
		if err != nil {
			s.failErr(c, err)
			return
		}
	}
	var due int64
	if !in.DueAt.IsZero() {
		due = in.DueAt.UnixMilli()
	}
	t, _, err := s.d.Leads.CreateTask(ctx, p.CorpID, p.UserID, leads.TaskIn{LeadID: id, UserID: in.UserID, Title: in.Title, DueAt: due})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

// completeTask marks one of the caller's tasks done (a pool manager may
// mark anyone's).
func (s *Server) completeTask(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	t, err := s.d.Leads.CompleteTask(c.Request.Context(), p.CorpID, id, p.UserID, p.Can(auth.PermPoolsManage))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}
