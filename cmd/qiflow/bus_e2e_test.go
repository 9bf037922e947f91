package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom/fake"
)

// contactXML is a change_external_contact callback as WeCom sends it.
// notDone fails the test with every delivery that did not finish well.
func (s *stack) allDone(what string) {
	s.t.Helper()
	var rows []struct {
		Subscriber string  `db:"subscriber"`
		Status     string  `db:"status"`
		Error      *string `db:"last_error"`
	}
	if err := s.app.db.Select(&rows, "SELECT subscriber, status, last_error FROM bus_deliveries WHERE status <> 'done'"); err != nil {
		s.t.Fatal(err)
	}
	for _, r := range rows {
		e := ""
		if r.Error != nil {
			e = *r.Error
		}
		s.t.Errorf("%s: delivery to %s is %s: %s", what, r.Subscriber, r.Status, e)
	}
	if len(rows) > 0 {
		s.t.FailNow()
	}
}

func contactXML(change, user, ext, state string, at time.Time) []byte {
	return []byte(fmt.Sprintf(`<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[%s]]></ChangeType><UserID><![CDATA[%s]]></UserID><ExternalUserID><![CDATA[%s]]></ExternalUserID><State><![CDATA[%s]]></State></xml>`,
		e2eCorp, at.Unix(), change, user, ext, state))
}

// A delete that reaches Qiflow before its add (WeCom retried the add) is
// kept as a tombstone: the add that follows is recorded as already lost,
// counted and published once with its loss, and a later re-add counts as a
// re-add of a live relation, published again.
func TestE2E_DeleteProcessedBeforeItsAdd(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)
		var code livecode.Code
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Order", "channel": "order", "mode": "wecom_qr",
			"staff": []map[string]any{{"userid": "zhangsan"}}}, &code); st != http.StatusCreated {
			t.Fatalf("create: %d", st)
		}
		ctx := context.Background()
		state := fmt.Sprintf("lc%d", code.ID)
		t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
		post := func(x []byte) {
			t.Helper()
			if d, err := s.fake.Post(ctx, e2eCorp, x); err != nil || !d.OK {
				t.Fatalf("post: %+v %v", d, err)
			}
		}
		// The delete (at t0+5 s) is processed before the add (at t0).
		post(contactXML("del_follow_user", "zhangsan", "wmorder1", "", t0.Add(5*time.Second)))
		s.settled()
		post(contactXML("add_external_contact", "zhangsan", "wmorder1", state, t0))
		s.settled()
		var src struct {
			LostAt *int64 `db:"lost_at"`
			LostBy string `db:"lost_by"`
			ReAdd  bool   `db:"is_readd"`
		}
		if err := s.app.db.Get(&src, "SELECT lost_at, lost_by, is_readd FROM contact_sources WHERE external_userid = 'wmorder1'"); err != nil {
			t.Fatal(err)
		}
		if src.LostAt == nil || *src.LostAt != t0.Add(5*time.Second).UnixMilli() || src.LostBy != "customer" || src.ReAdd {
			t.Fatalf("the add after its delete: %+v", src)
		}
		events := func(typ string) int {
			return s.count("SELECT COUNT(*) FROM bus_events WHERE source = 'domain' AND type = ? AND subject = 'ext:wmorder1'", typ)
		}
		if events("ContactAdded") != 1 || events("ContactLost") != 1 {
			t.Fatalf("published %d ContactAdded, %d ContactLost", events("ContactAdded"), events("ContactLost"))
		}
		day := t0.In(mustLoc("Asia/Shanghai")).Format(time.DateOnly)
		stats := func() livecode.StatsRow {
			var out struct {
				Rows []livecode.StatsRow `json:"rows"`
			}
			call(t, "GET", fmt.Sprintf("%s/api/v1/stats/codes?group_by=code&code_id=%d&from=%s&to=%s", s.url, code.ID, day, day), admin, nil, &out)
			if len(out.Rows) != 1 {
				t.Fatalf("stats rows: %+v", out.Rows)
			}
			return out.Rows[0]
		}
		if r := stats(); r.Adds != 1 || r.LostCustomer != 1 || r.NetAdds != 0 {
			t.Fatalf("stats after delete-then-add: %+v", r)
		}
		// The customer comes back: a re-add of a lost relation.
		post(contactXML("add_external_contact", "zhangsan", "wmorder1", state, t0.Add(10*time.Second)))
		s.settled()
		if n := s.count("SELECT COUNT(*) FROM contact_relations WHERE external_userid = 'wmorder1' AND lost_at IS NULL"); n != 1 {
			t.Fatal("the re-add did not make the relation live")
		}
		if r := stats(); r.Adds != 1 || r.ReAdds != 1 || r.LostCustomer != 1 {
			t.Fatalf("stats after the re-add: %+v", r)
		}
		if events("ContactAdded") != 2 {
			t.Fatalf("%d ContactAdded after the re-add", events("ContactAdded"))
		}
		// Every event is delivered and handled once per subscriber.
		s.allDone("delete before add")
	})
}

