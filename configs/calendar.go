package configs

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// CalendarConfig is a corp's work calendar as written in the config file.
//
//	work_hours: {mon: ["09:00-12:00", "13:00-18:00"], ...}
//	holidays:   ["2026-10-01", ...]   # days off although they are weekdays
//	workdays:   ["2026-09-27", ...]   # make-up workdays (调休) although they are weekends
//
// A make-up workday uses makeup_hours, or Monday's hours when that is empty.
type CalendarConfig struct {
	WorkHours   map[string][]string `yaml:"work_hours" json:"work_hours,omitempty"`
	MakeupHours []string            `yaml:"makeup_hours" json:"makeup_hours,omitempty"`
	Holidays    []string            `yaml:"holidays" json:"holidays,omitempty"`
	Workdays    []string            `yaml:"workdays" json:"workdays,omitempty"`
}

// Span is a time-of-day interval [Start, End) in minutes after midnight.
type Span struct{ Start, End int }

// Calendar answers "is this a working day / working time" in the corp's zone.
// Schedules (live codes) and SLAs (leads) share it. An admin can change it
// while Qiflow runs (Replace): everyone holding it sees the new one from
// their next question on.
type Calendar struct {
	cur atomic.Pointer[calendar]
}

// calendar is one compiled version of a calendar.
type calendar struct {
	conf     CalendarConfig
	loc      *time.Location
	hours    [7][]Span // indexed by time.Weekday
	makeup   []Span
	holidays map[string]bool
	workdays map[string]bool
}

var weekdayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// DefaultWorkHours is Monday to Friday, 09:00–18:00.
func DefaultWorkHours() map[string][]string {
	h := map[string][]string{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri"} {
		h[d] = []string{"09:00-18:00"}
	}
	return h
}

// Compile validates the calendar and builds its lookup form.
func (cc CalendarConfig) Compile(tz string) (*Calendar, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", tz)
	}
	c, err := cc.compile(loc)
	if err != nil {
		return nil, err
	}
	cal := &Calendar{}
	cal.cur.Store(c)
	return cal, nil
}

// Config is the calendar as configured (or as last replaced).
func (c *Calendar) Config() CalendarConfig { return c.cur.Load().conf }

// Replace makes cc the calendar from now on, in the same time zone; a
// calendar that does not compile is refused and the current one kept.
func (c *Calendar) Replace(cc CalendarConfig) error {
	next, err := cc.compile(c.cur.Load().loc)
	if err != nil {
		return err
	}
	c.cur.Store(next)
	return nil
}

func (cc CalendarConfig) compile(loc *time.Location) (*calendar, error) {
	var err error
	c := &calendar{conf: cc, loc: loc, holidays: map[string]bool{}, workdays: map[string]bool{}}
	wh := cc.WorkHours
	if len(wh) == 0 {
		wh = DefaultWorkHours()
	}
	for name, spans := range wh {
		wd, ok := weekdayNames[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("work_hours: unknown weekday %q (use mon..sun)", name)
		}
		if c.hours[wd], err = ParseSpans(spans); err != nil {
			return nil, fmt.Errorf("work_hours.%s: %w", name, err)
		}
	}
	working := false
	for _, spans := range c.hours {
		working = working || len(spans) > 0
	}
	if !working {
		return nil, fmt.Errorf("work_hours: no day has working hours")
	}
	c.makeup = c.hours[time.Monday]
	if len(cc.MakeupHours) > 0 {
		if c.makeup, err = ParseSpans(cc.MakeupHours); err != nil {
			return nil, fmt.Errorf("makeup_hours: %w", err)
		}
	}
	for _, d := range cc.Holidays {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("holidays: %q is not a YYYY-MM-DD date", d)
		}
		c.holidays[d] = true
	}
	for _, d := range cc.Workdays {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("workdays: %q is not a YYYY-MM-DD date", d)
		}
		if c.holidays[d] {
			return nil, fmt.Errorf("workdays: %s is also listed as a holiday", d)
		}
		c.workdays[d] = true
	}
	return c, nil
}

