package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom/fake"
)

// The lead pool end to end, through the real HTTP server and the fake
// WeCom, on a controllable clock and a calendar with a holiday: a customer
// scans a channel code (a lead with its source), a mini-program's backend
// adds their mobile, they fill a form and attend a webinar (engagement) and
// become an MQL, auto-assigned to an SDR; the SLA's half-time reminder and
// its breach reach the SDR and their manager in WeCom; the SDR qualifies
// the lead with BANT, the sales rep's app message arrives and the rep
// accepts. A second lead is rejected back to its SDR; a third returns to
// the pool after two working days without a follow-up (the holiday does
// not count), after the ladder warned the manager.
func TestE2E_LeadFunnelFromScanToSales(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		sh, _ := time.LoadLocation("Asia/Shanghai")
		// Next Monday 10:00 in Shanghai, and its Tuesday a holiday.
		monday := time.Now().In(sh)
		monday = time.Date(monday.Year(), monday.Month(), monday.Day(), 10, 0, 0, 0, sh)
		for {
			monday = monday.AddDate(0, 0, 1)
			if monday.Weekday() == time.Monday {
				break
			}
		}
		day := func(n int, hhmm string) time.Time {
			t, _ := time.ParseInLocation("2006-01-02 15:04", monday.AddDate(0, 0, n).Format("2006-01-02")+" "+hhmm, sh)
			return t
		}
		s := startStackWith(t, driver, func(c *configs.CorpConfig) {
			c.Calendar.Holidays = []string{monday.AddDate(0, 0, 1).Format("2006-01-02")}
		})
		ctx := context.Background()
		var mu sync.Mutex
		now := monday
		s.app.leads.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		setNow := func(v time.Time) { mu.Lock(); now = v; mu.Unlock() }
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)

		users := map[string]int64{}
		tokens := map[string]string{}
		for _, u := range []struct {
			email, staff string
			role         auth.Role
		}{{"sdr@example.com", "lisi", auth.RoleSDR}, {"lead@example.com", "zhangsan", auth.RoleSDR}, {"rep@example.com", "wangwu", auth.RoleSales}} {
			nu, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: u.email, Password: "password 1234", CorpID: e2eCorp, Role: u.role, StaffUserID: u.staff})
			if err != nil {
				t.Fatal(err)
			}
			users[u.email], tokens[u.email] = nu.ID, login(t, s.url, u.email, "password 1234")
		}
		team, err := s.app.auth.CreateTeam(ctx, e2eCorp, "SDR team", users["lead@example.com"])
		if err != nil {
			t.Fatal(err)
		}
		if err := s.app.auth.AddTeamMember(ctx, e2eCorp, team.ID, users["sdr@example.com"]); err != nil {
			t.Fatal(err)
		}
		sdr, rep := tokens["sdr@example.com"], tokens["rep@example.com"]
		mustCall := func(method, path, token string, body any, want int, out any) {
			t.Helper()
			if st := call(t, method, s.url+"/api/v1"+path, token, body, out); st != want {
				t.Fatalf("%s %s: %d, want %d", method, path, st, want)
			}
		}
		// The admin sets up scoring, assignment, handoff, the SLA, the pool's ladder and a form.
		mustCall("PUT", "/scoring/settings", admin, map[string]any{"mql_threshold": 50}, 200, nil)
		mustCall("POST", "/scoring/rules", admin, map[string]any{"name": "form", "activity_type": "form.submitted", "points": 40}, 201, nil)
		mustCall("POST", "/scoring/rules", admin, map[string]any{"name": "webinar", "activity_type": "webinar", "points": 40, "repeatable": true}, 201, nil)
		mustCall("POST", "/assignment/rules", admin, map[string]any{"name": "all MQLs", "users": []int64{users["sdr@example.com"]}}, 201, nil)
		mustCall("POST", "/assignment/rules", admin, map[string]any{"kind": "handoff", "name": "all SQLs", "users": []int64{users["rep@example.com"]}}, 201, nil)
		mustCall("POST", "/sla/rules", admin, map[string]any{"name": "first touch", "hours": 4}, 201, nil)
		var pools struct {
			Pools []leads.Pool `json:"pools"`
		}
		mustCall("GET", "/pools", admin, nil, 200, &pools)
		mustCall("PUT", "/pools/"+itoa(pools.Pools[0].ID), admin, map[string]any{"recycle_days": 2,
			"escalations": []map[string]any{{"after_days": 1, "notify": "manager"}}}, 200, nil)
		mustCall("POST", "/forms", admin, map[string]any{"slug": "spring", "title": "Spring webinar", "fields": []map[string]any{
			{"name": "name", "label": "姓名", "type": "text", "maps_to": "name"},
			{"name": "phone", "label": "手机", "type": "tel", "required": true, "maps_to": "mobile"}}}, 201, nil)

		// 1. A customer scans the expo code.
		var code livecode.Code
		mustCall("POST", "/codes", admin, map[string]any{"name": "Expo", "channel": "expo-2026", "mode": "wecom_qr",
			"staff": []map[string]any{{"userid": "zhangsan"}}}, 201, &code)
		scan, err := s.fake.Scan(ctx, e2eCorp, code.ConfigID, fake.Customer{Name: "韩梅梅", UnionID: "o6_hmm"})
		if err != nil || !scan.Callback.OK {
			t.Fatalf("scan: %+v %v", scan, err)
		}
		var a leads.Lead
		waitUntil(t, "the scanned customer's lead, with the unionid", func() bool {
			var list struct {
				Leads []leads.Lead `json:"leads"`
			}
			call(t, "GET", s.url+"/api/v1/leads?limit=200", admin, nil, &list)
			for _, l := range list.Leads {
				if l.CodeID == code.ID {
					a = l
				}
			}
			return a.ID != 0 && s.count("SELECT COUNT(*) FROM person_identities WHERE kind = 'unionid' AND value = 'o6_hmm'") == 1
		})
		if a.Source != leads.SourceCode || a.Channel != "expo-2026" {
			t.Fatalf("lead A: %+v", a)
		}
		// 2. The mini-program's backend knows her unionid and mobile: the same person.
		var up leads.UpsertResult
		mustCall("POST", "/leads", admin, map[string]any{"unionid": "o6_hmm", "mobile": "13912345679"}, 200, &up)
		if up.Lead.ID != a.ID {
			t.Fatalf("the upsert found lead %d, want %d", up.Lead.ID, a.ID)
		}
		// 3. She fills the form (reached from the code's page) and attends the webinar: an MQL, assigned.
		resp, err := http.PostForm(s.url+"/f/spring", url.Values{"name": {"韩梅梅"}, "phone": {"139 1234 5679"}, "code_id": {itoa(code.ID)}, "nonce": {"n1"}})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("form: %v %v", resp, err)
		}
		resp.Body.Close()
		mustCall("POST", "/activities", admin, map[string]any{"activities": []map[string]any{
			{"external_userid": scan.ExternalUserID, "type": "webinar", "at": time.Now().UTC().Format(time.RFC3339), "key": "webinar-a"}}}, 200, nil)
		var got struct {
			Lead    leads.Lead           `json:"lead"`
			History []leads.HistoryEntry `json:"history"`
		}
		mustCall("GET", "/leads/"+itoa(a.ID), admin, nil, 200, &got)
		if got.Lead.Stage != leads.StageMQL || got.Lead.OwnerUserID != users["sdr@example.com"] {
			t.Fatalf("lead A after engaging: %+v", got.Lead)
		}
		// 4. The SLA: half time at 12:00 reminds the SDR; the breach at 14:00 tells their manager too.
		sent := func(staff, substr string) bool {
			for _, m := range s.fake.Messages(e2eCorp) {
				if m.Kind == "app" && m.UserID == staff && strings.Contains(m.Text, substr) {
					return true
				}
			}
			return false
		}
		flush := func(at time.Time) {
			t.Helper()
			setNow(at)
			if _, err := s.app.leads.CheckSLAs(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.app.leads.Escalate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.app.leads.SendNotices(ctx); err != nil {
				t.Fatal(err)
			}
		}
		flush(day(0, "11:59"))
		if sent("lisi", "SLA 过半") {
			t.Fatal("reminded before half time")
		}
		flush(day(0, "12:00"))
		if !sent("lisi", "SLA 过半") || sent("zhangsan", "SLA 已超时") {
			t.Fatal("the half-time reminder did not reach the SDR (or the manager heard early)")
		}
		flush(day(0, "14:00"))
		if !sent("lisi", "SLA 已超时") || !sent("zhangsan", "SLA 已超时") {
			t.Fatal("the breach did not reach the SDR and their manager")
		}
		// 5. The SDR calls, then qualifies with BANT; the rep is told in WeCom and accepts.
		mustCall("POST", "/leads/"+itoa(a.ID)+"/touches", sdr, map[string]any{"kind": "call", "text": "demo booked"}, 200, nil)
		var h leads.Handoff
		mustCall("POST", "/leads/"+itoa(a.ID)+"/qualify", sdr, map[string]any{"budget": "200k", "authority": "CTO", "need": "SCRM", "timeline": "Q2",
			"note": "demo booked for Thursday"}, 201, &h)
		flush(day(0, "14:30"))
		if !sent("wangwu", "/leads/"+itoa(a.ID)) {
			t.Fatal("the rep's app message did not arrive")
		}
		mustCall("POST", "/handoffs/"+itoa(h.ID)+"/accept", rep, nil, 200, nil)
		mustCall("GET", "/leads/"+itoa(a.ID), rep, nil, 200, &got)
		if got.Lead.OwnerUserID != users["rep@example.com"] || got.Lead.Stage != leads.StageSQL || got.Lead.Budget != "200k" {
			t.Fatalf("accepted lead: %+v", got.Lead)
		}

		// A second lead: qualified, then rejected back to its SDR.
		var b, c leads.UpsertResult
		mustCall("POST", "/leads", admin, map[string]any{"name": "李雷", "mobile": "13912345680"}, 201, &b)
		mustCall("POST", "/leads", admin, map[string]any{"name": "王芳", "mobile": "13912345681"}, 201, &c)
		for _, p := range []leads.UpsertResult{b, c} {
			mustCall("POST", "/activities", admin, map[string]any{"activities": []map[string]any{
				{"person_id": p.Person.ID, "type": "webinar", "at": time.Now().UTC().Format(time.RFC3339)},
				{"person_id": p.Person.ID, "type": "webinar", "at": time.Now().UTC().Format(time.RFC3339)}}}, 200, nil)
		}
		mustCall("POST", "/leads/"+itoa(b.Lead.ID)+"/qualify", sdr, map[string]any{"budget": "10k", "authority": "staff", "need": "CRM", "timeline": "2027"}, 201, &h)
		mustCall("POST", "/handoffs/"+itoa(h.ID)+"/reject", rep, map[string]any{"reason": "no budget this year"}, 200, nil)
		mustCall("GET", "/leads/"+itoa(b.Lead.ID), sdr, nil, 200, &got)
		if got.Lead.OwnerUserID != users["sdr@example.com"] || got.Lead.Stage != leads.StageSAL {
			t.Fatalf("rejected lead: %+v", got.Lead)
		}
		// A third lead, assigned Monday 14:30 and never followed up: the ladder warns the
		// manager after a working day (Wednesday: Tuesday is a holiday), and it returns
		// to the pool after two (the end of Thursday).
		mustCall("GET", "/leads/"+itoa(c.Lead.ID), admin, nil, 200, &got)
		if got.Lead.OwnerUserID != users["sdr@example.com"] {
			t.Fatalf("third lead: %+v", got.Lead)
		}
		flush(day(2, "23:59"))
		if sent("zhangsan", "#"+itoa(c.Lead.ID)+" 已 1 个工作日未跟进") {
			t.Fatal("the ladder counted the holiday")
		}
		flush(day(3, "00:00"))
		if !sent("zhangsan", "#"+itoa(c.Lead.ID)+" 已 1 个工作日未跟进") {
			t.Fatal("the ladder's step did not reach the manager")
		}
		setNow(day(3, "23:59"))
		if _, err := s.app.leads.Recycle(ctx); err != nil {
			t.Fatal(err)
		}
		mustCall("GET", "/leads/"+itoa(c.Lead.ID), admin, nil, 200, &got)
		if got.Lead.OwnerUserID == 0 {
			t.Fatal("recycled before two working days")
		}
		setNow(day(4, "00:00"))
		if _, err := s.app.leads.Recycle(ctx); err != nil {
			t.Fatal(err)
		}
		mustCall("GET", "/leads/"+itoa(c.Lead.ID), admin, nil, 200, &got)
		if got.Lead.OwnerUserID != 0 {
			t.Fatalf("not recycled after two working days: %+v", got.Lead)
		}
		var report struct {
			Users []leads.SLARow `json:"users"`
			Teams []struct {
				Team     string `json:"team"`
				Breached int    `json:"breached"`
			} `json:"teams"`
		}
		mustCall("GET", "/sla/report?from="+monday.Format("2006-01-02")+"&to="+day(4, "00:00").Format("2006-01-02"), admin, nil, 200, &report)
		breached := 0
		for _, u := range report.Users {
			if u.UserID == users["sdr@example.com"] {
				breached = u.Breached
			}
		}
		if breached < 1 || len(report.Teams) != 1 || report.Teams[0].Team != "SDR team" || report.Teams[0].Breached != breached {
			t.Fatalf("SLA report %+v", report)
		}
	})
}