// A tag deleted in WeCom since the mirror last saw it is skipped and
// reported: the other tag, the remark, the source and the welcome all happen.
func TestE2E_MissingTagIsSkippedNotFatal(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	ctx := context.Background()
	keep, _, err := s.fake.AdminAddTag(ctx, e2eCorp, "Source", "kept")
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := s.fake.AdminAddTag(ctx, e2eCorp, "Source", "deleted soon")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the tags mirrored", func() bool {
		return s.count("SELECT COUNT(*) FROM tags WHERE id IN (?, ?) AND deleted_at IS NULL", keep, gone) == 2
	})
	var code livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Tags", "mode": "wecom_qr",
		"staff":    []map[string]any{{"userid": "zhangsan"}},
		"settings": map[string]any{"tags": []string{keep, gone}, "remark_template": "{customer_name}-T", "welcome": map[string]any{"text": "hi"}}}, &code); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	// An admin deletes the tag in WeCom; the callback is lost, so the mirror still lists it.
	s.fake.SetCallbackURL(e2eCorp, "")
	if _, err := s.fake.AdminDeleteTag(ctx, e2eCorp, gone); err != nil {
		t.Fatal(err)
	}
	s.fake.SetCallbackURL(e2eCorp, s.url+"/wecom/callback/"+e2eCorp)
	res, err := s.fake.Scan(ctx, e2eCorp, code.ConfigID, fake.Customer{Name: "Tina"})
	if err != nil || !res.Callback.OK {
		t.Fatalf("scan: %+v %v", res, err)
	}
	s.settled()
	var tags []string
	var remark string
	s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
		fu := c.Customers[res.ExternalUserID].Follows[res.UserID]
		for _, tg := range fu.Tags {
			tags = append(tags, tg.TagID)
		}
		remark = fu.Remark
	})
	if strings.Join(tags, ",") != keep || remark != "Tina-T" {
		t.Fatalf("tags %v, remark %q", tags, remark)
	}
	s.allDone("a missing tag must not fail onboarding")
	if n := s.count("SELECT COUNT(*) FROM contact_sources WHERE code_id = ?", code.ID); n != 1 {
		t.Fatalf("%d sources", n)
	}
	if n := s.count("SELECT COUNT(*) FROM welcome_sends WHERE code_id = ? AND status = 'sent'", code.ID); n != 1 {
		t.Fatalf("%d welcomes sent", n)
	}
	// Qiflow's own writes to WeCom reach the mirror at once, not at the next sync.
	var contact struct {
		Follows []struct {
			UserID string          `json:"userid"`
			Remark string          `json:"remark"`
			TagIDs json.RawMessage `json:"tag_ids"`
		} `json:"follows"`
	}
	call(t, "GET", s.url+"/api/v1/contacts/"+res.ExternalUserID, admin, nil, &contact)
	if len(contact.Follows) != 1 || contact.Follows[0].Remark != "Tina-T" || !strings.Contains(string(contact.Follows[0].TagIDs), keep) {
		t.Fatalf("the mirror after onboarding: %+v", contact.Follows)
	}
	// The refused mark refreshed the mirror: the next add skips the tag without asking WeCom.
	if n := s.count("SELECT COUNT(*) FROM tags WHERE id = ? AND deleted_at IS NULL", gone); n != 0 {
		t.Fatal("the mirror still lists the deleted tag")
	}
}

