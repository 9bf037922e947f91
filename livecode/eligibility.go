package livecode

import (
	"context"
	"sort"
	"time"

	"github.com/qiflow/qiflow/configs"
)

// inPeriod says whether the code adds staff now: active and inside its validity.
func inPeriod(c *Code, now time.Time) bool {
	if c.Status != StatusActive {
		return false
	}
	if c.Settings.ValidFrom != nil && now.Before(*c.Settings.ValidFrom) {
		return false
	}
	if c.Settings.ValidUntil != nil && !now.Before(*c.Settings.ValidUntil) {
		return false
	}
	return true
}

// Open says whether the code adds staff now (active and inside its validity):
// landing pages show a clear closed page otherwise.
func (s *Service) Open(c *Code) bool { return inPeriod(c, s.now()) }

// onDuty lists the non-backup staff the schedule puts on duty at now.
func (s *Service) onDuty(c *Code, now time.Time) []CodeStaff {
	cal := s.calendar(c.CorpID)
	local := now.In(cal.Location())
	weekday := local.Weekday()
	sch := c.Settings.Schedule
	var out []CodeStaff
	if len(sch.Slots) == 0 {
		for _, st := range c.Staff {
			if !st.Backup {
				out = append(out, st)
			}
		}
		return out
	}
	if sch.UseCalendar {
		if !cal.IsWorkday(now) {
			return nil
		}
		if weekday == time.Saturday || weekday == time.Sunday {
			weekday = time.Monday // a make-up workday follows Monday's slots
		}
	}
	on := map[string]bool{}
	for _, slot := range sch.Slots {
		if !slot.TimeSlot.Contains(local, weekday) {
			continue
		}
		if len(slot.Staff) == 0 {
			for _, st := range c.Staff {
				on[st.UserID] = true
			}
		}
		for _, u := range slot.Staff {
			on[u] = true
		}
	}
	for _, st := range c.Staff {
		if !st.Backup && on[st.UserID] {
			out = append(out, st)
		}
	}
	return out
}

func backups(c *Code) []CodeStaff {
	var out []CodeStaff
	for _, st := range c.Staff {
		if st.Backup {
			out = append(out, st)
		}
	}
	return out
}

func ids(staff []CodeStaff) []string {
	out := make([]string, len(staff))
	for i, st := range staff {
		out[i] = st.UserID
	}
	sort.Strings(out)
	return out
}

// Eligible is the staff a code hands customers to now: on duty and under
// today's caps; the backup staff when nobody else is (or when the code is
// paused or out of its validity period).
func (s *Service) Eligible(ctx context.Context, c *Code) (users []string, usingBackup bool, err error) {
	now := s.now()
	if !inPeriod(c, now) {
		return ids(backups(c)), true, nil
	}
	duty := s.onDuty(c, now)
	day := s.calendar(c.CorpID).DayKey(now)
	byCode, overall, err := s.counts(ctx, c.CorpID, day, c.ID, ids(duty))
	if err != nil {
		return nil, false, err
	}
	for _, st := range duty {
		if st.DailyCap > 0 && byCode[st.UserID] >= st.DailyCap {
			continue
		}
		if cp := c.Settings.StaffDailyCaps[st.UserID]; cp > 0 && overall[st.UserID] >= cp {
			continue
		}
		users = append(users, st.UserID)
	}
	if len(users) == 0 {
		return ids(backups(c)), true, nil
	}
	sort.Strings(users)
	return users, false, nil
}

// skipVerifyNow applies the code's skip-verify setting at now.
func (s *Service) skipVerifyNow(c *Code, now time.Time) bool {
	switch c.Settings.SkipVerify {
	case "never":
		return false
	case "window":
		local := now.In(s.calendar(c.CorpID).Location())
		return c.Settings.SkipVerifyWindow != nil && c.Settings.SkipVerifyWindow.Contains(local, local.Weekday())
	}
	return true
}

// nextChange is the next moment after now at which the code's WeCom side
// may need to change by the clock alone: a schedule slot starting or ending,
// the day's caps resetting, the validity period opening or closing, the
// skip-verify window, a manual group's expiry reminder. Zero: never.
func (s *Service) nextChange(c *Code, now time.Time) time.Time {
	cal := s.calendar(c.CorpID)
	loc := cal.Location()
	var edges []time.Time
	for _, sl := range c.Settings.Schedule.Slots {
		edges = append(edges, sl.TimeSlot.NextEdge(now, loc))
	}
	if len(c.Settings.Schedule.Slots) > 0 || len(c.Settings.StaffDailyCaps) > 0 || hasCodeCaps(c) {
		// Calendar days and daily caps turn over at midnight.
		edges = append(edges, cal.NextMidnight(now))
	}
	if w := c.Settings.SkipVerifyWindow; w != nil && c.Settings.SkipVerify == "window" {
		edges = append(edges, w.NextEdge(now, loc))
	}
	for _, t := range []*time.Time{c.Settings.ValidFrom, c.Settings.ValidUntil} {
		if t != nil && t.After(now) {
			edges = append(edges, *t)
		}
	}
	for _, mg := range c.Settings.ManualGroups {
		for _, t := range []time.Time{mg.ExpiresAt.Add(-manualReminderLead), mg.ExpiresAt} {
			if t.After(now) {
				edges = append(edges, t)
			}
		}
	}
	return configs.Earliest(edges...)
}

func hasCodeCaps(c *Code) bool {
	for _, st := range c.Staff {
		if st.DailyCap > 0 {
			return true
		}
	}
	return false
}
