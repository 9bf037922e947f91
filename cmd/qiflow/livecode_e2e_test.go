package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/fake"
)

// syncDirectory imports the fake corp through the API, as an admin would.
func syncDirectory(t *testing.T, s *stack, token string) {
	t.Helper()
	var out struct {
		JobID int64 `json:"job_id"`
	}
	if st := call(t, "POST", s.url+"/api/v1/directory/sync", token, nil, &out); st != http.StatusAccepted {
		t.Fatalf("sync: %d", st)
	}
	waitUntil(t, "the import", func() bool {
		var j jobs.JobRow
		call(t, "GET", fmt.Sprintf("%s/api/v1/jobs/%d", s.url, out.JobID), token, nil, &j)
		return j.Status == jobs.JobDone
	})
}

func firstTagID(s *stack) string {
	var id string
	s.fake.Inspect(e2eCorp, func(c *fake.Corp) { id = c.TagGroups[0].Tags[0].ID })
	return id
}

func TestE2E_ChannelCodeOnboardsANewContact(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)
		tag := firstTagID(s)
		fileID := uploadFile(t, s.url, admin, "image", "poster.png", []byte("\x89PNG poster bytes"))
		body := map[string]any{
			"name": "Spring poster", "channel": "poster-2026-spring", "mode": "wecom_qr",
			"staff": []map[string]any{{"userid": "zhangsan"}, {"userid": "lisi"}, {"userid": "wangwu", "backup": true}},
			"settings": map[string]any{
				"tags":            []string{tag},
				"remark_template": "{customer_name}-春",
				"welcome": map[string]any{"text": "你好 {customer_name}, I am {staff_name}",
					"attachments": []map[string]any{{"msgtype": "image", "file_id": fileID}}},
			},
		}
		var code livecode.Code
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &code); st != http.StatusCreated {
			t.Fatalf("create code: %d", st)
		}
		if code.ConfigID == "" || len(code.WeComUsers) != 2 {
			t.Fatalf("code: %+v", code)
		}
		// A customer scans: WeCom picks one of the way's users and calls back.
		start := time.Now()
		res, err := s.fake.Scan(context.Background(), e2eCorp, code.ConfigID, fake.Customer{Name: "Mei"})
		if err != nil || !res.Callback.OK {
			t.Fatalf("scan: %+v %v", res, err)
		}
		var welcome fake.Message
		waitUntil(t, "the welcome message at the fake", func() bool {
			for _, m := range s.fake.Messages(e2eCorp) {
				if m.Kind == "welcome" && m.ExternalUserID == res.ExternalUserID {
					welcome = m
					return true
				}
			}
			return false
		})
		t.Logf("welcome arrived %s after the scan (the code lives 20 s)", time.Since(start).Round(time.Millisecond))
		if !strings.Contains(welcome.Text, "你好 Mei") || welcome.UserID != res.UserID ||
			len(welcome.Attachments) != 1 || welcome.Attachments[0].Image == nil || welcome.Attachments[0].Image.MediaID == "" {
			t.Fatalf("welcome: %+v", welcome)
		}
		waitUntil(t, "tags, remark and source", func() bool {
			var tagged, remarked bool
			s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
				fu := c.Customers[res.ExternalUserID].Follows[res.UserID]
				tagged = len(fu.Tags) == 1 && fu.Tags[0].TagID == tag
				remarked = fu.Remark == "Mei-春"
			})
			return tagged && remarked && s.count("SELECT COUNT(*) FROM contact_sources WHERE code_id = ?", code.ID) == 1
		})
		// WeCom delivers the same callback three more times: nothing more happens.
		marks := s.fake.Calls(e2eCorp, "externalcontact/mark_tag")
		for i := 0; i < 3; i++ {
			if d, err := s.fake.Post(context.Background(), e2eCorp, res.Plain); err != nil || !d.OK {
				t.Fatalf("replay %d: %+v %v", i, d, err)
			}
		}
		s.settled()
		welcomes := 0
		for _, m := range s.fake.Messages(e2eCorp) {
			if m.Kind == "welcome" {
				welcomes++
			}
		}
		if welcomes != 1 || s.fake.Calls(e2eCorp, "externalcontact/mark_tag") != marks {
			t.Fatalf("replays changed something: %d welcomes, mark_tag %d → %d", welcomes, marks, s.fake.Calls(e2eCorp, "externalcontact/mark_tag"))
		}
		day := time.Now().In(mustLoc("Asia/Shanghai")).Format(time.DateOnly)
		var stats struct {
			Rows []livecode.StatsRow `json:"rows"`
		}
		call(t, "GET", s.url+"/api/v1/stats/codes?group_by=code&from="+day+"&to="+day, admin, nil, &stats)
		if len(stats.Rows) != 1 || stats.Rows[0].Adds != 1 || stats.Rows[0].WelcomeSent != 1 || stats.Rows[0].Key != fmt.Sprint(code.ID) {
			t.Fatalf("stats: %+v", stats.Rows)
		}
		// The ContactAdded domain event is published once.
		if n := s.count("SELECT COUNT(*) FROM bus_events WHERE source = 'domain' AND type = 'ContactAdded'"); n != 1 {
			t.Fatalf("%d ContactAdded events", n)
		}
		// The customer deletes the staff member: a loss against the code.
		if d, err := s.fake.CustomerDeletesStaff(context.Background(), e2eCorp, res.ExternalUserID, res.UserID); err != nil || !d.OK {
			t.Fatal(err)
		}
		waitUntil(t, "the loss in the stats", func() bool {
			call(t, "GET", s.url+"/api/v1/stats/codes?group_by=channel&from="+day+"&to="+day, admin, nil, &stats)
			return len(stats.Rows) == 1 && stats.Rows[0].LostCustomer == 1 && stats.Rows[0].NetAdds == 0 && stats.Rows[0].Key == "poster-2026-spring"
		})
		// CSV export opens in Excel: BOM first.
		req, _ := http.NewRequest("GET", s.url+"/api/v1/stats/codes?format=csv&from="+day+"&to="+day, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		csv, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(csv), "\ufeffcode,visits,adds") {
			t.Fatalf("csv: %q", csv)
		}
	})
}

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func TestE2E_CodeValidationLeavesNothingBehind(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	cases := map[string]map[string]any{
		"staff[1].userid":    {"name": "x", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "zhangsan"}, {"userid": "nobody"}}},
		"staff[0].daily_cap": {"name": "x", "mode": "rotating", "staff": []map[string]any{{"userid": "zhangsan", "daily_cap": -1}}},
		// A misspelt field is refused, not ignored; a wrong type is named by its path.
		"staf":            {"name": "x", "mode": "wecom_qr", "staf": []map[string]any{{"userid": "zhangsan"}}},
		"staff[1].weight": {"name": "x", "mode": "rotating", "staff": []map[string]any{{"userid": "zhangsan"}, {"userid": "lisi", "weight": "heavy"}}},
		"settings.schedule.slots[1]": {"name": "x", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "zhangsan"}},
			"settings": map[string]any{"schedule": map[string]any{"slots": []map[string]any{
				{"days": []string{"mon"}, "start": "09:00", "end": "12:00"}, {"days": []string{"mon"}, "start": "11:00", "end": "13:00"}}}}},
		"settings.welcome.text": {"name": "x", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "zhangsan"}},
			"settings": map[string]any{"welcome": map[string]any{"text": "hi {nickname}"}}},
		"settings.tags": {"name": "x", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "zhangsan"}}, "settings": map[string]any{"tags": []string{"etNOPE"}}},
		"settings.welcome.attachments": {"name": "x", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "zhangsan"}},
			"settings": map[string]any{"welcome": map[string]any{"attachments": make([]map[string]any, 10)}}},
	}
	for field, body := range cases {
		var e struct {
			Error struct {
				Code   string            `json:"code"`
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &e)
		if st != http.StatusUnprocessableEntity || e.Error.Fields[field] == "" {
			t.Errorf("%s: %d %+v", field, st, e.Error)
		}
	}
	// Staff without WeCom's customer-contact permission are named before WeCom refuses them (41054).
	var pe struct {
		Error struct {
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "x", "mode": "wecom_qr",
		"staff": []map[string]any{{"userid": "zhangsan"}, {"userid": "wujiu"}}}, &pe); st != http.StatusUnprocessableEntity ||
		!strings.Contains(pe.Error.Fields["staff[1].userid"], "customer-contact permission") {
		t.Errorf("staff without the permission: %d %+v", st, pe.Error)
	}
	many := make([]map[string]any, 101)
	for i := range many {
		many[i] = map[string]any{"userid": fmt.Sprintf("u%d", i)}
	}
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "x", "mode": "wecom_qr", "staff": many}, nil); st != http.StatusUnprocessableEntity {
		t.Errorf("101 staff: %d", st)
	}
	// WeCom refuses the second way of a rotating code: the first is deleted again.
	ways := func() int {
		n := 0
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) { n = len(c.ContactWays) })
		return n
	}
	before := ways()
	// The first way is held at WeCom while a refusal is set up for the second.
	gate := make(chan struct{})
	s.fake.Inject(fake.Fault{Endpoint: "externalcontact/add_contact_way", Count: 1, Gate: gate})
	body := map[string]any{"name": "two", "mode": "rotating", "staff": []map[string]any{{"userid": "zhangsan"}, {"userid": "lisi"}}}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	status := make(chan int, 1)
	go func() { status <- call(t, "POST", s.url+"/api/v1/codes", admin, body, &e) }()
	waitUntil(t, "the first way at WeCom", func() bool { return s.fake.Held() == 1 })
	s.fake.Inject(fake.Fault{Endpoint: "externalcontact/add_contact_way", Count: 1, ErrCode: 40003})
	close(gate)
	if st := <-status; st != http.StatusBadGateway || e.Error.Code != "wecom_error" {
		t.Fatalf("WeCom refusing a way: %d %+v", st, e)
	}
	if ways() != before {
		t.Fatalf("a failed create left %d contact ways behind", ways()-before)
	}
	if n := s.count("SELECT COUNT(*) FROM live_codes"); n != 0 {
		t.Fatalf("a failed create left %d codes behind", n)
	}
}