// Edits name the version they are based on: a stale one is refused with
// 409, a missing one with 428, and the current one is applied.
func TestE2E_ConcurrentCodeEdits(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	body := map[string]any{"name": "Edited", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "zhangsan"}}}
	var code livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &code); st != http.StatusCreated || code.Version == 0 {
		t.Fatalf("create: %d %+v", st, code)
	}
	u := fmt.Sprintf("%s/api/v1/codes/%d", s.url, code.ID)
	var e struct {
		Error struct {
			Code   string            `json:"code"`
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	if st := call(t, "PUT", u, admin, body, &e); st != http.StatusPreconditionRequired || e.Error.Fields["version"] == "" {
		t.Fatalf("an edit without a version: %d %+v", st, e)
	}
	// Two people open version v; the first saves, the second is told.
	first := map[string]any{"name": "First", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "zhangsan"}}, "version": code.Version}
	second := map[string]any{"name": "Second", "mode": "wecom_qr", "staff": []map[string]any{{"userid": "lisi"}}, "version": code.Version}
	var saved livecode.Code
	if st := call(t, "PUT", u, admin, first, &saved); st != http.StatusOK || saved.Version != code.Version+1 || saved.Name != "First" {
		t.Fatalf("first edit: %d %+v", st, saved)
	}
	e.Error.Code = ""
	if st := call(t, "PUT", u, admin, second, &e); st != http.StatusConflict || e.Error.Code != "version_conflict" {
		t.Fatalf("stale edit: %d %+v", st, e)
	}
	var now livecode.Code
	call(t, "GET", u, admin, nil, &now)
	if now.Name != "First" || now.Version != saved.Version {
		t.Fatalf("after the refused edit: %+v", now)
	}
	// If-Match carries the version as the ETag GET returned.
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if etag != fmt.Sprintf("%q", fmt.Sprint(saved.Version)) {
		t.Fatalf("ETag %q for version %d", etag, saved.Version)
	}
	req, _ = http.NewRequest("PUT", u, strings.NewReader(`{"name":"Third","mode":"wecom_qr","staff":[{"userid":"zhangsan"}]}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("edit with If-Match: %d", resp.StatusCode)
	}
	// A stats query without dates names the missing dates.
	var se struct {
		Error struct {
			Message string            `json:"message"`
			Fields  map[string]string `json:"fields"`
		} `json:"error"`
	}
	if st := call(t, "GET", s.url+"/api/v1/stats/codes", admin, nil, &se); st != http.StatusUnprocessableEntity || se.Error.Fields["from"] == "" || se.Error.Fields["to"] == "" ||
		strings.Contains(se.Error.Message, "live code") {
		t.Fatalf("stats without dates: %d %+v", st, se.Error)
	}
}

// A customer-service user sees the codes they own and no other, in lists,
// reads and statistics.
func TestE2E_CSUserSeesOnlyTheirCodes(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	ctx := context.Background()
	cs, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: "cs@example.com", Password: "cs password", CorpID: e2eCorp, Role: auth.RoleCS})
	if err != nil {
		t.Fatal(err)
	}
	csToken := login(t, s.url, "cs@example.com", "cs password")
	var mine, theirs livecode.Code
	call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Mine", "mode": "wecom_qr", "owner_user_id": cs.ID,
		"staff": []map[string]any{{"userid": "zhangsan"}}}, &mine)
	call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Theirs", "mode": "wecom_qr",
		"staff": []map[string]any{{"userid": "lisi"}}}, &theirs)
	if mine.ID == 0 || theirs.ID == 0 {
		t.Fatal("codes not created")
	}
	var list struct {
		Codes []livecode.Code `json:"codes"`
	}
	if st := call(t, "GET", s.url+"/api/v1/codes", csToken, nil, &list); st != http.StatusOK || len(list.Codes) != 1 || list.Codes[0].ID != mine.ID {
		t.Fatalf("cs list: %d %+v", st, list.Codes)
	}
	if st := call(t, "GET", fmt.Sprintf("%s/api/v1/codes/%d", s.url, theirs.ID), csToken, nil, nil); st != http.StatusNotFound {
		t.Fatalf("another's code: %d", st)
	}
	if st := call(t, "GET", fmt.Sprintf("%s/api/v1/codes/%d", s.url, mine.ID), csToken, nil, nil); st != http.StatusOK {
		t.Fatalf("own code: %d", st)
	}
	if st := call(t, "GET", fmt.Sprintf("%s/api/v1/codes/%d/contacts", s.url, theirs.ID), csToken, nil, nil); st != http.StatusNotFound {
		t.Fatalf("another's contacts: %d", st)
	}
	if _, err := s.fake.Scan(ctx, e2eCorp, theirs.ConfigID, fake.Customer{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.fake.Scan(ctx, e2eCorp, mine.ConfigID, fake.Customer{}); err != nil {
		t.Fatal(err)
	}
	s.settled()
	day := time.Now().In(mustLoc("Asia/Shanghai")).Format(time.DateOnly)
	var stats struct {
		Rows []livecode.StatsRow `json:"rows"`
	}
	call(t, "GET", s.url+"/api/v1/stats/codes?group_by=code&from="+day+"&to="+day, csToken, nil, &stats)
	if len(stats.Rows) != 1 || stats.Rows[0].Key != fmt.Sprint(mine.ID) {
		t.Fatalf("cs stats: %+v", stats.Rows)
	}
}

// One code per store: a second store on the same code is refused, naming the first.
func TestE2E_TwoStoresCannotShareACode(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	var code livecode.Code
	call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Store A staff", "mode": "wecom_qr",
		"staff": []map[string]any{{"userid": "zhangsan"}}}, &code)
	var a livecode.Store
	if st := call(t, "POST", s.url+"/api/v1/stores", admin, map[string]any{"name": "Store A", "city": "上海", "lat": 31.23, "lng": 121.47, "code_id": code.ID}, &a); st != http.StatusCreated {
		t.Fatalf("first store: %d", st)
	}
	var e struct {
		Error struct {
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	if st := call(t, "POST", s.url+"/api/v1/stores", admin, map[string]any{"name": "Store B", "city": "上海", "lat": 31.20, "lng": 121.40, "code_id": code.ID}, &e); st != http.StatusUnprocessableEntity ||
		!strings.Contains(e.Error.Fields["code_id"], "Store A") {
		t.Fatalf("second store on the code: %d %+v", st, e)
	}
	// Editing the first store keeps its own code.
	if st := call(t, "PUT", fmt.Sprintf("%s/api/v1/stores/%d", s.url, a.ID), admin, map[string]any{"name": "Store A (new name)", "city": "上海", "lat": 31.23, "lng": 121.47, "code_id": code.ID}, nil); st != http.StatusOK {
		t.Fatalf("edit the store: %d", st)
	}
}

// WeCom's welcome errcodes each get their outcome: 41096 (being sent) is
// not a failure, 41050 (expired or unknown) is never retried.
func TestE2E_WelcomeErrcodes(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	var code livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Hello", "mode": "wecom_qr",
		"staff": []map[string]any{{"userid": "zhangsan"}}, "settings": map[string]any{"welcome": map[string]any{"text": "hi"}}}, &code); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	for _, tc := range []struct {
		errcode int64
		outcome string
	}{{41096, "already"}, {41050, "expired"}} {
		s.fake.Inject(fake.Fault{Endpoint: "externalcontact/send_welcome_msg", Count: 1, ErrCode: tc.errcode})
		res, err := s.fake.Scan(context.Background(), e2eCorp, code.ConfigID, fake.Customer{})
		if err != nil || !res.Callback.OK {
			t.Fatalf("scan: %+v %v", res, err)
		}
		s.settled()
		var got struct {
			Status string `db:"status"`
		}
		if err := s.app.db.Get(&got, "SELECT status FROM welcome_sends WHERE welcome_code = ?", res.WelcomeCode); err != nil {
			t.Fatal(err)
		}
		if got.Status != tc.outcome {
			t.Errorf("errcode %d: outcome %s, want %s", tc.errcode, got.Status, tc.outcome)
		}
		if n := s.count("SELECT COUNT(*) FROM bus_deliveries d JOIN bus_events e ON e.id = d.event_id WHERE d.subscriber = 'livecode.welcome' AND e.subject = ? AND (d.attempts <> 1 OR d.status <> 'done')",
			"ext:"+res.ExternalUserID); n != 0 {
			t.Errorf("errcode %d: the welcome delivery was retried or did not finish", tc.errcode)
		}
	}
}

// Public endpoints are bounded: API bodies are capped (413), sign-in is
// rate-limited per account (429, shared by instances through Redis), and
// /readyz tells the world only whether it is ready.
func TestE2E_PublicEndpointsAreBounded(t *testing.T) {
	s := startStack(t, "sqlite")
	big := strings.NewReader(`{"email":"admin@example.com","password":"` + strings.Repeat("x", 2<<20) + `"}`)
	resp, err := http.Post(s.url+"/api/v1/auth/login", "application/json", big)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 2 MB login body: %d", resp.StatusCode)
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	for i := 0; i < 10; i++ {
		if st := call(t, "POST", s.url+"/api/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "wrong"}, nil); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	if st := call(t, "POST", s.url+"/api/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "admin password"}, &e); st != http.StatusTooManyRequests || e.Error.Code != "too_many_attempts" {
		t.Fatalf("the 11th attempt in the window: %d %+v", st, e)
	}
	// Another account from the same address is not locked by it.
	if st := call(t, "POST", s.url+"/api/v1/auth/login", "", map[string]string{"email": "someone@example.com", "password": "wrong"}, nil); st != http.StatusUnauthorized {
		t.Fatalf("another account: %d", st)
	}
	s.app.kv.Close() // Redis gone: /readyz says so, and nothing more
	resp, err = http.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "redis") || strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
}

// The nearest-store endpoint returns the five nearest stores, nearest
// first, each with its own code's page.
func TestE2E_NearestStoresKeepsFive(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	for i := 0; i < 7; i++ {
		var code livecode.Code
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": fmt.Sprintf("Store %d staff", i), "mode": "wecom_qr",
			"staff": []map[string]any{{"userid": "zhangsan"}}}, &code); st != http.StatusCreated {
			t.Fatalf("code %d: %d", i, st)
		}
		// Store i is i×10 km east of the visitor, along the equator-ish line at 31.2°N.
		if st := call(t, "POST", s.url+"/api/v1/stores", admin, map[string]any{"name": fmt.Sprintf("S%d", i), "city": "上海",
			"lat": 31.2, "lng": 121.4 + float64(i)*0.105, "datum": "wgs84", "code_id": code.ID}, nil); st != http.StatusCreated {
			t.Fatalf("store %d: %d", i, st)
		}
	}
	var storeCode livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "All stores", "mode": "stores"}, &storeCode); st != http.StatusCreated {
		t.Fatalf("store code: %d", st)
	}
	var out struct {
		Stores []livecode.StoreHit `json:"stores"`
	}
	if st := call(t, "GET", s.url+"/s/"+storeCode.Slug+"/nearest?lat=31.2&lng=121.61", "", nil, &out); st != http.StatusOK {
		t.Fatalf("nearest: %d", st)
	}
	var names []string
	for _, h := range out.Stores {
		names = append(names, h.Name)
		if h.Page == "" || h.QR == "" {
			t.Errorf("store %s without its code's page or QR: %+v", h.Name, h)
		}
	}
	if strings.Join(names, ",") != "S2,S1,S3,S0,S4" && strings.Join(names, ",") != "S2,S3,S1,S4,S0" {
		t.Fatalf("nearest five: %v", names)
	}
}

// WeCom allows 100 group welcome templates a corp: the 101st is refused
// with a field error the user can act on, and nothing is left behind.
func TestE2E_GroupWelcomeTemplateLimit(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	ctx := context.Background()
	chat, _, _ := s.fake.CreateGroup(ctx, e2eCorp, "zhangsan", "Full house")
	s.fake.Mutate(e2eCorp, func(c *fake.Corp) {
		if c.GroupWelcome == nil {
			c.GroupWelcome = map[string]string{}
		}
		for i := len(c.GroupWelcome); i < 100; i++ {
			c.GroupWelcome[fmt.Sprintf("gwt-other-%d", i)] = "made elsewhere"
		}
	})
	var e struct {
		Error struct {
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "One too many", "mode": "join_way",
		"settings": map[string]any{"groups": []map[string]any{{"chat_id": chat}}, "group_welcome": "hi"}}, &e)
	if st != http.StatusUnprocessableEntity || !strings.Contains(e.Error.Fields["settings.group_welcome"], "100") {
		t.Fatalf("the 101st template: %d %+v", st, e)
	}
	joinWays := 0
	s.fake.Inspect(e2eCorp, func(c *fake.Corp) { joinWays = len(c.JoinWays) })
	if joinWays != 0 || s.count("SELECT COUNT(*) FROM live_codes") != 0 {
		t.Fatalf("a refused create left %d join ways, %d codes", joinWays, s.count("SELECT COUNT(*) FROM live_codes"))
	}
}

// The sandbox has customer groups to try group codes on, listed with their
// member counts by GET /api/v1/groups.
func TestE2E_SandboxGroupsAreListed(t *testing.T) {
	cfg := testConfig(t, "sqlite")
	cfg.Sandbox, cfg.SandboxAddr = "auto", "127.0.0.1:0"
	cfg.Admin = configs.AdminConfig{Email: "admin@example.com", Password: "admin password"}
	a, err := newApp(context.Background(), cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	defer a.shutdown(context.Background())
	base := "http://" + a.addr()
	admin := login(t, base, "admin@example.com", "admin password")
	var out struct {
		Groups []struct {
			ChatID      string `json:"chat_id"`
			Name        string `json:"name"`
			Owner       string `json:"owner"`
			MemberCount int    `json:"member_count"`
		} `json:"groups"`
		NextCursor string `json:"next_cursor"`
	}
	waitUntil(t, "the sandbox's groups imported", func() bool {
		call(t, "GET", base+"/api/v1/groups?limit=1", admin, nil, &out)
		return len(out.Groups) == 1 && out.NextCursor != ""
	})
	if g := out.Groups[0]; g.ChatID == "" || g.Owner != "zhangsan" || g.MemberCount != 1 || !strings.HasPrefix(g.Name, "VIP") {
		t.Fatalf("group: %+v", g)
	}
	first := out.Groups[0].ChatID
	call(t, "GET", base+"/api/v1/groups?limit=1&cursor="+out.NextCursor, admin, nil, &out)
	if len(out.Groups) != 1 || out.Groups[0].ChatID == first {
		t.Fatalf("second page: %+v", out)
	}
}

// Group codes with the same welcome share one WeCom template (a corp has
// 100); editing one code's text never changes the other's, and a template
// is deleted only when no live code uses it.
func TestE2E_GroupWelcomeTemplatesAreShared(t *testing.T) {
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	ctx := context.Background()
	g1, _, _ := s.fake.CreateGroup(ctx, e2eCorp, "zhangsan", "One")
	g2, _, _ := s.fake.CreateGroup(ctx, e2eCorp, "zhangsan", "Two")
	templates := func() map[string]string {
		out := map[string]string{}
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
			for id, text := range c.GroupWelcome {
				out[id] = text
			}
		})
		return out
	}
	create := func(name, chat string) livecode.Code {
		var c livecode.Code
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": name, "mode": "join_way",
			"settings": map[string]any{"groups": []map[string]any{{"chat_id": chat}}, "group_welcome": map[string]any{"text": "Welcome!"}}}, &c); st != http.StatusCreated {
			t.Fatalf("create %s: %d", name, st)
		}
		return c
	}
	a, b := create("A", g1), create("B", g2)
	if tm := templates(); len(tm) != 1 || a.Settings.GroupWelcomeTemplate != b.Settings.GroupWelcomeTemplate {
		t.Fatalf("two codes with one text: templates %v", tm)
	}
	// B changes its text: A's template keeps A's text.
	var edited livecode.Code
	if st := call(t, "PUT", fmt.Sprintf("%s/api/v1/codes/%d", s.url, b.ID), admin, map[string]any{"name": "B", "version": b.Version,
		"settings": map[string]any{"groups": []map[string]any{{"chat_id": g2}}, "group_welcome": map[string]any{"text": "Hello B"}}}, &edited); st != http.StatusOK {
		t.Fatalf("edit B: %d", st)
	}
	tm := templates()
	if len(tm) != 2 || tm[a.Settings.GroupWelcomeTemplate] != "Welcome!" || tm[edited.Settings.GroupWelcomeTemplate] != "Hello B" {
		t.Fatalf("after B's edit: %v (A %s, B %s)", tm, a.Settings.GroupWelcomeTemplate, edited.Settings.GroupWelcomeTemplate)
	}
	// B goes back to A's text: it shares A's template again and its own is deleted.
	if st := call(t, "PUT", fmt.Sprintf("%s/api/v1/codes/%d", s.url, b.ID), admin, map[string]any{"name": "B", "version": edited.Version,
		"settings": map[string]any{"groups": []map[string]any{{"chat_id": g2}}, "group_welcome": map[string]any{"text": "Welcome!"}}}, &edited); st != http.StatusOK {
		t.Fatalf("edit B back: %d", st)
	}
	if tm := templates(); len(tm) != 1 || edited.Settings.GroupWelcomeTemplate != a.Settings.GroupWelcomeTemplate {
		t.Fatalf("after B's edit back: %v", tm)
	}
	// Archiving A keeps the template B uses; archiving B deletes it.
	call(t, "POST", fmt.Sprintf("%s/api/v1/codes/%d/archive", s.url, a.ID), admin, nil, nil)
	if len(templates()) != 1 {
		t.Fatal("archiving A deleted the template B uses")
	}
	call(t, "POST", fmt.Sprintf("%s/api/v1/codes/%d/archive", s.url, b.ID), admin, nil, nil)
	if tm := templates(); len(tm) != 0 {
		t.Fatalf("after archiving both: %v", tm)
	}
}
