package configs

import (
	"testing"
	"time"
)

func TestCalendar_AddWorkingTimeCountsOnlyWorkingHours(t *testing.T) {
	cal, err := CalendarConfig{Holidays: []string{"2026-10-01", "2026-10-02"}, Workdays: []string{"2026-10-10"},
		WorkHours: map[string][]string{"mon": {"09:00-12:00", "13:00-18:00"}, "tue": {"09:00-12:00", "13:00-18:00"}, "wed": {"09:00-12:00", "13:00-18:00"},
			"thu": {"09:00-12:00", "13:00-18:00"}, "fri": {"09:00-12:00", "13:00-18:00"}}, MakeupHours: []string{"09:00-18:00"}}.Compile("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(s string) time.Time { t, _ := time.ParseInLocation("2006-01-02 15:04", s, sh); return t }
	for _, c := range []struct {
		from string
		d    time.Duration
		want string
	}{
		{"2026-11-23 10:00", time.Hour, "2026-11-23 11:00"},     // inside the morning
		{"2026-11-23 11:30", time.Hour, "2026-11-23 13:30"},     // over lunch
		{"2026-11-23 20:00", time.Hour, "2026-11-24 10:00"},     // after hours: from the next morning
		{"2026-11-27 17:00", 5 * time.Hour, "2026-11-30 14:00"}, // Friday evening → Monday, lunch skipped
		{"2026-09-30 17:00", 2 * time.Hour, "2026-10-05 10:00"}, // over the holidays and the weekend
		{"2026-10-09 17:30", 2 * time.Hour, "2026-10-10 10:30"}, // the make-up Saturday works 09:00-18:00
		{"2026-11-23 10:00", 0, "2026-11-23 10:00"},
	} {
		if got := cal.AddWorkingTime(at(c.from), c.d); !got.Equal(at(c.want)) {
			t.Errorf("%s + %s = %s, want %s", c.from, c.d, got.In(sh).Format("2006-01-02 15:04"), c.want)
		}
	}
}

// A calendar replaced while in use: readers see the old one or the new
// one, whole (no torn state under -race); one that does not compile is
// refused and the old one kept.
func TestCalendar_ReplacedWhileInUse(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	cal, err := CalendarConfig{}.Compile("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	monday := time.Date(2026, 3, 2, 10, 0, 0, 0, sh)
	if !cal.IsWorkday(monday) {
		t.Fatal("a Monday is not a workday by default")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			_ = cal.IsWorkingTime(monday)
			_ = cal.WorkdaysAfter(monday, 2)
		}
	}()
	if err := cal.Replace(CalendarConfig{Holidays: []string{"2026-03-02"}}); err != nil {
		t.Fatal(err)
	}
	<-done
	if cal.IsWorkday(monday) || cal.Location().String() != "Asia/Shanghai" || len(cal.Config().Holidays) != 1 {
		t.Fatal("the replaced calendar is not the one in use")
	}
	if err := cal.Replace(CalendarConfig{Holidays: []string{"March 2"}}); err == nil {
		t.Fatal("a calendar that does not compile replaced the old one")
	}
	if cal.IsWorkday(monday) {
		t.Fatal("the refused calendar changed the one in use")
	}
}

// A calendar without a single working day is refused; one whose holidays
// cover years still answers (it does not spin).
func TestCalendar_NoWorkingDayIsRefusedAndNothingSpins(t *testing.T) {
	empty := map[string][]string{"mon": nil, "tue": nil, "wed": nil, "thu": nil, "fri": nil, "sat": nil, "sun": nil}
	if _, err := (CalendarConfig{WorkHours: empty}).Compile("Asia/Shanghai"); err == nil {
		t.Fatal("a calendar with no working day compiled")
	}
	var holidays []string
	for d := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2030; d = d.AddDate(0, 0, 1) {
		holidays = append(holidays, d.Format(time.DateOnly))
	}
	cal, err := CalendarConfig{Holidays: holidays}.Compile("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, cal.Location())
	if got := cal.WorkdaysAfter(start, 2); !got.After(start) {
		t.Fatalf("WorkdaysAfter over years of holidays: %v", got)
	}
}