func TestE2E_RotatingLinkSharesOneRotationAcrossInstances(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		if driver == "sqlite" {
			t.Skip("three instances behind a load balancer share MariaDB in production; on one SQLite file they only measure its single writer (the MariaDB run of this test covers it)")
		}
		f, base := fake.StartForTest(t, e2eCorp, true)
		spec := fake.SandboxCorp
		cfg := testConfig(t, driver)
		if cfg.Redis.Addr == "" {
			// Three instances need one Redis: share an in-process one.
			m := miniredis.RunT(t)
			cfg.Redis.Addr = m.Addr()
		}
		cfg.WeCom.APIBase = base
		cfg.WeCom.Corps = []configs.CorpConfig{{ID: e2eCorp, Name: "E2E", Secret: spec.Secret, AgentID: spec.AgentID, Token: spec.Token, AESKey: spec.AESKey, TimeZone: "Asia/Shanghai"}}
		var apps []*app
		for i := 0; i < 3; i++ {
			a, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: i > 0})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.shutdown(context.Background()) })
			apps = append(apps, a)
		}
		// WeCom calls back one address: the load balancer in front of the three.
		f.SetCallbackURL(e2eCorp, "http://"+apps[0].addr()+"/wecom/callback/"+e2eCorp)
		waitUntil(t, "the initial import", func() bool {
			var n int
			apps[0].db.Get(&n, "SELECT COUNT(*) FROM staff")
			return n == 7
		})
		ctx := context.Background()
		const capEach = 200
		code, err := apps[1].codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Rotating", Channel: "ads", Mode: livecode.ModeRotating,
			Staff: []livecode.CodeStaff{{UserID: "zhangsan", DailyCap: capEach}, {UserID: "lisi", DailyCap: capEach}, {UserID: "wangwu", DailyCap: capEach},
				{UserID: "zhaoliu", DailyCap: capEach}, {UserID: "zhouba", Backup: true}}})
		if err != nil {
			t.Fatal(err)
		}
		ways := map[string]string{}
		for _, st := range code.Staff {
			ways[st.UserID] = st.ConfigID
		}
		const visits = 1000
		picked := make([]string, visits)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		var errMu sync.Mutex
		var errs []error
		for i := 0; i < visits; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				jar, _ := cookiejar.New(nil)
				client := &http.Client{Jar: jar, Timeout: 20 * time.Second}
				// 1,000 visitors behind the load balancer, each from its own address.
				req, _ := http.NewRequest("GET", "http://"+apps[i%3].addr()+"/l/"+code.Slug, nil)
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.1.%d.%d", i/250, i%250))
				resp, err := client.Do(req)
				if err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				user := resp.Header.Get("X-Qiflow-Staff")
				picked[i] = user
				// The visitor adds the staff member shown.
				if res, err := f.Scan(ctx, e2eCorp, ways[user], fake.Customer{}); err != nil || !res.Callback.OK {
					errMu.Lock()
					errs = append(errs, fmt.Errorf("add via %s: %v %+v", user, err, res.Callback))
					errMu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d visits failed, first: %v", len(errs), errs[0])
		}
		count := map[string]int{}
		for _, u := range picked {
			count[u]++
		}
		if count[""] != 0 {
			t.Fatalf("%d visits got nobody", count[""])
		}
		for _, u := range []string{"zhangsan", "lisi", "wangwu", "zhaoliu"} {
			if count[u] != capEach {
				t.Errorf("%s was shown %d times, want exactly its cap %d", u, count[u], capEach)
			}
		}
		if count["zhouba"] != visits-4*capEach {
			t.Errorf("backup shown %d times, want %d", count["zhouba"], visits-4*capEach)
		}
		waitProgress(t, "every add recorded", visits, func() int {
			var n int
			apps[0].db.Get(&n, "SELECT COUNT(*) FROM contact_sources WHERE code_id = ?", code.ID)
			return n
		})
		var perStaff []struct {
			UserID string `db:"userid"`
			N      int    `db:"n"`
		}
		apps[0].db.Select(&perStaff, "SELECT userid, COUNT(*) AS n FROM contact_sources WHERE code_id = ? GROUP BY userid", code.ID)
		for _, r := range perStaff {
			if r.UserID != "zhouba" && r.N > capEach {
				t.Errorf("%s has %d adds, over its cap %d", r.UserID, r.N, capEach)
			}
		}
	})
}

