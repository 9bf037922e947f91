package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/journeys"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom/fake"
)

// A welcome series end to end, through the real HTTP server and the fake
// WeCom, on a controllable clock and a calendar with a holiday: a customer
// scans a channel code (which tags them) and enters the journey by its
// ContactAdded; the journey waits for the next workday at 10:00 (Tuesday
// is a holiday: Wednesday), checks the tag, splits A/B, queues a customer
// message that the staff member confirms at the fake; the message received
// wakes the run, an engagement activity makes the lead an MQL, and the run
// reaches the goal. A second person, messaged by another journey that
// morning, hits the daily cap and waits; a third, enrolled at 22:00, waits
// for the end of quiet hours.
func TestE2E_JourneyWelcomeSeriesFromScanToGoal(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		sh, _ := time.LoadLocation("Asia/Shanghai")
		monday := time.Now().In(sh)
		for monday.Weekday() != time.Monday {
			monday = monday.AddDate(0, 0, 1)
		}
		at := func(days int, hh, mm int) time.Time {
			d := monday.AddDate(0, 0, days)
			return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, sh)
		}
		s := startStackWith(t, driver, func(c *configs.CorpConfig) {
			c.Calendar.Holidays = []string{at(1, 0, 0).Format("2006-01-02")}
		})
		ctx := context.Background()
		var mu sync.Mutex
		now := at(0, 18, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		setNow := func(v time.Time) { mu.Lock(); now = v; mu.Unlock() }
		s.app.leads.SetClock(clock)
		s.app.journeys.SetClock(clock)
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)
		mustCall := func(method, path string, body any, want int, out any) {
			t.Helper()
			if st := call(t, method, s.url+"/api/v1"+path, admin, body, out); st != want {
				t.Fatalf("%s %s: %d, want %d", method, path, st, want)
			}
		}
		var tagID, tagName string
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) { tagID, tagName = c.TagGroups[0].Tags[0].ID, c.TagGroups[0].Tags[0].Name })

		mustCall("PUT", "/scoring/settings", map[string]any{"mql_threshold": 50}, 200, nil)
		mustCall("POST", "/scoring/rules", map[string]any{"name": "engaged", "activity_type": "nurture.engaged", "points": 60}, 201, nil)
		mustCall("PUT", "/journeys/settings", map[string]any{"cap_day": 1, "cap_week": 3, "quiet_start": "21:00", "quiet_end": "08:00",
			"opt_out_activity": "contact.opted_out"}, 200, nil)
		var code livecode.Code
		mustCall("POST", "/codes", map[string]any{"name": "Spring poster", "channel": "poster", "mode": "wecom_qr",
			"staff": []map[string]any{{"userid": "zhangsan"}}, "settings": map[string]any{"tags": []string{tagID}}}, 201, &code)

		// A draft with a mistake is saved with its problems and refused at publish.
		welcome := map[string]any{
			"goal": map[string]any{"field": "stage", "op": "eq", "value": "mql"},
			"nodes": []map[string]any{
				{"id": "scan", "type": "entry", "entry": map[string]any{"on": "activity", "activity": "wecom.added", "properties": map[string]string{"code_id": itoa(code.ID)}},
					"exits": map[string]string{"next": "morning"}},
				{"id": "morning", "type": "wait", "wait": map[string]any{"for": "workday", "at": "10:00"}, "exits": map[string]string{"next": "tagged"}},
				{"id": "tagged", "type": "condition", "condition": map[string]any{"field": "tags", "op": "has", "value": tagName},
					"exits": map[string]string{"yes": "ab", "no": "bye"}},
				{"id": "ab", "type": "split", "branches": []map[string]any{{"name": "a", "percent": 50}, {"name": "b", "percent": 50}},
					"exits": map[string]string{"a": "hello_a", "b": "hello_b"}},
				{"id": "hello_a", "type": "action", "action": map[string]any{"kind": "message", "text": "欢迎 {{name}}（A）"}, "exits": map[string]string{"next": "read"}},
				{"id": "hello_b", "type": "action", "action": map[string]any{"kind": "message", "text": "欢迎 {{name}}（B）"}, "exits": map[string]string{"next": "read"}},
				{"id": "read", "type": "wait", "wait": map[string]any{"for": "activity", "activity": "wecom.message_received", "timeout_minutes": 3 * 24 * 60},
					"exits": map[string]string{"happened": "engage", "timeout": "bye"}},
				{"id": "engage", "type": "action", "action": map[string]any{"kind": "activity", "activity": "nurture.engaged"}, "exits": map[string]string{"next": "bye"}},
				{"id": "bye", "type": "exit"},
			},
		}
		nodes := welcome["nodes"].([]map[string]any)
		nodes[2]["exits"] = map[string]string{"yes": "ab"} // "no" left open
		var j journeys.Journey
		mustCall("POST", "/journeys", map[string]any{"name": "Welcome series", "draft": welcome}, 201, &j)
		if j.Problems["nodes.tagged.exits.no"] == "" {
			t.Fatalf("problems of the unfinished draft: %v", j.Problems)
		}
		var refusal struct {
			Error struct {
				Code   string            `json:"code"`
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		mustCall("POST", "/journeys/"+itoa(j.ID)+"/publish", nil, 422, &refusal)
		if refusal.Error.Fields["nodes.tagged.exits.no"] == "" {
			t.Fatalf("publish refusal: %+v", refusal)
		}
		nodes[2]["exits"] = map[string]string{"yes": "ab", "no": "bye"}
		mustCall("PUT", "/journeys/"+itoa(j.ID), map[string]any{"name": "Welcome series", "draft": welcome}, 200, &j)
		mustCall("POST", "/journeys/"+itoa(j.ID)+"/publish", nil, 200, &j)
		if j.Status != journeys.StatusPublished || j.Version != 1 {
			t.Fatalf("published: %+v", j)
		}
		promo := map[string]any{"nodes": []map[string]any{
			{"id": "in", "type": "entry", "entry": map[string]any{"on": "manual"}, "exits": map[string]string{"next": "promo"}},
			{"id": "promo", "type": "action", "action": map[string]any{"kind": "message", "text": "本周特惠"}, "exits": map[string]string{"next": "out"}},
			{"id": "out", "type": "exit"},
		}}
		var p journeys.Journey
		mustCall("POST", "/journeys", map[string]any{"name": "Promo", "draft": promo}, 201, &p)
		mustCall("POST", "/journeys/"+itoa(p.ID)+"/publish", nil, 200, &p)

		// Monday 18:00: three customers scan the poster.
		var people []fake.ScanResult
		for _, name := range []string{"韩梅梅", "李雷", "王芳"} {
			res, err := s.fake.Scan(ctx, e2eCorp, code.ConfigID, fake.Customer{Name: name})
			if err != nil || !res.Callback.OK {
				t.Fatalf("scan: %+v %v", res, err)
			}
			people = append(people, res)
		}
		runs := func(journey int64) map[int64]journeys.Run {
			var out struct {
				Runs []journeys.Run `json:"runs"`
			}
			mustCall("GET", "/journeys/"+itoa(journey)+"/runs", nil, 200, &out)
			m := map[int64]journeys.Run{}
			for _, r := range out.Runs {
				m[r.LeadID] = r
			}
			return m
		}
		leadOf := map[string]int64{}
		waitUntil(t, "the three to enter and wait for Wednesday 10:00 (Tuesday is a holiday)", func() bool {
			rs := runs(j.ID)
			if len(rs) != 3 {
				return false
			}
			for _, r := range rs {
				if r.Node != "morning" || r.State != journeys.StateWaiting || *r.DueAt != at(2, 10, 0).UnixMilli() {
					return false
				}
			}
			m, err := leadsOfContacts(ctx, s.app, e2eCorp, people[0].ExternalUserID, people[1].ExternalUserID, people[2].ExternalUserID)
			leadOf = m
			return err == nil && len(m) == 3
		})
		waitUntil(t, "the code's tag mirrored", func() bool {
			tags, err := s.app.dir.TagNamesOf(ctx, e2eCorp, []string{people[0].ExternalUserID, people[1].ExternalUserID})
			return err == nil && len(tags[people[0].ExternalUserID]) == 1 && len(tags[people[1].ExternalUserID]) == 1
		})
		// The dry run explains the way today.
		var dry struct {
			Steps []journeys.DryStep `json:"steps"`
		}
		mustCall("GET", "/journeys/"+itoa(j.ID)+"/dry-run?lead="+itoa(leadOf[people[0].ExternalUserID]), nil, 200, &dry)
		if len(dry.Steps) < 5 || dry.Steps[2].Node != "tagged" || dry.Steps[2].Exit != "yes" {
			t.Fatalf("dry run: %+v", dry.Steps)
		}

		// Wednesday 09:00: the promo reaches 李雷 (his cap for the day is used).
		setNow(at(2, 9, 0))
		var enrolled struct {
			Enrolled int `json:"enrolled"`
		}
		mustCall("POST", "/journeys/"+itoa(p.ID)+"/enrolments", map[string]any{"lead_ids": []int64{leadOf[people[1].ExternalUserID]}}, 200, &enrolled)
		waitUntil(t, "the promo queued", func() bool { return runs(p.ID)[leadOf[people[1].ExternalUserID]].State == journeys.StateDone })

		// Wednesday 10:00: the welcome goes on.
		setNow(at(2, 10, 0))
		first, second := leadOf[people[0].ExternalUserID], leadOf[people[1].ExternalUserID]
		waitUntil(t, "韩梅梅 messaged and 李雷 capped", func() bool {
			rs := runs(j.ID)
			a, b := rs[first], rs[second]
			return a.Node == "read" && a.State == journeys.StateEvent &&
				strings.HasPrefix(b.Node, "hello_") && b.DueAt != nil && *b.DueAt == at(2, 9, 0).Add(24*time.Hour).UnixMilli()
		})
		// zhangsan confirms the messages in WeCom; the results come back.
		resp, err := http.Post(s.fake.URL()+"/fake/corps/"+e2eCorp+"/staff/zhangsan/confirm-groupmsgs", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		var confirmed struct {
			Sends []fake.GroupMsgSend `json:"sends"`
		}
		json.NewDecoder(resp.Body).Decode(&confirmed)
		resp.Body.Close()
		if len(confirmed.Sends) != 3 { // 李雷's promo, and the welcomes of 韩梅梅 and 王芳
			t.Fatalf("confirmed %+v", confirmed.Sends)
		}
		if _, err := s.app.journeys.TrackMessages(ctx); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "韩梅梅's and 王芳's runs to reach the goal as their leads become MQLs", func() bool {
			rs := runs(j.ID)
			return rs[first].State == journeys.StateGoal && rs[leadOf[people[2].ExternalUserID]].State == journeys.StateGoal
		})
		var lead struct {
			Lead leads.Lead `json:"lead"`
		}
		mustCall("GET", "/leads/"+itoa(first), nil, 200, &lead)
		if lead.Lead.Stage != leads.StageMQL {
			t.Fatalf("lead after the journey: %+v", lead.Lead)
		}
		got := 0
		for _, m := range s.fake.Messages(e2eCorp) {
			if m.Kind == "groupmsg" && m.ExternalUserID == people[0].ExternalUserID && strings.HasPrefix(m.Text, "欢迎 韩梅梅") {
				got++
			}
		}
		if got != 1 {
			t.Fatalf("韩梅梅 received %d welcomes", got)
		}

		// Wednesday 22:00: 王芳 is enrolled in the promo, in quiet hours: it waits for 08:00.
		setNow(at(2, 22, 0))
		third := leadOf[people[2].ExternalUserID]
		mustCall("POST", "/journeys/"+itoa(p.ID)+"/enrolments", map[string]any{"lead_ids": []int64{third}}, 200, &enrolled)
		waitUntil(t, "王芳 waiting for the end of quiet hours", func() bool {
			r := runs(p.ID)[third]
			return r.Node == "promo" && r.DueAt != nil && *r.DueAt == at(3, 8, 0).UnixMilli()
		})
		var st journeys.Stats
		mustCall("GET", "/journeys/"+itoa(j.ID)+"/stats", nil, 200, &st)
		// 韩梅梅 and 王芳 converted; 李雷 still waits for his cap.
		if st.Journey.Enrolled != 3 || st.Journey.Goals != 2 || st.Journey.Active != 1 {
			t.Fatalf("stats %+v", st.Journey)
		}
		for _, n := range st.Nodes {
			if n.Node == "engage" && n.Conversions != 2 {
				t.Fatalf("conversions at %+v, want 2", n)
			}
		}
	})
}

