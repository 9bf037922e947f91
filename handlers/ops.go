package handlers

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/wecom/directory"
)

func (s *Server) listEvents(c *gin.Context) {
	limit, before, ok := idPage(c)
	if !ok {
		return
	}
	status := c.Query("status")
	switch status {
	case "", "pending", "dead", "done":
	default:
		invalid(c, "status", "must be pending, dead or done")
		return
	}
	source := c.Query("source")
	switch source {
	case "", jobs.SourceWeCom, jobs.SourceDomain:
	default:
		invalid(c, "source", "must be wecom or domain")
		return
	}
	events, err := s.d.Bus.List(c.Request.Context(), jobs.EventFilter{CorpID: principal(c).CorpID, Status: status, Source: source, Type: c.Query("type"),
		Event: c.Query("event"), ChangeType: c.Query("change_type"), Subject: c.Query("subject"), Before: before, Limit: limit})
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "events", events, limit, func(e jobs.EventView) string { return strconv.FormatInt(e.ID, 10) })
}

func (s *Server) replayEvent(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	n, err := s.d.Bus.Replay(c.Request.Context(), principal(c).CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if n == 0 {
		fail(c, http.StatusConflict, "nothing_to_replay", "the event has no dead-lettered deliveries in your corp", nil)
		return
	}
	s.logger(c).Info("event replayed", "event", id, "deliveries", n, "by", principal(c).UserID)
	c.JSON(http.StatusAccepted, gin.H{"requeued": n})
}

func (s *Server) dismissEvent(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	n, err := s.d.Bus.Dismiss(c.Request.Context(), principal(c).CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if n == 0 {
		fail(c, http.StatusConflict, "nothing_to_dismiss", "the event has no dead-lettered deliveries in your corp", nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"dismissed": n})
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
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	j, err := s.d.Runner.Get(c.Request.Context(), principal(c).CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, j)
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