// A visitor refreshing a rotating link holds one reservation and keeps
// their staff member, so refreshes cannot use up other staff's caps.
func TestE2E_RefreshingARotatingLinkTakesOneCapSlot(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	body := map[string]any{"name": "Poster", "mode": "rotating",
		"staff": []map[string]any{{"userid": "zhangsan", "daily_cap": 1}, {"userid": "lisi", "daily_cap": 1}, {"userid": "wangwu", "backup": true}}}
	var code livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &code); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	visitor := func(ip string) func() string {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar, Timeout: 20 * time.Second}
		return func() string {
			req, _ := http.NewRequest("GET", s.url+"/l/"+code.Slug, nil)
			req.Header.Set("X-Forwarded-For", ip)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("landing: %d", resp.StatusCode)
			}
			return resp.Header.Get("X-Qiflow-Staff")
		}
	}
	first := visitor("10.9.0.1")
	shown := first()
	if shown != "zhangsan" && shown != "lisi" {
		t.Fatalf("first visit shown %q, want a capped staff member", shown)
	}
	for i := 0; i < 10; i++ {
		if again := first(); again != shown {
			t.Fatalf("refresh %d shown %q, want %q again", i+1, again, shown)
		}
	}
	// The other capped staff member is still free for the next visitor.
	other := map[string]string{"zhangsan": "lisi", "lisi": "zhangsan"}[shown]
	if got := visitor("10.9.0.2")(); got != other {
		t.Fatalf("second visitor shown %q, want %q (refreshes took its slot)", got, other)
	}
	// Both slots are reserved now: a third visitor gets the backup.
	if got := visitor("10.9.0.3")(); got != "wangwu" {
		t.Fatalf("third visitor shown %q, want the backup", got)
	}
}

