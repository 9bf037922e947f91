package handlers

import (
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/livecode"
)

// codesData is the live codes page: the filter and a page of codes.
type codesData struct {
	Status, Channel, Mode string
	Codes                 []*livecode.Code
	Next                  int64
}

// codesPage lists live codes under the API's filter and scope, each with
// its QR, downloads and (for managers) pause, resume and archive.
func (s *Server) codesPage(c *gin.Context) {
	f, err := codeFilter(principal(c), c.Query)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := codesData{Status: f.Status, Channel: f.Channel, Mode: f.Mode}
	d.Codes, d.Next, err = pageOf(c, "after", opsPageSize, func(cursor int64, limit int) ([]*livecode.Code, error) {
		f.After, f.Limit = cursor, limit
		return s.d.LiveCodes.List(c.Request.Context(), f)
	}, func(x *livecode.Code) int64 { return x.ID })
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, http.StatusOK, "codes", "", s.newView(c, "nav.codes", "codes.title", d))
}

// codeStatusFromPage pauses, resumes or archives a code and answers its
// row as it now is.
func (s *Server) codeStatusFromPage(status string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := s.pageID(c)
		if !ok {
			return
		}
		code, err := s.d.LiveCodes.SetStatus(c.Request.Context(), principal(c).CorpID, id, status)
		if err != nil {
			s.failPage(c, err)
			return
		}
		s.render(c, http.StatusOK, "codes", "code_row", s.newView(c, "nav.codes", "codes.title", code))
	}
}

// resultsData is the channel results page: the range, the grouping, the
// rows and the chart's series.
type resultsData struct {
	From, To, GroupBy string
	Rows              []livecode.StatsRow
	Chart             resultsChart
	// Retention charts the share of adds still connected after 7 and 30 days.
	Retention resultsChart
}

// resultsChart is what console.js hands to ECharts: categories and one
// series per figure.
type resultsChart struct {
	Kind       string         `json:"kind"` // line (by day) or bar
	Percent    bool           `json:"percent,omitempty"`
	Categories []string       `json:"categories"`
	Series     []resultSeries `json:"series"`
}

type resultSeries struct {
	Name string    `json:"name"`
	Data []float64 `json:"data"`
}

// resultsPage charts adds, losses and net adds (and lists retention) by
// day, code, channel, staff or store over a date range, as GET
// /api/v1/stats/codes computes them; the CSV is the API's.
func (s *Server) resultsPage(c *gin.Context) {
	p := principal(c)
	f, err := statsFilter(p, c.Query)
	if err != nil {
		s.failPage(c, err)
		return
	}
	if c.Query("group_by") == "" {
		f.GroupBy = "day"
	}
	today := time.Now().In(s.location(p.CorpID))
	if f.To == "" {
		f.To = today.Format(time.DateOnly)
	}
	if f.From == "" {
		f.From = today.AddDate(0, 0, -29).Format(time.DateOnly)
	}
	rows, err := s.d.LiveCodes.Stats(c.Request.Context(), f)
	if err != nil {
		s.failPage(c, err)
		return
	}
	v := s.newView(c, "nav.results", "results.title", nil)
	d := resultsData{From: f.From, To: f.To, GroupBy: f.GroupBy, Rows: rows, Chart: resultsChart{Kind: "bar"}}
	if f.GroupBy == "day" {
		d.Chart.Kind = "line"
	}
	series := []resultSeries{{Name: v.T("results.adds")}, {Name: v.T("results.lost")}, {Name: v.T("results.net")}}
	retention := []resultSeries{{Name: v.T("results.retained7")}, {Name: v.T("results.retained30")}}
	chartRows := rows
	if f.GroupBy == "day" {
		chartRows = everyDay(f.From, f.To, rows)
	}
	for _, r := range chartRows {
		d.Chart.Categories = append(d.Chart.Categories, r.Key)
		series[0].Data = append(series[0].Data, float64(r.Adds))
		series[1].Data = append(series[1].Data, float64(r.LostCustomer+r.LostStaff))
		series[2].Data = append(series[2].Data, float64(r.NetAdds))
		retention[0].Data = append(retention[0].Data, math.Round(r.Retained7d*1000)/10)
		retention[1].Data = append(retention[1].Data, math.Round(r.Retained30d*1000)/10)
	}
	d.Chart.Series = series
	d.Retention = resultsChart{Kind: d.Chart.Kind, Categories: d.Chart.Categories, Series: retention, Percent: true}
	v.Data = d
	s.render(c, http.StatusOK, "results", "", v)
}

// everyDay is the rows of a day-by-day range with the days that had
// nothing as zeros, so the chart's axis runs through the whole range (a
// year at most).
func everyDay(from, to string, rows []livecode.StatsRow) []livecode.StatsRow {
	start, err1 := time.Parse(time.DateOnly, from)
	end, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil || end.Before(start) || end.Sub(start) > 366*24*time.Hour {
		return rows
	}
	byDay := make(map[string]livecode.StatsRow, len(rows))
	for _, r := range rows {
		byDay[r.Key] = r
	}
	var out []livecode.StatsRow
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		key := d.Format(time.DateOnly)
		r, ok := byDay[key]
		if !ok {
			r = livecode.StatsRow{Key: key}
		}
		out = append(out, r)
	}
	return out
}
