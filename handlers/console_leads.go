package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
)

// leadPageData is a lead's page: the lead, its person (identities masked
// without pii), its timeline (history, score reasons and activities),
// the sales reps a qualification may go to, and what the user may do.
type leadPageData struct {
	Lead     leads.Lead
	Person   *leads.Person
	Timeline []leads.TimelineEntry
	Reps     []auth.UserWithRole
	Deadline leads.Deadline
	// Qualifiable: the lead is the user's (or they manage pools) and at a
	// stage Qualify accepts.
	Mine, Qualifiable bool
	TouchKinds        []string
	// HalfLifeDays is how fast engagement fades (shown beside the score).
	HalfLifeDays int
	// WeCom are the person's WeCom external ids: their cards (tags) load
	// into the page.
	WeCom []string
	// Defs are the corp's own lead fields (their values are Lead.Fields).
	Defs []leads.FieldDef
	// Tasks are the lead's tasks, newest first.
	Tasks []leads.Task
}

// leadPage shows one lead as the API's GET /leads/{id}, /person and
// /timeline would show it to the same user.
func (s *Server) leadPage(c *gin.Context) {
	s.renderLead(c, http.StatusOK, "")
}

// renderLead renders the lead's page with a message (a refused action).
func (s *Server) renderLead(c *gin.Context, status int, msg string) {
	p := principal(c)
	id, ok := s.pageID(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	v, err := s.viewerOf(ctx, p)
	if err != nil {
		s.failPage(c, err)
		return
	}
	l, _, err := s.d.Leads.Get(ctx, p.CorpID, id, v)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := leadPageData{Lead: *l, Mine: l.OwnerUserID == p.UserID && p.Can(auth.PermLeadsClaim), TouchKinds: leads.TouchKinds}
	d.Qualifiable = (d.Mine || p.Can(auth.PermPoolsManage)) && (l.Stage == leads.StageMQL || l.Stage == leads.StageSAL)
	if d.Person, _, err = s.d.Leads.PersonOfLead(ctx, p.CorpID, id, v); err != nil {
		s.failPage(c, err)
		return
	}
	maskPerson(p, d.Person)
	for _, id := range d.Person.Identities {
		if id.Kind == leads.IdentityWeCom {
			d.WeCom = append(d.WeCom, id.Value)
		}
	}
	set, err := s.d.Leads.ScoringSettings(ctx, p.CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d.HalfLifeDays = set.HalfLifeDays
	if d.Defs, err = s.d.Leads.FieldDefs(ctx, p.CorpID); err != nil {
		s.failPage(c, err)
		return
	}
	if d.Tasks, err = s.d.Leads.TasksOfLead(ctx, p.CorpID, id); err != nil {
		s.failPage(c, err)
		return
	}
	if d.Timeline, err = s.d.Leads.Timeline(ctx, p.CorpID, id, v, 100); err != nil {
		s.failPage(c, err)
		return
	}
	if d.Mine {
		deadlines, err := s.d.Leads.DeadlinesOf(ctx, p.CorpID, p.UserID)
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.Deadline = deadlines[id]
	}
	if d.Qualifiable {
		users, err := s.d.Auth.ListUsers(ctx, p.CorpID)
		if err != nil {
			s.failPage(c, err)
			return
		}
		for _, u := range users {
			if u.Role == auth.RoleSales && !u.Disabled {
				d.Reps = append(d.Reps, u)
			}
		}
	}
	view := s.newView(c, "nav.pool", "lead.title", d)
	view.Error = msg
	s.render(c, status, "lead", "", view)
}

// afterLeadChange sends the browser back to the lead's page after a
// change, or shows the page again with the refusal.
func (s *Server) afterLeadChange(c *gin.Context, err error) {
	if err != nil {
		status, msg := s.refusal(c, err)
		s.renderLead(c, status, msg)
		return
	}
	redirectPage(c, "/console/leads/"+c.Param("id"))
}

// seeLead refuses (not found) a lead the user may not see: a change made
// by lead id answers as the lead's page would.
func (s *Server) seeLead(ctx context.Context, p auth.Principal, id int64) error {
	v, err := s.viewerOf(ctx, p)
	if err == nil {
		_, _, err = s.d.Leads.Get(ctx, p.CorpID, id, v)
	}
	return err
}

// leadAction reads the lead id of a lead's form post.
func (s *Server) leadAction(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.pageError(c, http.StatusNotFound, translate(s.lang(c, principal(c)), "err.not_found"))
		return 0, false
	}
	return id, true
}

// touchFromPage logs a follow-up (call, note, message, task) on one's lead.
func (s *Server) touchFromPage(c *gin.Context) {
	id, ok := s.leadAction(c)
	if !ok {
		return
	}
	p := principal(c)
	_, err := s.d.Leads.Touch(c.Request.Context(), p.CorpID, id, p.UserID, c.PostForm("kind"), c.PostForm("text"))
	s.afterLeadChange(c, err)
}

// releaseFromPage returns one's lead to its pool with a reason.
func (s *Server) releaseFromPage(c *gin.Context) {
	id, ok := s.leadAction(c)
	if !ok {
		return
	}
	p := principal(c)
	_, err := s.d.Leads.Release(c.Request.Context(), p.CorpID, id, p.UserID, c.PostForm("reason"))
	if err != nil {
		s.afterLeadChange(c, err)
		return
	}
	redirectPage(c, "/console/pool?owner=me")
}

// qualifyFromPage qualifies one's lead to SQL with BANT and a handoff note
// for a sales rep (or the handoff rules' pick), as POST /leads/{id}/qualify.
func (s *Server) qualifyFromPage(c *gin.Context) {
	id, ok := s.leadAction(c)
	if !ok {
		return
	}
	p := principal(c)
	in := leads.QualifyIn{Qualification: leads.Qualification{Budget: c.PostForm("budget"), Authority: c.PostForm("authority"),
		Need: c.PostForm("need"), Timeline: c.PostForm("timeline")}, Note: c.PostForm("note")}
	if to := strings.TrimSpace(c.PostForm("to_user_id")); to != "" {
		n, err := strconv.ParseInt(to, 10, 64)
		if err != nil || n <= 0 {
			s.renderLead(c, http.StatusUnprocessableEntity, "to_user_id: "+translate(s.lang(c, p), "err.not_found"))
			return
		}
		in.ToUserID = n
	}
	ctx := c.Request.Context()
	_, err := s.d.Leads.Qualify(ctx, p.CorpID, id, p.UserID, p.Can(auth.PermPoolsManage), in,
		func(u int64) (bool, error) { return s.d.Auth.IsMember(ctx, p.CorpID, u) })
	s.afterLeadChange(c, err)
}

// fieldsFromPage sets the corp's own fields of a lead the user may see
// (an input f_<key> per field; an empty one clears it).
func (s *Server) fieldsFromPage(c *gin.Context) {
	id, ok := s.leadAction(c)
	if !ok {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	err := s.seeLead(ctx, p, id)
	var defs []leads.FieldDef
	if err == nil {
		defs, err = s.d.Leads.FieldDefs(ctx, p.CorpID)
	}
	if err == nil {
		values := map[string]any{}
		for _, d := range defs {
			if in, sent := c.GetPostForm("f_" + d.Key); sent {
				values[d.Key] = in
			}
		}
		_, err = s.d.Leads.SetFields(ctx, p.CorpID, id, p.UserID, values, c.PostForm("reason"))
	}
	s.afterLeadChange(c, err)
}

// taskFromPage adds a task for the owner of a lead the user may see
// (title, due as the browser's datetime-local in the corp's zone).
func (s *Server) taskFromPage(c *gin.Context) {
	id, ok := s.leadAction(c)
	if !ok {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	err := s.seeLead(ctx, p, id)
	if err == nil {
		due, perr := time.ParseInLocation("2006-01-02T15:04", c.PostForm("due"), s.location(p.CorpID))
		if perr != nil {
			err = apperr.Field("due", "is a date and time")
		} else {
			_, _, err = s.d.Leads.CreateTask(ctx, p.CorpID, p.UserID, leads.TaskIn{LeadID: id, Title: c.PostForm("title"), DueAt: due.UnixMilli()})
		}
	}
	s.afterLeadChange(c, err)
}

// taskDoneFromPage marks one of the user's tasks done and goes back where
// the user was (the home page or the lead's).
func (s *Server) taskDoneFromPage(c *gin.Context) {
	id, ok := s.leadAction(c) // the task's id, read as a lead's is
	if !ok {
		return
	}
	p := principal(c)
	t, err := s.d.Leads.CompleteTask(c.Request.Context(), p.CorpID, id, p.UserID, p.Can(auth.PermPoolsManage))
	if err != nil {
		status, msg := s.refusal(c, err)
		s.pageError(c, status, msg)
		return
	}
	back := "/console"
	if ref := c.Request.Referer(); strings.Contains(ref, "/console/leads/") {
		back = "/console/leads/" + strconv.FormatInt(t.LeadID, 10)
	}
	redirectPage(c, back)
}

// peopleData is the search page: the query and the leads found.
type peopleData struct {
	Q     string
	Leads []leads.Lead
}

// peoplePage finds people by mobile, email, WeCom id or the start of their
// name, showing their leads as the user may see them.
func (s *Server) peoplePage(c *gin.Context) {
	p := principal(c)
	d := peopleData{Q: strings.TrimSpace(c.Query("q"))}
	if d.Q != "" {
		v, err := s.viewerOf(c.Request.Context(), p)
		if err != nil {
			s.failPage(c, err)
			return
		}
		if d.Leads, err = s.d.Leads.Search(c.Request.Context(), p.CorpID, d.Q, v); err != nil {
			s.failPage(c, err)
			return
		}
	}
	s.render(c, http.StatusOK, "people", "", s.newView(c, "nav.people", "people.title", d))
}