func TestCodes_CapAndScheduleDriveTheWeComQR(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	ctx := context.Background()
	sh := mustLoc("Asia/Shanghai")
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, sh) // a Monday, 10:00
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	s.app.codes.SetClock(clock)
	code, err := s.app.codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Capped", Mode: livecode.ModeWeComQR,
		Staff: []livecode.CodeStaff{{UserID: "zhangsan", DailyCap: 1}, {UserID: "lisi"}, {UserID: "wangwu", Backup: true}},
		Settings: livecode.Settings{Schedule: livecode.Schedule{Slots: []livecode.ScheduleSlot{
			{TimeSlot: livecode.TimeSlot{Start: "09:00", End: "18:00"}, Staff: []string{"zhangsan"}},
			{TimeSlot: livecode.TimeSlot{Start: "09:00", End: "12:00"}, Staff: []string{"lisi"}},
		}}}})
	if err == nil {
		t.Fatal("overlapping slots were accepted")
	}
	code, err = s.app.codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Capped", Mode: livecode.ModeWeComQR,
		Staff: []livecode.CodeStaff{{UserID: "zhangsan", DailyCap: 1}, {UserID: "lisi"}, {UserID: "wangwu", Backup: true}},
		Settings: livecode.Settings{Schedule: livecode.Schedule{Slots: []livecode.ScheduleSlot{
			{TimeSlot: livecode.TimeSlot{Start: "09:00", End: "12:00"}},
			{TimeSlot: livecode.TimeSlot{Start: "12:00", End: "18:00"}, Staff: []string{"zhangsan"}},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	wayUsers := func() string {
		var u []string
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) { u = c.ContactWays[code.ConfigID].User })
		return strings.Join(u, ",")
	}
	updates := func() int { return s.fake.Calls(e2eCorp, "externalcontact/update_contact_way") }
	// reconciled runs every due reconcile (the background reconciler may be
	// running it; then ReconcileAll skips it) and waits for the way to list want.
	reconciled := func(what, want string) {
		t.Helper()
		if err := s.app.codes.ReconcileAll(ctx); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, what, func() bool {
			return wayUsers() == want && s.count("SELECT COUNT(*) FROM live_codes WHERE reconcile_token <> ''") == 0
		})
	}
	reconciled("the way at 10:00", "lisi,zhangsan")
	u0 := updates()
	// Reconciling again with nothing changed calls no update.
	reconciled("an idle reconcile", "lisi,zhangsan")
	reconciled("an idle reconcile", "lisi,zhangsan")
	if updates() != u0 {
		t.Fatalf("reconcile without a change updated the way %d times", updates()-u0)
	}
	// zhangsan gets an add: capped at 1, he leaves the QR.
	add := &wecom.ExternalContactEvent{Header: wecom.Header{ToUserName: e2eCorp, CreateTime: clock().Unix(), Event: wecom.EventExternalContact,
		ChangeType: wecom.ChangeAddExternalContact}, UserID: "zhangsan", ExternalUserID: "wmcapped1", State: fmt.Sprintf("lc%d", code.ID)}
	if err := s.app.codes.RecordContactEvent(ctx, e2eCorp, add); err != nil {
		t.Fatal(err)
	}
	reconciled("zhangsan's cap", "lisi")
	if updates() != u0+1 {
		t.Fatalf("after zhangsan's cap: %d updates", updates()-u0)
	}
	// The same add again counts nothing and changes nothing.
	if err := s.app.codes.RecordContactEvent(ctx, e2eCorp, add); err != nil {
		t.Fatal(err)
	}
	reconciled("a repeated add", "lisi")
	if updates() != u0+1 {
		t.Fatal("a repeated add or an idle reconcile updated the way")
	}
	// 13:00: lisi is off duty and zhangsan capped: the backup takes over.
	set(time.Date(2026, 11, 23, 13, 0, 0, 0, sh))
	reconciled("13:00", "wangwu")
	// Next day 10:00: the daily reset brings zhangsan back.
	set(time.Date(2026, 11, 24, 10, 0, 0, 0, sh))
	reconciled("the daily reset", "lisi,zhangsan")
	if updates() != u0+3 {
		t.Fatalf("%d updates for two changes", updates()-u0-1)
	}
	// Counters are Redis's copy of the database: after a flush (or the
	// embedded Redis's restart) zhangsan is still capped for the day.
	add2 := *add
	add2.ExternalUserID, add2.CreateTime = "wmcapped2", clock().Unix()
	if err := s.app.codes.RecordContactEvent(ctx, e2eCorp, &add2); err != nil {
		t.Fatal(err)
	}
	reconciled("zhangsan capped again", "lisi")
	if err := s.app.kv.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// An edit (any input change) makes the code due; its reconcile rebuilds
	// the lost counts from contact_sources instead of reading them as zero.
	if _, err := s.app.codes.Update(ctx, e2eCorp, code.ID, livecode.Code{Name: "Capped (renamed)", Staff: code.Staff, Settings: code.Settings, Version: code.Version}); err != nil {
		t.Fatal(err)
	}
	reconciled("after a Redis flush and an edit", "lisi")
	// Paused: the way points at the backup.
	if _, err := s.app.codes.SetStatus(ctx, e2eCorp, code.ID, livecode.StatusPaused); err != nil {
		t.Fatal(err)
	}
	reconciled("paused", "wangwu")
}

// uploadFile stores a file through the media API and returns its id.
func uploadFile(t *testing.T, base, token, kind, name string, data []byte) int64 {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("kind", kind)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/api/v1/media", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID int64 `json:"id"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated || out.ID == 0 {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	return out.ID
}

