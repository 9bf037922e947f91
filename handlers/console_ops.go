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
	d := eventsData{Status: f.Status, Source: f.Source}
	d.Events, d.Next, err = pageOf(c, "before", opsPageSize, func(cursor int64, limit int) ([]jobs.EventView, error) {
		f.Before, f.Limit = cursor, limit
		return s.d.Bus.List(c.Request.Context(), f)
	}, func(e jobs.EventView) int64 { return e.ID })
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, http.StatusOK, "events", "", s.newView(c, "nav.events", "events.title", d))
}

// settleFromPage replays or dismisses an event's dead letters and answers
// the event's row as it now is.
func (s *Server) settleFromPage(replay bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := principal(c)
		id, ok := s.pageID(c)
		if !ok {
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
	id, ok := s.pageID(c)
	if !ok {
		return
	}
	if _, err := s.d.Runner.Cancel(c.Request.Context(), p.CorpID, id); err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/jobs")
}

// pageOf reads one page of a list paged by id cursor (?param=): one item
// more than it shows, so it knows whether a next page exists, and that
// page's cursor (0: none).
func pageOf[T any](c *gin.Context, param string, size int, read func(cursor int64, limit int) ([]T, error), id func(T) int64) ([]T, int64, error) {
	cursor, err := cursorParam(c, param)
	if err != nil {
		return nil, 0, err
	}
	list, err := read(cursor, size+1)
	if err != nil || len(list) <= size {
		return list, 0, err
	}
	return list[:size], id(list[size-1]), nil
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