// ParseSpans reads ["09:00-12:00", ...]; spans must be ordered and must not overlap.
func ParseSpans(in []string) ([]Span, error) {
	out := make([]Span, 0, len(in))
	for _, s := range in {
		a, b, ok := strings.Cut(s, "-")
		if !ok {
			return nil, fmt.Errorf("%q is not HH:MM-HH:MM", s)
		}
		start, err1 := parseClock(a)
		end, err2 := parseClock(b)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("%q is not a valid HH:MM-HH:MM span", s)
		}
		out = append(out, Span{start, end})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	for i := 1; i < len(out); i++ {
		if out[i].Start < out[i-1].End {
			return nil, fmt.Errorf("spans overlap")
		}
	}
	return out, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		if strings.TrimSpace(s) == "24:00" {
			return 24 * 60, nil
		}
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Location is the corp's time zone.
func (c *Calendar) Location() *time.Location { return c.cur.Load().loc }

// DayKey is the local date of t in the corp's zone, e.g. "2026-11-23": the key of everything counted per day.
func (c *Calendar) DayKey(t time.Time) string { return t.In(c.Location()).Format(time.DateOnly) }

// IsWorkday says whether t's local date is a working day.
func (c *Calendar) IsWorkday(t time.Time) bool { return c.cur.Load().isWorkday(t) }

// IsWorkingTime says whether t falls inside the working hours of its local day.
func (c *Calendar) IsWorkingTime(t time.Time) bool { return c.cur.Load().isWorkingTime(t) }

// WorkdaysAfter is the moment n whole working days after t have passed: the
// end of the nth working day after t's own day (t's day itself does not
// count, worked or not). Holidays and make-up workdays count as the
// calendar says.
func (c *Calendar) WorkdaysAfter(t time.Time, n int) time.Time {
	return c.cur.Load().workdaysAfter(t, n)
}

// AddWorkingTime is the moment d of working time after t: time outside the
// working hours (nights, weekends, holidays) does not count, make-up
// workdays do. A calendar with no working time at all in the next two years
// counts every hour.
func (c *Calendar) AddWorkingTime(t time.Time, d time.Duration) time.Time {
	return c.cur.Load().addWorkingTime(t, d)
}

func (c *calendar) isWorkday(t time.Time) bool { return len(c.spansOn(t)) > 0 }

func (c *calendar) isWorkingTime(t time.Time) bool {
	lt := t.In(c.loc)
	m := lt.Hour()*60 + lt.Minute()
	for _, s := range c.spansOn(t) {
		if m >= s.Start && m < s.End {
			return true
		}
	}
	return false
}

func (c *calendar) spansOn(t time.Time) []Span {
	lt := t.In(c.loc)
	day := lt.Format(time.DateOnly)
	switch {
	case c.holidays[day]:
		return nil
	case c.workdays[day]:
		return c.makeup
	}
	return c.hours[lt.Weekday()]
}

// Calendars are the corps' calendars by corp id.
type Calendars map[string]*Calendar

// For returns the corp's calendar; a corp without one works on China's
// time zone with the default week.
func (cs Calendars) For(corpID string) *Calendar {
	if c := cs[corpID]; c != nil {
		return c
	}
	c, _ := CalendarConfig{}.Compile("Asia/Shanghai")
	return c
}

func (c *calendar) workdaysAfter(t time.Time, n int) time.Time {
	lt := t.In(c.loc)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, c.loc)
	// Bounded like addWorkingTime: holidays can cover whole years only by
	// mistake, and a mistake must not spin forever.
	for idle := 0; n > 0 && idle < 731; idle++ {
		day = day.AddDate(0, 0, 1)
		if c.isWorkday(day.Add(12 * time.Hour)) {
			n, idle = n-1, 0
		}
	}
	return day.AddDate(0, 0, n+1)
}

func (c *calendar) addWorkingTime(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t
	}
	lt := t.In(c.loc)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, c.loc)
	for range 731 {
		for _, s := range c.spansOn(day.Add(12 * time.Hour)) {
			start := day.Add(time.Duration(s.Start) * time.Minute)
			end := day.Add(time.Duration(s.End) * time.Minute)
			if !end.After(lt) {
				continue
			}
			if start.Before(lt) {
				start = lt
			}
			if avail := end.Sub(start); d <= avail {
				return start.Add(d)
			} else {
				d -= avail
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return t.Add(d)
}
