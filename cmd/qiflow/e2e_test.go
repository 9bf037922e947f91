package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/handlers"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/fake"
)

const e2eCorp = "wwe2etestcorp01"

// Tencent's official sample corp, to check the vector through the real endpoint.
var officialCorp = configs.CorpConfig{ID: "wx5823bf96d3bd56c7", Secret: "unused", Token: "QDG6eK",
	AESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", TimeZone: "Asia/Shanghai"}

type stack struct {
	t    testing.TB
	app  *app
	fake *fake.Fake
	url  string
	seen *seenEvents
}

// seenEvents is a test subscriber's record of the typed events it was handed.
type seenEvents struct {
	mu     sync.Mutex
	events []wecom.Event
}

func (s *seenEvents) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if wecom.Type(e) == kind {
			n++
		}
	}
	return n
}

func testLogger() *slog.Logger {
	if os.Getenv("QIFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// backends runs fn on SQLite + embedded Redis, and on MySQL + real Redis when
// the test servers are configured.
func backends(t *testing.T, fn func(t *testing.T, driver string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite") })
	if os.Getenv("QIFLOW_TEST_MYSQL_DSN") != "" {
		t.Run("mysql", func(t *testing.T) { fn(t, "mysql") })
	}
}

func testConfig(t testing.TB, driver string) configs.Config {
	cfg := configs.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Sandbox = "off"
	cfg.Inbox.Lease = configs.Duration{Duration: 5 * time.Second}
	cfg.Admin = configs.AdminConfig{Email: "admin@example.com", Password: "admin password"}
	cfg.DB.Driver = driver
	if driver == "mysql" {
		cfg.DB.DSN = sqltest.MySQLDSN(t)
		cfg.Redis.Addr = os.Getenv("QIFLOW_TEST_REDIS_ADDR")
	} else {
		cfg.DB.DSN = filepath.Join(cfg.DataDir, "qiflow.db")
	}
	cfg.Redis.Prefix = fmt.Sprintf("qiflowe2e:%d:", time.Now().UnixNano())
	return cfg
}

// startStack runs the fake WeCom and a real qiflow server wired to it.
func startStack(t *testing.T, driver string) *stack {
	t.Helper()
	return startStackWith(t, driver, nil)
}

// startStackWith is startStack with the e2e corp's configuration changed
// by edit (a calendar, say) first.
func startStackWith(t testing.TB, driver string, edit func(*configs.CorpConfig)) *stack {
	t.Helper()
	return startStackConfig(t, driver, edit, nil)
}

// startStackConfig is startStackWith with the whole configuration changed
// by editConfig too (after the fake's address is set).
func startStackConfig(t testing.TB, driver string, edit func(*configs.CorpConfig), editConfig func(*configs.Config)) *stack {
	t.Helper()
	f, base := fake.StartForTest(t, e2eCorp, true)
	spec := fake.SandboxCorp
	cfg := testConfig(t, driver)
	cfg.WeCom.APIBase = base
	cfg.WeCom.OAuthBase, cfg.WeCom.JSSDK = base, "sandbox"
	if editConfig != nil {
		editConfig(&cfg)
	}
	corp := configs.CorpConfig{ID: e2eCorp, Name: "E2E", Secret: spec.Secret, AgentID: spec.AgentID, Token: spec.Token, AESKey: spec.AESKey, TimeZone: "Asia/Shanghai"}
	if edit != nil {
		edit(&corp)
	}
	cfg.WeCom.Corps = []configs.CorpConfig{corp, officialCorp}
	a, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := &seenEvents{}
	jobs.On(a.bus, jobs.Subscription[wecom.Event]{Name: "test.recorder", Types: []string{"change_external_contact/*", "change_external_chat/*", "change_external_tag/*", "text"}, Handle: func(ctx context.Context, d jobs.Delivery, ev wecom.Event) error {
		seen.mu.Lock()
		seen.events = append(seen.events, ev)
		seen.mu.Unlock()
		return nil
	}})
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.shutdown(ctx)
	})
	u := "http://" + a.addr()
	f.SetCallbackURL(e2eCorp, u+"/wecom/callback/"+e2eCorp)
	return &stack{t: t, app: a, fake: f, url: u, seen: seen}
}

func (s *stack) count(q string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.app.db.Get(&n, q, args...); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// settled waits until every delivery on the bus is finished (done, dead or
// dismissed): after it, nothing more will happen unless something new
// arrives, so a test can assert that something happened only once.
func (s *stack) settled() {
	s.t.Helper()
	waitUntil(s.t, "every delivery to finish", func() bool {
		return s.count("SELECT COUNT(*) FROM bus_deliveries WHERE status = ?", jobs.StatusQueued) == 0
	})
}

// waitProgress waits until measure reaches want, failing only when it
// stops moving for a while: a loaded machine may take long, but a stuck one
// does not take forever.
func waitProgress(t *testing.T, what string, want int, measure func() int) {
	t.Helper()
	last, moved := measure(), time.Now()
	for last < want {
		if time.Since(moved) > 30*time.Second {
			t.Fatalf("timed out waiting for %s: stuck at %d of %d", what, last, want)
		}
		time.Sleep(50 * time.Millisecond)
		if n := measure(); n != last {
			last, moved = n, time.Now()
		}
	}
}

// quiet waits until the bus is settled and no live code is due for, or in,
// a reconcile: everything the events caused has happened.
func (s *stack) quiet() {
	s.t.Helper()
	s.settled()
	waitUntil(s.t, "every reconcile to finish", func() bool {
		return s.count("SELECT COUNT(*) FROM live_codes WHERE reconcile_token <> '' OR (reconcile_at IS NOT NULL AND reconcile_at <= ?)", time.Now().UnixMilli()) == 0
	})
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitUntilFor(t, 15*time.Second, what, cond)
}

// waitUntilFor is waitUntil with its own deadline (a lease to run out).
func waitUntilFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call sends a JSON request with an optional bearer token and decodes the answer.
func call(t testing.TB, method, u, token string, body any, out any) int {
	t.Helper()
	return callWith(t, method, u, token, nil, body, out)
}

// callWith is call with more request headers.
func callWith(t testing.TB, method, u, token string, headers map[string]string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func login(t testing.TB, base, email, password string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	if st := call(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, &out); st != 200 {
		t.Fatalf("login %s: %d", email, st)
	}
	return out.Token
}

func TestE2E_OfficialVectorThroughTheRealEndpoint(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		cb := s.url + "/wecom/callback/" + officialCorp.ID
		q := url.Values{"msg_signature": {"5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"}, "timestamp": {"1409659589"}, "nonce": {"263014780"},
			"echostr": {"P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="}}
		resp, err := http.Get(cb + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "1616140317555161061" {
			t.Fatalf("GET verification: %d %q", resp.StatusCode, body)
		}
		post := `<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>`
		postQ := "?msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149"
		// A wrong signature stores nothing.
		r, _ := http.Post(cb+strings.Replace(postQ, "477715", "577715", 1), "text/xml", strings.NewReader(post))
		r.Body.Close()
		if r.StatusCode != http.StatusUnauthorized || s.count("SELECT COUNT(*) FROM bus_events") != 0 {
			t.Fatalf("wrong signature: %d, %d rows", r.StatusCode, s.count("SELECT COUNT(*) FROM bus_events"))
		}
		for i := 0; i < 3; i++ {
			r, _ := http.Post(cb+postQ, "text/xml", strings.NewReader(post))
			r.Body.Close()
			if r.StatusCode != 200 {
				t.Fatalf("official POST: %d", r.StatusCode)
			}
		}
		if n := s.count("SELECT COUNT(*) FROM bus_events WHERE corp_id = ?", officialCorp.ID); n != 1 {
			t.Fatalf("official POST three times: %d rows", n)
		}
		waitUntil(t, "the raw event to be processed", func() bool { return s.seen.count("text") == 1 })
	})
}

func TestE2E_CustomerAddsStaff(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		ctx := context.Background()
		res, err := s.fake.Add(ctx, e2eCorp, "zhangsan", fake.Customer{Name: "Ann Customer"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Callback.OK || res.Callback.Attempts != 1 {
			t.Fatalf("callback: %+v", res.Callback)
		}
		add := wecom.EventExternalContact + "/" + wecom.ChangeAddExternalContact
		waitUntil(t, "the subscriber to see the add", func() bool { return s.seen.count(add) == 1 })
		waitUntil(t, "the follow relation", func() bool {
			return s.count("SELECT COUNT(*) FROM follow_relations WHERE corp_id = ? AND external_userid = ? AND userid = 'zhangsan' AND deleted_at IS NULL", e2eCorp, res.ExternalUserID) == 1
		})
		// WeCom's retries and replays of the same event: no second row, no second effect.
		x := fmt.Sprintf(`<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[edit_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[%s]]></ExternalUserID></xml>`,
			e2eCorp, time.Now().Unix(), res.ExternalUserID)
		for i := 0; i < 3; i++ {
			if d, err := s.fake.Post(ctx, e2eCorp, []byte(x)); err != nil || !d.OK {
				t.Fatalf("post %d: %+v %v", i, d, err)
			}
		}
		edit := wecom.EventExternalContact + "/" + wecom.ChangeEditExternalContact
		waitUntil(t, "the edit", func() bool { return s.seen.count(edit) == 1 })
		s.settled()
		if n := s.seen.count(edit); n != 1 {
			t.Fatalf("the same callback three times was processed %d times", n)
		}
		if n := s.count("SELECT COUNT(*) FROM bus_events WHERE change_type = 'edit_external_contact'"); n != 1 {
			t.Fatalf("%d event rows for one event", n)
		}
		if s.seen.count(add) != 1 {
			t.Fatal("the add was processed twice")
		}

		// The contact, fetched from the fake through the client, is visible over the API.
		admin := login(t, s.url, "admin@example.com", "admin password")
		var contact struct {
			Name    string `json:"name"`
			Follows []struct {
				UserID    string `json:"userid"`
				AddWay    int    `json:"add_way"`
				DeletedAt *int64 `json:"deleted_at"`
			} `json:"follows"`
		}
		if st := call(t, "GET", s.url+"/api/v1/contacts/"+res.ExternalUserID, admin, nil, &contact); st != 200 {
			t.Fatalf("GET contact: %d", st)
		}
		if contact.Name != "Ann Customer" || len(contact.Follows) != 1 || contact.Follows[0].UserID != "zhangsan" || contact.Follows[0].AddWay != 1 {
			t.Fatalf("contact: %+v", contact)
		}
		// The customer deletes the staff member: recorded, not erased.
		if d, err := s.fake.CustomerDeletesStaff(ctx, e2eCorp, res.ExternalUserID, "zhangsan"); err != nil || !d.OK {
			t.Fatalf("delete: %+v %v", d, err)
		}
		waitUntil(t, "the loss to be recorded", func() bool {
			return s.count("SELECT COUNT(*) FROM follow_relations WHERE external_userid = ? AND deleted_by = 'customer'", res.ExternalUserID) == 1
		})
		// The events API shows each event with its decoded payload and per-subscriber outcome.
		var page struct {
			Events []struct {
				ChangeType string          `json:"change_type"`
				Status     string          `json:"status"`
				Payload    json.RawMessage `json:"payload"`
				Deliveries []struct {
					Subscriber string `json:"subscriber"`
					Status     string `json:"status"`
					Attempts   int    `json:"attempts"`
				} `json:"deliveries"`
			} `json:"events"`
		}
		waitUntil(t, "every event done", func() bool {
			call(t, "GET", s.url+"/api/v1/events?change_type=add_external_contact", admin, nil, &page)
			return len(page.Events) == 1 && page.Events[0].Status == "done"
		})
		if len(page.Events[0].Deliveries) != 3 || !strings.Contains(string(page.Events[0].Payload), res.ExternalUserID) {
			t.Fatalf("event view: %+v", page.Events[0])
		}
	})
}

func TestE2E_BadCallbacksAreRejectedAndStoreNothing(t *testing.T) {
	s := startStack(t, "sqlite")
	cb := s.url + "/wecom/callback/" + e2eCorp
	spec := fake.SandboxCorp
	cr := wecom.Crypto{Token: spec.Token, AESKey: spec.AESKey, ReceiverID: e2eCorp}
	post := func(u string, body []byte) int {
		r, err := http.Post(u, "text/xml", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	sealed := func(plain string) (string, []byte) {
		body, sig, ts, nonce, _ := cr.Seal([]byte(plain), time.Now())
		return "?" + url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}.Encode(), body
	}
	// Over 1 MiB.
	if st := post(cb, bytes.Repeat([]byte("x"), 1<<20+10)); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("large body: %d", st)
	}
	// Signed but not decryptable.
	garbage := "AAAA" + strings.Repeat("B", 60)
	q := "?" + url.Values{"msg_signature": {cr.Sign("1", "2", garbage)}, "timestamp": {"1"}, "nonce": {"2"}}.Encode()
	if st := post(cb+q, []byte("<xml><Encrypt>"+garbage+"</Encrypt></xml>")); st != http.StatusBadRequest {
		t.Fatalf("undecryptable: %d", st)
	}
	// Decryptable, but the XML inside is malformed.
	q, body := sealed("<xml><ToUserName>broken")
	if st := post(cb+q, body); st != http.StatusBadRequest {
		t.Fatalf("malformed xml: %d", st)
	}
	// A typed event missing what identifies it.
	q, body = sealed(`<xml><ToUserName>` + e2eCorp + `</ToUserName><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType></xml>`)
	if st := post(cb+q, body); st != http.StatusBadRequest {
		t.Fatalf("event without ids: %d", st)
	}
	if st := post(s.url+"/wecom/callback/wwnosuchcorp"+q, body); st != http.StatusNotFound {
		t.Fatalf("unknown corp: %d", st)
	}
	// Two corps are configured: the bare path cannot tell which.
	if st := post(s.url+"/wecom/callback"+q, body); st != http.StatusNotFound {
		t.Fatalf("bare path with two corps: %d", st)
	}
	if n := s.count("SELECT COUNT(*) FROM bus_events"); n != 0 {
		t.Fatalf("bad callbacks stored %d rows", n)
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	call(t, "POST", cb+"?msg_signature=bad&timestamp=1&nonce=1", "", nil, &e)
	if e.Error.Code != "malformed" {
		t.Fatalf("error body: %+v", e)
	}
}

func TestE2E_RoleRouteMatrix(t *testing.T) {
	s := startStack(t, "sqlite")
	ctx := context.Background()
	tokens := map[auth.Role]string{}
	for _, r := range auth.Roles {
		email := string(r) + "-user@example.com"
		if _, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: email, Password: "password " + string(r), CorpID: e2eCorp, Role: r}); err != nil {
			t.Fatal(err)
		}
		tokens[r] = login(t, s.url, email, "password "+string(r))
	}
	_, srv := handlers.New(handlers.Deps{})
	for _, rt := range srv.Routes() {
		path := strings.NewReplacer(":id", "999999", ":role", "sdr", ":permission", "pii").Replace(rt.Path)
		// Without a token every route is closed.
		if st := call(t, rt.Method, s.url+"/api/v1"+path, "", map[string]any{}, nil); st != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d", rt.Method, rt.Path, st)
		}
		for _, role := range auth.Roles {
			if rt.Path == "/auth/logout" {
				continue // would end the session the loop uses
			}
			perms, _ := s.app.auth.RolePermissions(ctx, e2eCorp, role)
			st := call(t, rt.Method, s.url+"/api/v1"+path, tokens[role], map[string]any{}, nil)
			allowed := rt.Perm == "" || perms[rt.Perm]
			if allowed && (st == http.StatusForbidden || st == http.StatusUnauthorized) {
				t.Errorf("%s %s as %s: %d, want access", rt.Method, rt.Path, role, st)
			}
			if !allowed && st != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d, want 403", rt.Method, rt.Path, role, st)
			}
		}
	}
	// Acting in a corp the user does not belong to is refused.
	req, _ := http.NewRequest("GET", s.url+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tokens[auth.RoleAdmin])
	req.Header.Set(handlers.CorpHeader, "wwsomeothercorp")
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign corp header: %d", resp.StatusCode)
	}
	// Logout ends the session.
	call(t, "POST", s.url+"/api/v1/auth/logout", tokens[auth.RoleCS], nil, nil)
	if st := call(t, "GET", s.url+"/api/v1/me", tokens[auth.RoleCS], nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", st)
	}
	// pii: a cs user sees staff mobiles masked, an sdr sees them whole.
	if _, err := s.app.dir.EnsureCorp(ctx, e2eCorp, "E2E", "Asia/Shanghai"); err != nil {
		t.Fatal(err)
	}
	s.app.db.Exec(`INSERT INTO staff (corp_id, userid, name, mobile, synced_at, created_at) VALUES (?, 'u1', 'U', '13800001234', 1, 1)`, e2eCorp)
	mobileOf := func(token string) string {
		var staff struct {
			Staff []struct {
				UserID string `json:"userid"`
				Mobile string `json:"mobile"`
			} `json:"staff"`
		}
		call(t, "GET", s.url+"/api/v1/staff", token, nil, &staff)
		for _, x := range staff.Staff {
			if x.UserID == "u1" {
				return x.Mobile
			}
		}
		return ""
	}
	if m := mobileOf(tokens[auth.RoleMarketer]); m != "138****1234" {
		t.Fatalf("marketer sees %q, want it masked", m)
	}
	if m := mobileOf(tokens[auth.RoleSDR]); m != "13800001234" {
		t.Fatalf("sdr sees %q, want it whole", m)
	}
}

