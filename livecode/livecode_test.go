package livecode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/kv/kvtest"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

func TestParseState(t *testing.T) {
	cases := map[string]int64{"lc12": 12, "lc12_ab12cd": 12, "lc": 0, "lcx": 0, "poster": 0, "lc12x": 0, "": 0}
	for in, want := range cases {
		if got := ParseState(in); got != want {
			t.Errorf("ParseState(%q) = %d, want %d", in, got, want)
		}
	}
	if s := staffState(123456789, strings.Repeat("u", 64)); len(s) > 30 {
		t.Fatalf("state %q exceeds WeCom's 30 characters", s)
	}
}

func TestValidate_NamesTheFailingField(t *testing.T) {
	base := func() Code {
		return Code{Name: "n", Mode: ModeWeComQR, Staff: []CodeStaff{{UserID: "a"}, {UserID: "b", Backup: true}}}
	}
	cases := map[string]func(c *Code){
		"mode":                     func(c *Code) { c.Mode = "x" },
		"staff":                    func(c *Code) { c.Staff = []CodeStaff{{UserID: "b", Backup: true}} },
		"staff[1].userid":          func(c *Code) { c.Staff[1].UserID = "a" },
		"staff[0].daily_cap":       func(c *Code) { c.Staff[0].DailyCap = -1 },
		"settings.remark_template": func(c *Code) { c.Settings.RemarkTemplate = "this fixed remark text is far too long for WeCom" },
		"settings.welcome.text":    func(c *Code) { c.Settings.Welcome.Text = "hello {unknown}" },
		"settings.skip_verify":     func(c *Code) { c.Settings.SkipVerify = "sometimes" },
		"settings.schedule.slots[0]": func(c *Code) {
			c.Settings.Schedule.Slots = []ScheduleSlot{{TimeSlot: TimeSlot{Start: "18:00", End: "09:00"}}}
		},
		"settings.schedule.slots[1]": func(c *Code) {
			c.Settings.Schedule.Slots = []ScheduleSlot{{TimeSlot: TimeSlot{Days: []string{"mon"}, Start: "09:00", End: "12:00"}},
				{TimeSlot: TimeSlot{Start: "11:30", End: "13:00"}}}
		},
		"settings.valid_until": func(c *Code) {
			t0 := time.Now()
			t1 := t0.Add(-time.Hour)
			c.Settings.ValidFrom, c.Settings.ValidUntil = &t0, &t1
		},
	}
	for field, mutate := range cases {
		c := base()
		mutate(&c)
		errs := c.validate()
		if errs[field] == "" {
			t.Errorf("%s: not reported, got %v", field, errs)
		}
	}
	ok := base()
	ok.Settings.Schedule.Slots = []ScheduleSlot{{TimeSlot: TimeSlot{Days: []string{"mon"}, Start: "09:00", End: "12:00"}},
		{TimeSlot: TimeSlot{Days: []string{"tue"}, Start: "11:00", End: "13:00"}}}
	ok.Settings.RemarkTemplate = "{customer_name}-{channel}"
	if errs := ok.validate(); len(errs) != 0 {
		t.Fatalf("valid code rejected: %v", errs)
	}
}

func TestCSVCell_EscapesFormulas(t *testing.T) {
	for in, want := range map[string]string{"=1+1": "'=1+1", "+86": "'+86", "-x": "'-x", "@a": "'@a", "poster": "poster", "": ""} {
		if got := CSVCell(in); got != want {
			t.Errorf("CSVCell(%q) = %q", in, got)
		}
	}
}