func TestE2E_GroupCodeSwitchesWhenAGroupFills(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		ctx := context.Background()
		g1, _, _ := s.fake.CreateGroup(ctx, e2eCorp, "zhangsan", "VIP 1")
		g2, _, _ := s.fake.CreateGroup(ctx, e2eCorp, "zhangsan", "VIP 2")
		body := map[string]any{"name": "VIP groups", "mode": "join_way", "settings": map[string]any{
			"groups":        []map[string]any{{"chat_id": g1, "threshold": 2}, {"chat_id": g2, "threshold": 2}},
			"group_welcome": map[string]any{"text": "欢迎入群 Welcome to VIP"}}}
		var code livecode.Code
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &code); st != http.StatusCreated {
			t.Fatalf("create group code: %d", st)
		}
		chats := func() string {
			var ids []string
			s.fake.Inspect(e2eCorp, func(c *fake.Corp) { ids = c.JoinWays[code.ConfigID].ChatIDList })
			return strings.Join(ids, ",")
		}
		if code.Kind != livecode.KindGroup || chats() != g1+","+g2 {
			t.Fatalf("new group code %+v lists %s", code, chats())
		}
		// The landing page shows the join way's QR.
		resp, err := http.Get(s.url + "/g/" + code.Slug)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), code.QRCode) {
			t.Fatal("landing page without the join way's QR")
		}
		// One customer joins: VIP 1 reaches its threshold (owner + 1) and leaves the way.
		res, err := s.fake.JoinGroup(ctx, e2eCorp, code.ConfigID, fake.Customer{Name: "Joiner"})
		if err != nil || !res.Callback.OK || res.ChatID != g1 {
			t.Fatalf("join: %+v %v", res, err)
		}
		waitUntil(t, "the way to switch to VIP 2", func() bool { return chats() == g2 })
		day := time.Now().In(mustLoc("Asia/Shanghai")).Format(time.DateOnly)
		var stats struct {
			Rows []livecode.StatsRow `json:"rows"`
		}
		defer func() {
			if t.Failed() {
				var rows []map[string]any
				r, _ := s.app.db.Queryx("SELECT * FROM live_code_stats")
				for r.Next() {
					m := map[string]any{}
					r.MapScan(m)
					rows = append(rows, m)
				}
				t.Logf("stats rows: %v; api: %+v", rows, stats.Rows)
			}
		}()
		waitUntil(t, "the join counted", func() bool {
			call(t, "GET", fmt.Sprintf("%s/api/v1/stats/codes?group_by=staff&code_id=%d&from=%s&to=%s", s.url, code.ID, day, day), admin, nil, &stats)
			for _, r := range stats.Rows {
				if r.Key == g1 && r.Adds == 1 {
					return true
				}
			}
			return false
		})
		// The next joiner lands in VIP 2, which then fills too: nothing is left, the way stays.
		if res, err := s.fake.JoinGroup(ctx, e2eCorp, code.ConfigID, fake.Customer{}); err != nil || res.ChatID != g2 {
			t.Fatalf("second join: %+v %v", res, err)
		}
		s.quiet()
		if chats() != g2 {
			t.Fatalf("with every group full the way lists %s", chats())
		}
		// The group welcome is a WeCom template, kept while the code lives.
		templates := func() []string {
			var out []string
			s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
				for _, v := range c.GroupWelcome {
					out = append(out, v)
				}
			})
			return out
		}
		if tm := templates(); len(tm) != 1 || tm[0] != "欢迎入群 Welcome to VIP" {
			t.Fatalf("group welcome templates: %v", tm)
		}
		// A channel code's welcome can invite to the group code.
		syncDirectory(t, s, admin)
		var inviting livecode.Code
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Inviting", "mode": "wecom_qr",
			"staff": []map[string]any{{"userid": "lisi"}}, "settings": map[string]any{"welcome": map[string]any{"text": "hi", "invite_group_code": code.ID}}}, &inviting); st != http.StatusCreated {
			t.Fatalf("inviting code: %d", st)
		}
		scan, err := s.fake.Scan(ctx, e2eCorp, inviting.ConfigID, fake.Customer{})
		if err != nil || !scan.Callback.OK {
			t.Fatal(err)
		}
		waitUntil(t, "the welcome with the group invitation", func() bool {
			for _, m := range s.fake.Messages(e2eCorp) {
				if m.ExternalUserID == scan.ExternalUserID && len(m.Attachments) == 1 && m.Attachments[0].Link != nil &&
					strings.HasSuffix(m.Attachments[0].Link.URL, "/g/"+code.Slug) {
					return true
				}
			}
			return false
		})
		// Archiving removes the join way and the template from WeCom.
		if st := call(t, "POST", fmt.Sprintf("%s/api/v1/codes/%d/archive", s.url, code.ID), admin, nil, nil); st != http.StatusOK {
			t.Fatalf("archive: %d", st)
		}
		gone := false
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) { gone = c.JoinWays[code.ConfigID] == nil })
		if !gone || len(templates()) != 0 {
			t.Fatal("archiving left the join way or the template on WeCom")
		}
	})
}