func TestE2E_SandboxWorldSurvivesRestart(t *testing.T) {
	cfg := testConfig(t, "sqlite")
	cfg.Sandbox = "auto"
	cfg.SandboxAddr = "127.0.0.1:0"
	cfg.Admin = configs.AdminConfig{}
	ctx := context.Background()
	a, err := newApp(ctx, cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	// The first start imports the demo corp and writes the admin password file.
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "admin-password.txt")); err != nil {
		t.Fatalf("admin password file: %v", err)
	}
	waitUntil(t, "the initial import", func() bool {
		var n int
		a.db.Get(&n, "SELECT COUNT(*) FROM staff WHERE corp_id = ?", fake.SandboxCorpID)
		return n == 7
	})
	res, err := a.fake.Add(ctx, fake.SandboxCorpID, "lisi", fake.Customer{Name: "Persistent Pat"}, 1)
	if err != nil || !res.Callback.OK {
		t.Fatalf("add: %+v %v", res, err)
	}
	waitUntil(t, "the contact", func() bool {
		var n int
		a.db.Get(&n, "SELECT COUNT(*) FROM external_contacts WHERE external_userid = ?", res.ExternalUserID)
		return n == 1
	})
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	a.shutdown(sctx)
	cancel()

	b, err := newApp(ctx, cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	defer b.shutdown(context.Background())
	found := false
	b.fake.Inspect(fake.SandboxCorpID, func(c *fake.Corp) { found = c.Customers[res.ExternalUserID] != nil })
	if !found {
		t.Fatal("the sandbox forgot its customer across a restart")
	}
	var n int
	b.db.Get(&n, "SELECT COUNT(*) FROM external_contacts WHERE external_userid = ?", res.ExternalUserID)
	if n != 1 {
		t.Fatal("the database forgot the contact across a restart")
	}
	// The restarted sandbox still posts to the (new) server.
	res2, err := b.fake.Add(ctx, fake.SandboxCorpID, "lisi", fake.Customer{}, 1)
	if err != nil || !res2.Callback.OK {
		t.Fatalf("after restart: %+v %v", res2.Callback, err)
	}
}