func TestPick_SmoothWeightedRoundRobinWithinCaps(t *testing.T) {
	for _, b := range kvtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := sqltest.OpenSQLite(t)
			s := New(db, b.Open(t), nil, nil, nil, "http://x", slog.New(slog.NewTextHandler(io.Discard, nil)))
			c := &Code{ID: 7, CorpID: "ww1"}
			ctx := context.Background()
			now := time.Now()
			// Weights 3:1 without caps: every window of 4 picks holds 3 a and 1 b.
			cands := []candidate{{UserID: "a", Weight: 3}, {UserID: "b", Weight: 1}}
			var seq []string
			for i := 0; i < 8; i++ {
				u, err := s.pick(ctx, c, "2026-11-23", cands, fmt.Sprint("v", i), now)
				if err != nil {
					t.Fatal(err)
				}
				seq = append(seq, u)
			}
			if strings.Join(seq, "") != "aabaaaba" {
				t.Fatalf("sequence %v", seq)
			}
			// Caps hold under concurrency: 50 visits for 2 staff capped at 10 each.
			c2 := &Code{ID: 8, CorpID: "ww1"}
			capped := []candidate{{UserID: "x", Weight: 1, CodeCap: 10}, {UserID: "y", Weight: 1, CodeCap: 10}}
			var mu sync.Mutex
			got := map[string]int{}
			var wg sync.WaitGroup
			for i := 0; i < 50; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					u, err := s.pick(ctx, c2, "2026-11-23", capped, fmt.Sprint("w", i), now)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					got[u]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if got["x"] != 10 || got["y"] != 10 || got[""] != 30 {
				t.Fatalf("capped picks %v", got)
			}
			// Reservations expire: after the TTL the slots are free again.
			u, _ := s.pick(ctx, c2, "2026-11-23", capped, "late", now.Add(s.ReservationTTL+time.Second))
			if u == "" {
				t.Fatal("expired reservations still hold the cap")
			}
		})
	}
}

// A retried delivery counts its add again: it must not release a second
// visitor's reservation, or the cap is overrun.
func TestConsume_ARetriedAddReleasesOneReservation(t *testing.T) {
	for _, b := range kvtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := sqltest.OpenSQLite(t)
			s := New(db, b.Open(t), nil, nil, nil, "http://x", slog.New(slog.NewTextHandler(io.Discard, nil)))
			c := &Code{ID: 9, CorpID: "ww1"}
			ctx := context.Background()
			now := time.Now()
			const day = "2026-11-23"
			capped := []candidate{{UserID: "x", Weight: 1, CodeCap: 2}}
			for _, v := range []string{"v1", "v2"} {
				if u, err := s.pick(ctx, c, day, capped, v, now); err != nil || u != "x" {
					t.Fatalf("visit %s: %q %v", v, u, err)
				}
			}
			// v1 adds; the delivery runs twice.
			for i := 0; i < 2; i++ {
				if err := s.consume(ctx, c.CorpID, day, c.ID, "x", 101); err != nil {
					t.Fatal(err)
				}
			}
			// One add and v2's reservation fill the cap of two.
			if u, err := s.pick(ctx, c, day, capped, "v3", now); err != nil || u != "" {
				t.Fatalf("a third visitor was shown %q (%v): the retry released v2's slot", u, err)
			}
		})
	}
}

func TestGeo_DistanceAndDatum(t *testing.T) {
	// People's Square to the Bund, Shanghai: about 1.6 km.
	if d := haversineKM(31.2304, 121.4737, 31.2400, 121.4900); d < 1.6 || d > 2.0 {
		t.Fatalf("distance %.3f km", d)
	}
	// GCJ-02 shifts positions in mainland China by a few hundred metres, and none outside.
	glat, glng := wgs84ToGCJ02(31.2304, 121.4737)
	if d := haversineKM(31.2304, 121.4737, glat, glng); d < 0.2 || d > 0.8 {
		t.Fatalf("GCJ-02 offset in Shanghai %.3f km", d)
	}
	if la, ln := wgs84ToGCJ02(48.8566, 2.3522); la != 48.8566 || ln != 2.3522 {
		t.Fatal("Paris was shifted")
	}
}

func TestWelcome_VariantBySlot(t *testing.T) {
	s := New(nil, nil, nil, nil, nil, "http://x", slog.New(slog.NewTextHandler(io.Discard, nil)))
	sh, _ := time.LoadLocation("Asia/Shanghai")
	c := &Code{CorpID: "ww1", Name: "n", Settings: Settings{Welcome: Welcome{Text: "Hello {customer_name}",
		Variants: []WelcomeVariant{{Slot: TimeSlot{Start: "12:00", End: "14:00"}, Text: "Lunch time, {customer_name}: {staff_name} replies after 14:00"}}}}}
	vars := TemplateVars{CustomerName: "Mei", StaffName: "Zhang"}
	if text, _ := s.welcomeFor(c, time.Date(2026, 11, 23, 10, 0, 0, 0, sh), vars); text != "Hello Mei" {
		t.Fatalf("at 10:00: %q", text)
	}
	if text, _ := s.welcomeFor(c, time.Date(2026, 11, 23, 13, 0, 0, 0, sh), vars); text != "Lunch time, Mei: Zhang replies after 14:00" {
		t.Fatalf("at 13:00: %q", text)
	}
	// Slots are in the corp's time zone: 05:00 UTC is 13:00 in Shanghai.
	if text, _ := s.welcomeFor(c, time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC), vars); !strings.HasPrefix(text, "Lunch") {
		t.Fatalf("at 05:00 UTC: %q", text)
	}
}

