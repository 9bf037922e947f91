package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/wecom/directory"
)

func (s *Server) listEvents(c *gin.Context) {
	limit, before, ok := idPage(c)
	if !ok {
		return
	}
	f, err := eventFilter(principal(c).CorpID, c.Query)
	if err != nil {
		s.failErr(c, err)
		return
	}
	f.Before, f.Limit = before, limit
	events, err := s.d.Bus.List(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "events", events, limit, func(e jobs.EventView) string { return strconv.FormatInt(e.ID, 10) })
}

// eventFilter reads the events list's filter (?status=, ?source=, ?type=,
// ?event=, ?change_type=, ?subject=): the API and the console read the same.
func eventFilter(corp string, query func(string) string) (jobs.EventFilter, error) {
	f := jobs.EventFilter{CorpID: corp, Status: query("status"), Source: query("source"), Type: query("type"),
		Event: query("event"), ChangeType: query("change_type"), Subject: query("subject")}
	switch f.Status {
	case "", "pending", "dead", "done":
	default:
		return f, apperr.Field("status", "must be pending, dead or done")
	}
	switch f.Source {
	case "", jobs.SourceWeCom, jobs.SourceDomain:
	default:
		return f, apperr.Field("source", "must be wecom or domain")
	}
	return f, nil
}

func (s *Server) replayEvent(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	n, err := s.settleDead(c, id, true)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"requeued": n})
}

func (s *Server) dismissEvent(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	n, err := s.settleDead(c, id, false)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"dismissed": n})
}

var (
	errNothingToReplay  = apperr.Conflict("nothing_to_replay", "the event has no dead-lettered deliveries in your corp")
	errNothingToDismiss = apperr.Conflict("nothing_to_dismiss", "the event has no dead-lettered deliveries in your corp")
)

// settleDead requeues (replay) or dismisses an event's dead-lettered
// deliveries in the signed-in user's corp, for the API and the console.
func (s *Server) settleDead(c *gin.Context, id int64, replay bool) (int, error) {
	p := principal(c)
	if !replay {
		n, err := s.d.Bus.Dismiss(c.Request.Context(), p.CorpID, id)
		if err == nil && n == 0 {
			err = errNothingToDismiss
		}
		return n, err
	}
	n, err := s.d.Bus.Replay(c.Request.Context(), p.CorpID, id)
	if err == nil && n == 0 {
		err = errNothingToReplay
	}
	if err == nil {
		s.logger(c).Info("event replayed", "event", id, "deliveries", n, "by", p.UserID)
	}
	return n, err
}

func (s *Server) listJobs(c *gin.Context) {
	limit, before, ok := idPage(c)
	if !ok {
		return
	}
	list, err := s.d.Runner.List(c.Request.Context(), principal(c).CorpID, before, limit)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "jobs", list, limit, func(j jobs.JobRow) string { return strconv.FormatInt(j.ID, 10) })
}

func (s *Server) getJob(c *gin.Context) {
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		return s.d.Runner.Get(ctx, corp, id)
	})
}

func (s *Server) cancelJob(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	j, err := s.d.Runner.Cancel(c.Request.Context(), principal(c).CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, j)
}

func (s *Server) startSync(c *gin.Context) {
	p := principal(c)
	id, err := s.d.Directory.EnqueueSync(c.Request.Context(), s.d.Runner, p.CorpID, p.UserID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"job_id": id})
}

func (s *Server) directorySummary(c *gin.Context) {
	counts, err := s.d.Directory.Count(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, counts)
}

func (s *Server) listStaff(c *gin.Context) {
	p := principal(c)
	staff, err := s.d.Directory.ListStaff(c.Request.Context(), p.CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if !p.Can(auth.PermPII) {
		for i := range staff {
			staff[i].Mobile = auth.MaskMobile(staff[i].Mobile)
		}
	}
	if staff == nil {
		staff = []directory.Staff{}
	}
	c.JSON(http.StatusOK, gin.H{"staff": staff})
}

func (s *Server) listContacts(c *gin.Context) {
	limit, cursor, ok := pageParams(c)
	if !ok {
		return
	}
	list, err := s.d.Directory.ListContacts(c.Request.Context(), principal(c).CorpID, cursor, limit)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "contacts", list, limit, func(x directory.Contact) string { return x.ExternalUserID })
}

// listGroups pages through the corp's customer groups with their member
// counts (?owner= narrows to one staff member's): the chat ids group codes take.
func (s *Server) listGroups(c *gin.Context) {
	limit, cursor, ok := pageParams(c)
	if !ok {
		return
	}
	list, err := s.d.Directory.ListGroups(c.Request.Context(), principal(c).CorpID, c.Query("owner"), cursor, limit)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "groups", list, limit, func(x directory.Group) string { return x.ChatID })
}

func (s *Server) getContact(c *gin.Context) {
	p := principal(c)
	contact, err := s.d.Directory.GetContact(c.Request.Context(), p.CorpID, c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if !p.Can(auth.PermPII) {
		for i := range contact.Follows {
			contact.Follows[i].RemarkMobiles = maskMobiles(contact.Follows[i].RemarkMobiles)
		}
	}
	c.JSON(http.StatusOK, contact)
}

func (s *Server) listTags(c *gin.Context) {
	tags, err := s.d.Directory.ListTags(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if tags == nil {
		tags = []directory.Tag{}
	}
	c.JSON(http.StatusOK, gin.H{"tags": tags})
}