func TestE2E_AcquisitionLinkCarriesTheCodeAndFollowsCaps(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	body := map[string]any{"name": "SMS campaign", "channel": "sms-nov", "mode": "acquisition_link",
		"staff":    []map[string]any{{"userid": "zhangsan", "daily_cap": 1}, {"userid": "lisi", "daily_cap": 1}, {"userid": "wangwu", "backup": true}},
		"settings": map[string]any{"welcome": map[string]any{"text": "Thanks for coming from SMS"}}}
	var code livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &code); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if !strings.Contains(code.QRCode, fmt.Sprintf("customer_channel=lc%d", code.ID)) {
		t.Fatalf("link %q does not carry the code", code.QRCode)
	}
	// The landing page sends ads traffic on to WeCom's link.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(s.url + "/l/" + code.Slug)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != code.QRCode {
		t.Fatalf("landing: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	linkUsers := func() string {
		var u []string
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) { u = append(u, c.Links[code.ConfigID].Users...) })
		return strings.Join(u, ",")
	}
	for i := 0; i < 2; i++ {
		res, err := s.fake.ClickLink(context.Background(), e2eCorp, code.ConfigID, fmt.Sprintf("lc%d", code.ID), fake.Customer{})
		if err != nil || !res.Callback.OK {
			t.Fatalf("click: %+v %v", res, err)
		}
		waitUntil(t, "the add recorded", func() bool {
			return s.count("SELECT COUNT(*) FROM contact_sources WHERE code_id = ? AND external_userid = ?", code.ID, res.ExternalUserID) == 1
		})
		// The capped staff member leaves the link before the next customer clicks.
		waitUntil(t, res.UserID+" to leave the link", func() bool { return !strings.Contains(linkUsers(), res.UserID) })
	}
	// Both staff reached their cap of one: the link now hands customers to the backup.
	waitUntil(t, "the link to point at the backup", func() bool { return linkUsers() == "wangwu" })
}

func TestE2E_StaffWhoLeaveAreRemovedAndTheirCustomersHandedOver(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	ctx := context.Background()
	// The code's owner is the admin, who is staff member lisi in WeCom: reports reach them.
	users, _ := s.app.auth.ListUsers(ctx, e2eCorp)
	s.app.db.Exec(`UPDATE user_corps SET staff_userid = 'lisi' WHERE user_id = ?`, users[0].ID)
	code, err := s.app.codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Leavers", Mode: livecode.ModeRotating, OwnerUserID: users[0].ID,
		Staff: []livecode.CodeStaff{{UserID: "zhangsan"}, {UserID: "lisi"}}, Settings: livecode.Settings{Successor: "wangwu"}})
	if err != nil {
		t.Fatal(err)
	}
	// zhangsan has a customer and owns a group.
	res, err := s.fake.Add(ctx, e2eCorp, "zhangsan", fake.Customer{Name: "Loyal"}, 1)
	if err != nil || !res.Callback.OK {
		t.Fatal(err)
	}
	chat, _, _ := s.fake.CreateGroup(ctx, e2eCorp, "zhangsan", "zhangsan's group")
	waitUntil(t, "the follow and the group mirrored", func() bool {
		return s.count("SELECT COUNT(*) FROM follow_relations WHERE userid = 'zhangsan' AND external_userid = ?", res.ExternalUserID) == 1 &&
			s.count("SELECT COUNT(*) FROM group_chats WHERE chat_id = ?", chat) == 1
	})
	// zhangsan leaves; a partial view of it changes nothing, a complete sync
	// marks him gone. His demo-world customer will refuse the hand-over.
	var refuser string
	s.fake.Mutate(e2eCorp, func(c *fake.Corp) {
		delete(c.Staff, "zhangsan")
		for ext, cu := range c.Customers {
			if cu.Follows["zhangsan"] != nil && ext != res.ExternalUserID {
				refuser = ext
				c.RefuseTransfer = map[string]bool{ext: true}
			}
		}
	})
	if err := s.app.codes.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.app.codes.Get(ctx, e2eCorp, code.ID); len(c.Staff) != 2 {
		t.Fatal("staff removed before a complete sync said they left")
	}
	syncDirectory(t, s, admin)
	if err := s.app.codes.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	c, _ := s.app.codes.Get(ctx, e2eCorp, code.ID)
	if len(c.Staff) != 1 || c.Staff[0].UserID != "lisi" || c.Status != livecode.StatusActive {
		t.Fatalf("code after zhangsan left: %+v", c)
	}
	var transfers []fake.Transfer
	var owner string
	s.fake.Inspect(e2eCorp, func(fc *fake.Corp) { transfers, owner = fc.Transfers, fc.Groups[chat].Chat.Owner })
	// zhangsan's customers: the one added here and one from the demo world.
	handed := map[string]bool{}
	for _, tr := range transfers {
		handed[tr.ExternalUserID] = tr.From == "zhangsan" && tr.To == "wangwu"
	}
	if len(transfers) != 2 || !handed[res.ExternalUserID] || owner != "wangwu" {
		t.Fatalf("handover: %+v, group owner %s", transfers, owner)
	}
	// Each hand-over's outcome is recorded; the refusal is reported to the code's owner.
	outcome := func(item string) string {
		var st string
		s.app.db.Get(&st, "SELECT status FROM livecode_transfers WHERE item = ?", item)
		return st
	}
	if outcome(res.ExternalUserID) != "done" || outcome(refuser) != "refused" || outcome(chat) != "done" {
		t.Fatalf("outcomes: %s %s %s", outcome(res.ExternalUserID), outcome(refuser), outcome(chat))
	}
	reports := 0
	for _, m := range s.fake.Messages(e2eCorp) {
		if m.Kind == "app" && m.UserID == "lisi" && strings.Contains(m.Text, "refused") {
			reports++
		}
	}
	if reports != 1 {
		t.Fatalf("%d reports of the refused hand-over to the owner", reports)
	}
	// Another pass hands nothing over twice.
	s.app.codes.ReconcileAll(ctx)
	s.fake.Inspect(e2eCorp, func(fc *fake.Corp) { transfers = fc.Transfers })
	if len(transfers) != 2 {
		t.Fatalf("%d transfers after a second pass", len(transfers))
	}
	// A code without a successor falls back to the leaver's department's successor.
	s.app.codes.DepartmentSuccessors = map[string]map[int64]string{e2eCorp: {4: "sunqi"}}
	if _, err := s.app.codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Store staff", Mode: livecode.ModeWeComQR,
		Staff: []livecode.CodeStaff{{UserID: "zhouba"}, {UserID: "sunqi"}}}); err != nil {
		t.Fatal(err)
	}
	res2, _ := s.fake.Add(ctx, e2eCorp, "zhouba", fake.Customer{Name: "Store regular"}, 1)
	waitUntil(t, "zhouba's customer mirrored", func() bool {
		return s.count("SELECT COUNT(*) FROM follow_relations WHERE userid = 'zhouba' AND external_userid = ?", res2.ExternalUserID) == 1
	})
	s.fake.Mutate(e2eCorp, func(c *fake.Corp) { delete(c.Staff, "zhouba") })
	syncDirectory(t, s, admin)
	if err := s.app.codes.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	s.fake.Inspect(e2eCorp, func(fc *fake.Corp) { transfers = fc.Transfers })
	if last := transfers[len(transfers)-1]; last.From != "zhouba" || last.To != "sunqi" {
		t.Fatalf("department successor not used: %+v", transfers)
	}
}

