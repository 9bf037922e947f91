package configs

import (
	"fmt"
	"strings"
	"time"
)

// TimeSlot is a daily time range on some weekdays ("mon".."sun"; empty =
// every day), read in a corp's time zone. Live-code schedules and welcome
// variants use them; SLAs and journey waits will too.
type TimeSlot struct {
	Days  []string `json:"days,omitempty"`
	Start string   `json:"start"` // HH:MM
	End   string   `json:"end"`   // HH:MM, exclusive; 24:00 is midnight
}

// Compiled is a parsed slot: minutes after midnight and a weekday set.
type Compiled struct {
	Start, End int
	Days       map[time.Weekday]bool // empty: every day
}

// Compile validates the slot.
func (s TimeSlot) Compile() (Compiled, error) {
	spans, err := ParseSpans([]string{s.Start + "-" + s.End})
	if err != nil {
		return Compiled{}, fmt.Errorf("%s-%s is not a valid HH:MM time range", s.Start, s.End)
	}
	days := map[time.Weekday]bool{}
	for _, d := range s.Days {
		wd, ok := weekdayNames[strings.ToLower(d)]
		if !ok {
			return Compiled{}, fmt.Errorf("unknown weekday %q (use mon..sun)", d)
		}
		days[wd] = true
	}
	return Compiled{Start: spans[0].Start, End: spans[0].End, Days: days}, nil
}

// Contains reports whether local time t falls in the slot on weekday (passed
// separately, so a make-up workday can count as Monday). An invalid slot
// contains nothing.
func (s TimeSlot) Contains(t time.Time, weekday time.Weekday) bool {
	c, err := s.Compile()
	if err != nil {
		return false
	}
	if len(c.Days) > 0 && !c.Days[weekday] {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	return m >= c.Start && m < c.End
}

// NextEdge is the first moment after t (in loc) at which the slot starts or
// ends on a day it applies to, looking up to a week ahead; zero for an
// invalid slot. A schedule built of slots can only change at these moments,
// so work that depends on one is scheduled for its next edge instead of
// being rechecked every minute.
func (s TimeSlot) NextEdge(t time.Time, loc *time.Location) time.Time {
	c, err := s.Compile()
	if err != nil {
		return time.Time{}
	}
	lt := t.In(loc)
	midnight := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
	for d := 0; d <= 7; d++ {
		day := midnight.AddDate(0, 0, d)
		if len(c.Days) > 0 && !c.Days[day.Weekday()] {
			continue
		}
		for _, m := range []int{c.Start, c.End} {
			// Wall-clock minutes, so DST days land on the right local time.
			edge := time.Date(day.Year(), day.Month(), day.Day(), m/60, m%60, 0, 0, loc)
			if edge.After(t) {
				return edge
			}
		}
	}
	return time.Time{}
}

// String renders the slot as people write it: "mon,tue 09:00-18:00".
func (s TimeSlot) String() string {
	r := s.Start + "-" + s.End
	if len(s.Days) == 0 {
		return r
	}
	return strings.Join(s.Days, ",") + " " + r
}

// Overlap reports whether two valid slots share a day and a minute.
func Overlap(a, b Compiled) bool {
	shareDay := len(a.Days) == 0 || len(b.Days) == 0
	for d := range a.Days {
		shareDay = shareDay || b.Days[d]
	}
	return shareDay && a.Start < b.End && b.Start < a.End
}

// NextMidnight is the start of the local day after t: when per-day counts
// (caps) reset.
func (c *Calendar) NextMidnight(t time.Time) time.Time {
	loc := c.Location()
	lt := t.In(loc)
	return time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, loc)
}

// Earliest is the earliest non-zero time among ts (zero when none).
func Earliest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}