func TestStats_RetentionAfter7And30Days(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, nil, nil, "http://x", slog.New(slog.NewTextHandler(io.Discard, nil)))
		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		day := 24 * time.Hour
		add := func(key string, ago time.Duration, lostAfter time.Duration) {
			at := now.Add(-ago)
			var lost any
			if lostAfter > 0 {
				lost = at.Add(lostAfter).UnixMilli()
			}
			if _, err := db.Exec(`INSERT INTO contact_sources (corp_id, event_key, external_userid, userid, code_id, day, added_at, lost_at) VALUES ('ww1', ?, ?, 'u', 5, '2026-10-01', ?, ?)`,
				key, key, at.UnixMilli(), lost); err != nil {
				t.Fatal(err)
			}
		}
		add("a", 40*day, 0)      // still connected
		add("b", 40*day, 2*day)  // lost within a week
		add("c", 40*day, 10*day) // lost after a week, within a month
		add("d", 10*day, 0)      // old enough for 7 days only
		add("e", 2*day, 0)       // too recent for either
		db.Exec(`INSERT INTO live_code_stats (corp_id, code_id, userid, day, adds) VALUES ('ww1', 5, 'u', '2026-10-01', 5)`)
		rows, err := s.Stats(context.Background(), StatsFilter{CorpID: "ww1", From: "2026-09-01", To: "2026-11-30", GroupBy: "code"})
		if err != nil || len(rows) != 1 {
			t.Fatalf("%v %v", rows, err)
		}
		// 7 days: a, c, d kept of a, b, c, d. 30 days: a kept of a, b, c.
		if r := rows[0]; r.Retained7d != 0.75 || r.Retained30d < 0.333 || r.Retained30d > 0.334 {
			t.Fatalf("retention 7d %.3f, 30d %.3f", r.Retained7d, r.Retained30d)
		}
	})
}

// Counter changes land in the log and are folded by several instances at
// once; the statistics read the same before, during and after, and no
// change is folded twice or lost.
func TestStats_ConcurrentBumpsAndFoldsKeepExactCounts(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, nil, nil, "http://x", slog.New(slog.NewTextHandler(io.Discard, nil)))
		ctx := context.Background()
		const writers, bumps = 4, 50
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var folders sync.WaitGroup
		for i := 0; i < 2; i++ { // two instances folding all along
			folders.Add(1)
			go func() {
				defer folders.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.FoldStats(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < bumps; i++ {
					err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
						b := statsBatch{}
						b.add("ww1", 5, "u", "2026-11-24", "adds", 1)
						b.add("ww1", 5, fmt.Sprint("v", i%3), "2026-11-24", "visits", 2)
						return s.store.applyStats(ctx, tx, b)
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		folders.Wait()
		read := func() StatsRow {
			rows, err := s.Stats(ctx, StatsFilter{CorpID: "ww1", From: "2026-11-24", To: "2026-11-24", GroupBy: "code"})
			if err != nil || len(rows) != 1 {
				t.Fatalf("%v %v", rows, err)
			}
			return rows[0]
		}
		if r := read(); r.Adds != writers*bumps || r.Visits != 2*writers*bumps {
			t.Fatalf("before the last fold: adds %d visits %d", r.Adds, r.Visits)
		}
		if _, err := s.FoldStats(ctx); err != nil {
			t.Fatal(err)
		}
		var pending int
		db.Get(&pending, "SELECT COUNT(*) FROM live_code_stats_log")
		if r := read(); pending != 0 || r.Adds != writers*bumps || r.Visits != 2*writers*bumps {
			t.Fatalf("after folding: %d pending, adds %d visits %d", pending, r.Adds, r.Visits)
		}
	})
}