// A leaver with more groups than WeCom lets one new owner take in a day
// (300): the rest wait for the next day's quota, and nothing is refused.
func TestE2E_GroupsOverADaysQuotaAreHandedOverTheNextDay(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s.app.codes.SetClock(clock)
	s.fake.SetClock(clock)
	names := make([]string, 350)
	for i := range names {
		names[i] = fmt.Sprint("zhangsan's group ", i)
	}
	chats := s.fake.SeedGroups(e2eCorp, "zhangsan", names...)
	syncDirectory(t, s, admin)
	if _, err := s.app.codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Leavers", Mode: livecode.ModeRotating,
		Staff: []livecode.CodeStaff{{UserID: "zhangsan"}, {UserID: "lisi"}}, Settings: livecode.Settings{Successor: "wangwu"}}); err != nil {
		t.Fatal(err)
	}
	s.fake.Mutate(e2eCorp, func(c *fake.Corp) { delete(c.Staff, "zhangsan") })
	syncDirectory(t, s, admin)
	if err := s.app.codes.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	ownedBy := func(user string) int {
		n := 0
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
			for _, id := range chats {
				if c.Groups[id].Chat.Owner == user {
					n++
				}
			}
		})
		return n
	}
	status := func(st string) int {
		return s.count("SELECT COUNT(*) FROM livecode_transfers WHERE kind = 'group' AND status = ?", st)
	}
	if ownedBy("wangwu") != 300 || status("done") != 300 || status("queued") != 50 || status("failed") != 0 {
		t.Fatalf("first day: wangwu owns %d, done %d, queued %d, failed %d", ownedBy("wangwu"), status("done"), status("queued"), status("failed"))
	}
	// The same day, the cron sends nothing more.
	if err := s.app.codes.CheckHandovers(ctx); err != nil {
		t.Fatal(err)
	}
	if ownedBy("wangwu") != 300 || status("queued") != 50 {
		t.Fatalf("same day: wangwu owns %d, queued %d", ownedBy("wangwu"), status("queued"))
	}
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	if err := s.app.codes.CheckHandovers(ctx); err != nil {
		t.Fatal(err)
	}
	if ownedBy("wangwu") != 350 || status("done") != 350 || status("queued") != 0 || status("failed") != 0 {
		t.Fatalf("next day: wangwu owns %d, done %d, queued %d, failed %d", ownedBy("wangwu"), status("done"), status("queued"), status("failed"))
	}
}

func TestE2E_ManualGroupsRotateByCapAndExpiry(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	ctx := context.Background()
	// The admin is staff member lisi in WeCom, so alerts reach them.
	users, _ := s.app.auth.ListUsers(ctx, e2eCorp)
	s.app.db.Exec(`UPDATE user_corps SET staff_userid = 'lisi' WHERE user_id = ?`, users[0].ID)
	img1 := uploadFile(t, s.url, admin, "image", "group1.png", []byte("\x89PNG group one QR"))
	img2 := uploadFile(t, s.url, admin, "image", "group2.png", []byte("\x89PNG group two QR"))
	now := time.Now()
	body := map[string]any{"name": "Offline groups", "mode": "join_way", "settings": map[string]any{"manual_groups": []map[string]any{
		{"name": "Group one", "file_id": img1, "cap": 2, "expires_at": now.Add(12 * time.Hour)},
		{"name": "Group two", "file_id": img2, "expires_at": now.Add(6 * 24 * time.Hour)},
	}}}
	var code livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &code); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	shown := func() string {
		resp, err := http.Get(s.url + "/g/" + code.Slug) // no cookie: a new visitor each time
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case strings.Contains(string(page), fmt.Sprintf("/manual/%d", img1)):
			return "one"
		case strings.Contains(string(page), fmt.Sprintf("/manual/%d", img2)):
			return "two"
		}
		return "none"
	}
	got := []string{shown(), shown(), shown()}
	if strings.Join(got, ",") != "one,one,two" {
		t.Fatalf("visitors saw %v, want group one until its cap of 2, then group two", got)
	}
	resp, err := http.Get(fmt.Sprintf("%s/g/%s/manual/%d", s.url, code.Slug, img2))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(img) != "\x89PNG group two QR" {
		t.Fatalf("manual image: %q", img)
	}
	// Group one expires within a day: the owner is reminded once.
	s.app.codes.ReconcileAll(ctx)
	s.app.codes.ReconcileAll(ctx)
	reminders := 0
	for _, m := range s.fake.Messages(e2eCorp) {
		if m.Kind == "app" && m.UserID == "lisi" && strings.Contains(m.Text, "Group one") {
			reminders++
		}
	}
	if reminders != 1 {
		t.Fatalf("%d expiry reminders, want 1", reminders)
	}
}

