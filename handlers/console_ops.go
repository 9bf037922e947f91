package handlers

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
)

// eventsData is the operations page of events: the filter, a page of
// events with each subscriber's outcome, and the next page's cursor.
type eventsData struct {
	Status, Source string
	Events         []jobs.EventView
	Next           int64
}

const opsPageSize = 50

// eventsPage lists events as GET /api/v1/events does (same filter, same
// corp), dead letters first when asked (?status=dead).
func (s *Server) eventsPage(c *gin.Context) {
	p := principal(c)
	f, err := eventFilter(p.CorpID, c.Query)
	if err != nil {
		s.failPage(c, err)
		return
	}
	if f.Before, err = cursorParam(c, "before"); err != nil {
		s.failPage(c, err)
		return
	}
	f.Limit = opsPageSize + 1
	list, err := s.d.Bus.List(c.Request.Context(), f)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := eventsData{Status: f.Status, Source: f.Source, Events: list}
	if len(list) > opsPageSize {
		d.Events, d.Next = list[:opsPageSize], list[opsPageSize-1].ID
	}
	s.render(c, http.StatusOK, "events", "", s.newView(c, "nav.events", "events.title", d))
}

// settleFromPage replays or dismisses an event's dead letters and answers
// the event's row as it now is.
func (s *Server) settleFromPage(replay bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := principal(c)
		id, err := strconv.ParseInt(c.Param("id"), 10, 64)
		if err != nil || id <= 0 {
			s.pageError(c, http.StatusNotFound, translate(s.lang(c, p), "err.not_found"))
			return
		}
		if _, err := s.settleDead(c, id, replay); err != nil {
			s.failPage(c, err)
			return
		}
		list, err := s.d.Bus.List(c.Request.Context(), jobs.EventFilter{CorpID: p.CorpID, Before: id + 1, Limit: 1})
		if err != nil || len(list) == 0 || list[0].ID != id {
			redirectPage(c, "/console/events")
			return
		}
		s.render(c, http.StatusOK, "events", "event_row", s.newView(c, "nav.events", "events.title", list[0]))
	}
}

// jobsData is the background jobs page; Active makes it poll for progress.
type jobsData struct {
	Jobs   []jobs.JobRow
	Active bool
}

// jobsPage lists background jobs (imports, syncs, rescoring) with their
// progress; while one runs the table refreshes itself every two seconds.
func (s *Server) jobsPage(c *gin.Context) {
	p := principal(c)
	list, err := s.d.Runner.List(c.Request.Context(), p.CorpID, 0, opsPageSize)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := jobsData{Jobs: list}
	for _, j := range list {
		d.Active = d.Active || j.Status == jobs.JobQueued || j.Status == jobs.JobRunning
	}
	v := s.newView(c, "nav.jobs", "jobs.title", d)
	partial := ""
	if c.GetHeader("HX-Request") != "" {
		partial = "jobs_table"
	}
	s.render(c, http.StatusOK, "jobs", partial, v)
}

// cancelFromPage asks a job to stop (it stops between steps) and shows the
// jobs again.
func (s *Server) cancelFromPage(c *gin.Context) {
	p := principal(c)
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.pageError(c, http.StatusNotFound, translate(s.lang(c, p), "err.not_found"))
		return
	}
	if _, err := s.d.Runner.Cancel(c.Request.Context(), p.CorpID, id); err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/jobs")
}

// cursorParam reads an optional positive id cursor from the query.
func cursorParam(c *gin.Context, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, apperr.Field(name, "must be a positive id")
	}
	return n, nil
}