// A segment's members download as the lead export does: masked without
// pii, formula cells escaped, audited.
func TestE2E_SegmentExportFollowsTheLeadExportRules(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	createUsers(t, s, map[string]auth.Role{"marketer": auth.RoleMarketer})
	marketer := login(t, s.url, "marketer@example.com", "password marketer")
	for _, p := range []map[string]any{{"name": "=HYPERLINK(1)", "mobile": "13912345600", "title": "CTO"}, {"name": "李雷", "mobile": "13912345601", "title": "CTO"}, {"name": "王芳", "mobile": "13912345602"}} {
		if st := call(t, "POST", s.url+"/api/v1/leads", admin, p, nil); st != http.StatusCreated {
			t.Fatalf("create lead: %d", st)
		}
	}
	var g journeys.Segment
	if st := call(t, "POST", s.url+"/api/v1/segments", marketer, map[string]any{"name": "CTOs", "kind": "dynamic",
		"filter": map[string]any{"field": "title", "op": "eq", "value": "CTO"}}, &g); st != http.StatusCreated {
		t.Fatalf("create segment: %d", st)
	}
	waitUntil(t, "the segment built", func() bool {
		call(t, "GET", s.url+"/api/v1/segments/"+itoa(g.ID), admin, nil, &g)
		return g.BuiltVersion == g.Version && g.Members == 2
	})
	get := func(token string) string {
		req, _ := http.NewRequest("GET", s.url+"/api/v1/segments/"+itoa(g.ID)+"/export", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("export: %v %v", resp, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	full, masked := get(admin), get(marketer)
	if strings.Count(full, "\n") != 3 || !strings.Contains(full, "+8613912345601") || !strings.Contains(full, "'=HYPERLINK(1)") || strings.Contains(full, "王芳") {
		t.Fatalf("admin's export:\n%s", full)
	}
	if strings.Contains(masked, "13912345601") || strings.Count(masked, "\n") != 3 {
		t.Fatalf("the marketer (no pii) saw a mobile:\n%s", masked)
	}
	var audit struct {
		Exports []struct {
			Filter string `json:"filter"`
			Rows   int64  `json:"rows"`
			Masked bool   `json:"masked"`
		} `json:"exports"`
	}
	call(t, "GET", s.url+"/api/v1/exports", admin, nil, &audit)
	if len(audit.Exports) != 2 || !strings.Contains(audit.Exports[0].Filter, "segment "+itoa(g.ID)) || audit.Exports[0].Rows != 2 {
		t.Fatalf("audit %+v", audit.Exports)
	}
}

// A customer who scanned a channel code is invited to a customer group (a
// message with the group code's card), joins through the group code: the
// join is on their lead's timeline and starts the journey that enters on
// joining that group.
func TestE2E_GroupJoinIsAnActivityThatStartsAJourney(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	ctx := context.Background()
	syncDirectory(t, s, admin)
	chat, _, _ := s.fake.CreateGroup(ctx, e2eCorp, "zhangsan", "VIP")
	var group, channel livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "VIP group", "mode": "join_way",
		"settings": map[string]any{"groups": []map[string]any{{"chat_id": chat, "threshold": 100}}}}, &group); st != http.StatusCreated {
		t.Fatalf("group code: %d", st)
	}
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Poster", "channel": "poster", "mode": "wecom_qr",
		"staff": []map[string]any{{"userid": "zhangsan"}}}, &channel); st != http.StatusCreated {
		t.Fatalf("channel code: %d", st)
	}
	var j journeys.Journey
	if st := call(t, "POST", s.url+"/api/v1/journeys", admin, map[string]any{"name": "VIP welcome", "draft": map[string]any{"nodes": []map[string]any{
		{"id": "joined", "type": "entry", "entry": map[string]any{"on": "activity", "activity": "wecom.group_joined", "properties": map[string]string{"chat_id": chat}},
			"exits": map[string]string{"next": "out"}},
		{"id": "out", "type": "exit"},
	}}}, &j); st != http.StatusCreated {
		t.Fatalf("journey: %d", st)
	}
	if st := call(t, "POST", s.url+"/api/v1/journeys/"+itoa(j.ID)+"/publish", admin, nil, nil); st != http.StatusOK {
		t.Fatalf("publish: %d", st)
	}
	scan, err := s.fake.Scan(ctx, e2eCorp, channel.ConfigID, fake.Customer{Name: "Mei"})
	if err != nil || !scan.Callback.OK {
		t.Fatalf("scan: %+v %v", scan, err)
	}
	var lead int64
	waitUntil(t, "her lead", func() bool {
		m, err := leadsOfContacts(ctx, s.app, e2eCorp, scan.ExternalUserID)
		lead = m[scan.ExternalUserID]
		return err == nil && lead > 0
	})
	// First she is invited: a message with the group code's card, which
	// zhangsan confirms in WeCom.
	if st := call(t, "PUT", s.url+"/api/v1/journeys/settings", admin, map[string]any{"cap_day": 5, "cap_week": 10, "quiet_start": "", "quiet_end": "",
		"opt_out_activity": "contact.opted_out"}, nil); st != http.StatusOK {
		t.Fatalf("settings: %d", st)
	}
	var inv journeys.Journey
	call(t, "POST", s.url+"/api/v1/journeys", admin, map[string]any{"name": "invite", "draft": map[string]any{"nodes": []map[string]any{
		{"id": "in", "type": "entry", "entry": map[string]any{"on": "manual"}, "exits": map[string]string{"next": "invite"}},
		{"id": "invite", "type": "action", "action": map[string]any{"kind": "invite", "code": group.ID, "text": "欢迎加入 VIP 群"}, "exits": map[string]string{"next": "out"}},
		{"id": "out", "type": "exit"},
	}}}, &inv)
	if st := call(t, "POST", s.url+"/api/v1/journeys/"+itoa(inv.ID)+"/publish", admin, nil, nil); st != http.StatusOK {
		t.Fatalf("publish invite: %d", st)
	}
	call(t, "POST", s.url+"/api/v1/journeys/"+itoa(inv.ID)+"/enrolments", admin, map[string]any{"lead_ids": []int64{lead}}, nil)
	waitUntil(t, "the invitation queued for zhangsan", func() bool { return len(s.fake.PendingGroupMsgs(e2eCorp, "zhangsan")) == 1 })
	if _, err := s.fake.ConfirmGroupMsg(e2eCorp, s.fake.PendingGroupMsgs(e2eCorp, "zhangsan")[0].ID, "zhangsan"); err != nil {
		t.Fatal(err)
	}
	invited := false
	for _, m := range s.fake.Messages(e2eCorp) {
		if m.Kind == "groupmsg" && m.ExternalUserID == scan.ExternalUserID && m.Text == "欢迎加入 VIP 群" && len(m.Attachments) == 1 &&
			m.Attachments[0].Link != nil && strings.HasSuffix(m.Attachments[0].Link.URL, "/g/"+group.Slug) {
			invited = true
		}
	}
	if !invited {
		t.Fatalf("no invitation with the group code's card reached her: %+v", s.fake.Messages(e2eCorp))
	}
	if res, err := s.fake.JoinGroup(ctx, e2eCorp, group.ConfigID, fake.Customer{ExternalUserID: scan.ExternalUserID}); err != nil || !res.Callback.OK {
		t.Fatalf("join: %+v %v", res, err)
	}
	var runs struct {
		Runs []journeys.Run `json:"runs"`
	}
	waitUntil(t, "the journey to start and finish", func() bool {
		call(t, "GET", s.url+"/api/v1/journeys/"+itoa(j.ID)+"/runs", admin, nil, &runs)
		return len(runs.Runs) == 1 && runs.Runs[0].LeadID == lead && runs.Runs[0].State == journeys.StateDone
	})
	var timeline struct {
		Entries []leads.TimelineEntry `json:"timeline"`
	}
	call(t, "GET", s.url+"/api/v1/leads/"+itoa(lead)+"/timeline", admin, nil, &timeline)
	found := false
	for _, e := range timeline.Entries {
		if e.Type == leads.ActivityGroupJoined && strings.Contains(string(e.Properties), chat) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no group join on the timeline: %+v", timeline.Entries)
	}
}

// leadsOfContacts maps a corp's external contacts to their leads.
func leadsOfContacts(ctx context.Context, a *app, corp string, exts ...string) (map[string]int64, error) {
	cs := make([]leads.Contact, len(exts))
	for i, e := range exts {
		cs[i] = leads.Contact{CorpID: corp, ExternalUserID: e}
	}
	m, err := a.leads.LeadsOfContacts(ctx, cs)
	out := map[string]int64{}
	for c, lead := range m {
		out[c.ExternalUserID] = lead
	}
	return out, err
}