func TestCodes_RotatingWaysFollowTheSkipVerifyWindow(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	ctx := context.Background()
	sh := mustLoc("Asia/Shanghai")
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, sh)
	s.app.codes.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	code, err := s.app.codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Window", Mode: livecode.ModeRotating,
		Staff:    []livecode.CodeStaff{{UserID: "zhangsan"}, {UserID: "lisi"}},
		Settings: livecode.Settings{SkipVerify: "window", SkipVerifyWindow: &livecode.TimeSlot{Start: "09:00", End: "12:00"}}})
	if err != nil {
		t.Fatal(err)
	}
	updates := func() int { return s.fake.Calls(e2eCorp, "externalcontact/update_contact_way") }
	skips := func() (n int) {
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
			for _, st := range code.Staff {
				if w := c.ContactWays[st.ConfigID]; w.SkipVerify != nil && *w.SkipVerify {
					n++
				}
			}
		})
		return n
	}
	s.app.codes.ReconcileAll(ctx)
	if updates() != 0 || skips() != 2 {
		t.Fatalf("inside the window: %d updates, %d ways skip verification", updates(), skips())
	}
	mu.Lock()
	now = now.Add(3 * time.Hour)
	mu.Unlock()
	s.app.codes.ReconcileAll(ctx)
	s.app.codes.ReconcileAll(ctx)
	if updates() != 2 || skips() != 0 {
		t.Fatalf("after the window: %d updates, %d ways skip verification", updates(), skips())
	}
}

func TestE2E_HalfAddThenFullAddGreetsAndCountsOnce(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	ctx := context.Background()
	code, err := s.app.codes.Create(ctx, livecode.Code{CorpID: e2eCorp, Name: "Half", Mode: livecode.ModeRotating,
		Staff: []livecode.CodeStaff{{UserID: "zhangsan"}}, Settings: livecode.Settings{Welcome: livecode.Welcome{Text: "Hello once"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The customer scans the rotating link's QR and WeCom reports the add
	// twice: as a full add and as a half add with another welcome code
	// (WeCom's order varies; both arrive within the code's 20 s).
	// The scan changes WeCom's world; its callbacks are posted below, together.
	s.fake.SetCallbackURL(e2eCorp, "")
	res, err := s.fake.Scan(ctx, e2eCorp, code.Staff[0].ConfigID, fake.Customer{Name: "Half"})
	s.fake.SetCallbackURL(e2eCorp, s.url+"/wecom/callback/"+e2eCorp)
	if err != nil {
		t.Fatal(err)
	}
	half := strings.Replace(string(res.Plain), "add_external_contact", "add_half_external_contact", 1)
	half = strings.Replace(half, res.WelcomeCode, res.WelcomeCode+"b", 1)
	s.fake.Mutate(e2eCorp, func(c *fake.Corp) {
		w := *c.Welcome[res.WelcomeCode]
		w.Used = false
		c.Welcome[res.WelcomeCode+"b"] = &w
	})
	// Force the interleaving: the first welcome is held in flight at WeCom
	// while the second add is stored and waiting. Whichever runs second must
	// see the first's decision (the bus hands one contact's events to the
	// welcome subscriber one at a time), not greet again.
	gate := make(chan struct{})
	s.fake.Inject(fake.Fault{Endpoint: "externalcontact/send_welcome_msg", Count: 1, Gate: gate})
	var wg sync.WaitGroup
	for _, x := range [][]byte{res.Plain, []byte(half)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, err := s.fake.Post(ctx, e2eCorp, x); err != nil || !d.OK {
				t.Errorf("post: %+v %v", d, err)
			}
		}()
	}
	wg.Wait()
	waitUntil(t, "a welcome in flight while both adds are stored", func() bool {
		return s.fake.Held() == 1 && s.count("SELECT COUNT(*) FROM bus_deliveries WHERE subscriber = 'livecode.welcome'") == 2
	})
	close(gate)
	s.settled()
	if n := s.count("SELECT COUNT(*) FROM bus_deliveries WHERE subscriber IN ('livecode.welcome', 'livecode.sources') AND status = 'done'"); n != 4 {
		t.Fatalf("%d of 4 add deliveries done", n)
	}
	welcomes := 0
	for _, m := range s.fake.Messages(e2eCorp) {
		if m.Kind == "welcome" && m.ExternalUserID == res.ExternalUserID {
			welcomes++
		}
	}
	if welcomes != 1 {
		t.Fatalf("%d welcomes for one customer", welcomes)
	}
	if n := s.count("SELECT COUNT(*) FROM contact_sources WHERE external_userid = ?", res.ExternalUserID); n != 1 {
		t.Fatalf("%d source rows for one add", n)
	}
}
