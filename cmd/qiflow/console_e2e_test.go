package main

import (
	"bytes"
	"context"
	"html"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/handlers"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom/fake"
)

// consoleUser is a console user: a cookie jar, the page's CSRF token and the
// language it asks for.
type consoleUser struct {
	t      testing.TB
	base   string
	client *http.Client
	csrf   string
	lang   string
}

var csrfInPage = regexp.MustCompile(`name="_csrf" value="([0-9a-f]+)"`)

func newBrowser(t testing.TB, base, lang string) *consoleUser {
	jar, _ := cookiejar.New(nil)
	return &consoleUser{t: t, base: base, lang: lang, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request as the console's pages and htmx do; it returns the
// status, the body and the response's headers.
func (b *consoleUser) do(method, path string, form url.Values, htmx, withCSRF bool) (int, string, http.Header) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept-Language", b.lang)
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	if withCSRF && b.csrf != "" {
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if m := csrfInPage.FindStringSubmatch(string(raw)); m != nil {
		b.csrf = m[1]
	}
	return resp.StatusCode, string(raw), resp.Header
}

// signIn signs in through the sign-in form and loads the home page.
func (b *consoleUser) signIn(email, password string) {
	b.t.Helper()
	if st, _, _ := b.do("GET", "/console/login", nil, false, false); st != http.StatusOK {
		b.t.Fatalf("sign-in page: %d", st)
	}
	st, _, h := b.do("POST", "/console/login", url.Values{"email": {email}, "password": {password}, "_csrf": {b.csrf}, "next": {"/console"}}, false, false)
	if st != http.StatusSeeOther || h.Get("Location") != "/console" {
		b.t.Fatalf("sign in %s: %d to %q", email, st, h.Get("Location"))
	}
	if st, _, _ := b.do("GET", "/console", nil, false, false); st != http.StatusOK {
		b.t.Fatalf("home after sign-in: %d", st)
	}
}

func TestE2E_ConsoleSignInSecurityAndRoleRouteMatrix(t *testing.T) {
	s := startStack(t, "sqlite")
	ctx := context.Background()
	browsers := map[auth.Role]*consoleUser{}
	for _, r := range auth.Roles {
		email := string(r) + "-console@example.com"
		if _, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: email, Password: "password " + string(r), CorpID: e2eCorp, Role: r}); err != nil {
			t.Fatal(err)
		}
		browsers[r] = newBrowser(t, s.url, "en")
		browsers[r].signIn(email, "password "+string(r))
	}

	// The sign-in page sets the security headers; its form is refused
	// without the token its cookie carries, and a wrong password says so.
	anon := newBrowser(t, s.url, "en")
	st, _, h := anon.do("GET", "/console/login", nil, false, false)
	if st != http.StatusOK || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("sign-in page: %d, CSP %q", st, h.Get("Content-Security-Policy"))
	}
	if st, _, _ := anon.do("POST", "/console/login", url.Values{"email": {"admin-console@example.com"}, "password": {"password admin"}}, false, false); st != http.StatusForbidden {
		t.Fatalf("sign-in without the CSRF token: %d", st)
	}
	st, body, _ := anon.do("POST", "/console/login", url.Values{"email": {"admin-console@example.com"}, "password": {"wrong"}, "_csrf": {anon.csrf}}, false, false)
	if st != http.StatusUnauthorized || !strings.Contains(body, "The email or password is not right.") {
		t.Fatalf("wrong password: %d", st)
	}
	// Sign-in attempts on one account are limited, as on the API.
	var last int
	for range 11 {
		last, _, _ = anon.do("POST", "/console/login", url.Values{"email": {"guess@example.com"}, "password": {"wrong"}, "_csrf": {anon.csrf}}, false, false)
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("the 11th wrong password: %d, want 429", last)
	}
	// The session cookie is HttpOnly and SameSite=Lax.
	resp, err := http.PostForm(s.url+"/console/login", url.Values{"email": {"x@example.com"}})
	if err == nil {
		resp.Body.Close()
	}
	jarURL, _ := url.Parse(s.url)
	signedIn := browsers[auth.RoleAdmin]
	if len(signedIn.client.Jar.Cookies(jarURL)) == 0 {
		t.Fatal("no session cookie kept")
	}
	req, _ := http.NewRequest("GET", s.url+"/console/login", nil)
	anonResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	anonResp.Body.Close()
	for _, c := range anonResp.Cookies() {
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookie %s: HttpOnly %v SameSite %v", c.Name, c.HttpOnly, c.SameSite)
		}
	}

	// Not signed in: every console route sends to the sign-in page (htmx
	// by HX-Redirect) and changes nothing.
	_, srv := handlers.New(handlers.Deps{})
	for _, rt := range srv.ConsoleRoutes() {
		path := strings.NewReplacer(":id", "999999").Replace(rt.Path)
		st, _, h := anon.do(rt.Method, path, url.Values{}, false, true)
		if st != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/login") {
			t.Errorf("%s %s signed out: %d to %q", rt.Method, rt.Path, st, h.Get("Location"))
		}
		if st, _, h := anon.do(rt.Method, path, url.Values{}, true, true); st != http.StatusUnauthorized || h.Get("HX-Redirect") != "/console/login" {
			t.Errorf("%s %s signed out, htmx: %d %q", rt.Method, rt.Path, st, h.Get("HX-Redirect"))
		}
	}
	// Signed in: each role reaches what its permissions allow and nothing
	// else; a change without the CSRF token is refused whoever sends it.
	for _, rt := range srv.ConsoleRoutes() {
		if rt.Path == "/console/logout" {
			continue // would end the session the loop uses
		}
		path := strings.NewReplacer(":id", "999999").Replace(rt.Path)
		for _, role := range auth.Roles {
			b := browsers[role]
			perms, _ := s.app.auth.RolePermissions(ctx, e2eCorp, role)
			allowed := rt.Perm == "" || perms[rt.Perm]
			st, body, _ := b.do(rt.Method, path, url.Values{}, true, true)
			if allowed && (st == http.StatusForbidden || st == http.StatusUnauthorized) {
				t.Errorf("%s %s as %s: %d, want access", rt.Method, rt.Path, role, st)
			}
			if !allowed && (st != http.StatusForbidden || !strings.Contains(body, "lacks the "+string(rt.Perm))) {
				t.Errorf("%s %s as %s: %d %q, want 403 naming the permission", rt.Method, rt.Path, role, st, body)
			}
			if rt.Method != "GET" {
				if st, body, _ := b.do(rt.Method, path, url.Values{}, true, false); st != http.StatusForbidden || !strings.Contains(body, "expired") {
					t.Errorf("%s %s as %s without the CSRF token: %d", rt.Method, rt.Path, role, st)
				}
			}
		}
	}
	// An upload carries its token in the header: the form's field would
	// need the whole file read first, so it is not looked for.
	admin := browsers[auth.RoleAdmin]
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("_csrf", admin.csrf)
	mw.WriteField("mapping", `{"手机":"mobile"}`)
	fw, _ := mw.CreateFormFile("file", "a.csv")
	fw.Write([]byte("手机\n13912345678\n"))
	mw.Close()
	for _, withHeader := range []bool{false, true} {
		req, _ := http.NewRequest("POST", s.url+"/console/imports", bytes.NewReader(form.Bytes()))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("HX-Request", "true")
		if withHeader {
			req.Header.Set("X-CSRF-Token", admin.csrf)
		}
		resp, err := admin.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusForbidden, true: http.StatusNoContent}[withHeader]; resp.StatusCode != want ||
			(withHeader && !strings.HasPrefix(resp.Header.Get("HX-Redirect"), "/console/imports/")) {
			t.Fatalf("upload with the CSRF header %v: %d %q", withHeader, resp.StatusCode, resp.Header.Get("HX-Redirect"))
		}
	}

	// The menu shows what the role may open: a sales rep has the inbox, a
	// customer-service user neither the inbox nor the pool's claim.
	if _, body, _ := browsers[auth.RoleSales].do("GET", "/console", nil, false, false); !strings.Contains(body, `href="/console/inbox"`) {
		t.Error("sales home without the inbox in the menu")
	}
	if _, body, _ := browsers[auth.RoleCS].do("GET", "/console", nil, false, false); strings.Contains(body, `href="/console/inbox"`) {
		t.Error("cs home shows the inbox")
	}

	// A user of two corps switches between them: the menu offers both and
	// the pages act in the chosen one; a corp they are not in is refused.
	marketer, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: "two@example.com", Password: "password two", CorpID: e2eCorp, Role: auth.RoleMarketer})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.app.auth.AddMembership(ctx, auth.Membership{UserID: marketer.ID, CorpID: officialCorp.ID, Role: auth.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	two := newBrowser(t, s.url, "en")
	two.signIn("two@example.com", "password two")
	if _, body, _ := two.do("GET", "/console", nil, false, false); !strings.Contains(body, `name="corp"`) || !strings.Contains(body, officialCorp.ID) || strings.Contains(body, "/console/settings/users") {
		t.Fatal("the corp switcher is not offered, or the marketer sees admin pages")
	}
	if st, _, _ := two.do("POST", "/console/corp", url.Values{"corp": {officialCorp.ID}, "_csrf": {two.csrf}}, false, false); st != http.StatusSeeOther {
		t.Fatalf("switch corp: %d", st)
	}
	if _, body, _ := two.do("GET", "/console", nil, false, false); !strings.Contains(body, officialCorp.ID+" · admin") || !strings.Contains(body, "/console/settings/users") {
		t.Fatal("the pages do not act in the chosen corp")
	}
	if st, _, _ := two.do("POST", "/console/corp", url.Values{"corp": {"wwnotmine"}, "_csrf": {two.csrf}}, false, false); st != http.StatusUnprocessableEntity {
		t.Fatalf("switch to a foreign corp: %d", st)
	}

	// Chinese unless the user or the browser says otherwise; the choice
	// is kept per user.
	zh := newBrowser(t, s.url, "")
	zh.signIn("marketer-console@example.com", "password marketer")
	if _, body, _ := zh.do("GET", "/console", nil, false, false); !strings.Contains(body, `lang="zh-CN"`) || !strings.Contains(body, "工作台") {
		t.Fatal("the default language is not Chinese")
	}
	if st, _, _ := zh.do("POST", "/console/lang", url.Values{"lang": {"en"}, "_csrf": {zh.csrf}}, false, false); st != http.StatusSeeOther {
		t.Fatalf("choose English: %d", st)
	}
	if _, body, _ := zh.do("GET", "/console", nil, false, false); !strings.Contains(body, `lang="en"`) || !strings.Contains(body, "Home") {
		t.Fatal("the chosen language is not kept")
	}
	// Signing out ends the session: its cookie no longer signs in.
	if st, _, _ := zh.do("POST", "/console/logout", url.Values{"_csrf": {zh.csrf}}, false, false); st != http.StatusSeeOther {
		t.Fatalf("sign out: %d", st)
	}
	if st, _, _ := zh.do("GET", "/console", nil, false, false); st != http.StatusSeeOther {
		t.Fatalf("after signing out: %d", st)
	}
}

func TestE2E_ConsolePoolClaimRaceAndInbox(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		{
			s := startStack(t, driver)
			users := createUsers(t, s, map[string]auth.Role{"sdr1": auth.RoleSDR, "sdr2": auth.RoleSDR, "rep": auth.RoleSales})
			admin := login(t, s.url, "admin@example.com", "admin password")
			var created struct {
				Lead leads.Lead `json:"lead"`
			}
			if st := call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "张三", "mobile": "13912345678"}, &created); st != http.StatusCreated {
				t.Fatalf("create lead: %d", st)
			}
			lead := created.Lead
			sdr1, sdr2 := newBrowser(t, s.url, "en"), newBrowser(t, s.url, "zh-CN")
			sdr1.signIn("sdr1@example.com", "password sdr1")
			sdr2.signIn("sdr2@example.com", "password sdr2")
			// Both SDRs see the lead unclaimed with a claim button.
			for _, b := range []*consoleUser{sdr1, sdr2} {
				st, body, _ := b.do("GET", "/console/pool?owner=none", nil, false, false)
				if st != http.StatusOK || !strings.Contains(body, "张三") || !strings.Contains(body, "/console/leads/"+itoa(lead.ID)+"/claim") {
					t.Fatalf("pool page: %d", st)
				}
			}
			// Found by the start of the name or by the mobile however written.
			for _, q := range []string{"张", "139 1234 5678"} {
				if _, body, _ := sdr1.do("GET", "/console/people?q="+url.QueryEscape(q), nil, false, false); !strings.Contains(body, `href="/console/leads/`+itoa(lead.ID)+`"`) {
					t.Fatalf("search %q did not find the lead", q)
				}
			}
			// The filter's htmx request answers the table alone.
			if _, body, _ := sdr1.do("GET", "/console/pool?owner=none&grade=A", nil, true, false); strings.Contains(body, "<html") || !strings.Contains(body, `id="pool-table"`) || strings.Contains(body, "张三") {
				t.Fatal("the filtered table: a whole page, or the lead of another grade")
			}
			st, body, _ := sdr1.do("POST", "/console/leads/"+itoa(lead.ID)+"/claim", url.Values{}, true, true)
			if st != http.StatusOK || !strings.Contains(body, "Claimed") || strings.Contains(body, "<html") {
				t.Fatalf("claim: %d %s", st, body)
			}
			// The second SDR's claim is refused with a message, in Chinese
			// for this one, into the page's message area.
			st, body, h := sdr2.do("POST", "/console/leads/"+itoa(lead.ID)+"/claim", url.Values{}, true, true)
			if st != http.StatusConflict || !strings.Contains(body, "该线索刚刚被同事认领了") || h.Get("HX-Retarget") != "#messages" {
				t.Fatalf("lost claim: %d %q %q", st, body, h.Get("HX-Retarget"))
			}
			// Bulk claim within the pool's cap: with at most two open leads
			// each, the second SDR gets two of three ticked and is told why
			// not the third.
			var pools struct {
				Pools []leads.Pool `json:"pools"`
			}
			call(t, "GET", s.url+"/api/v1/pools", admin, nil, &pools)
			if st := call(t, "PUT", s.url+"/api/v1/pools/"+itoa(pools.Pools[0].ID), admin, map[string]any{"name": pools.Pools[0].Name, "max_open": 2}, nil); st != http.StatusOK {
				t.Fatalf("cap the pool: %d", st)
			}
			bulk := url.Values{}
			for i := range 3 {
				var more struct {
					Lead leads.Lead `json:"lead"`
				}
				call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "bulk", "mobile": "1391234560" + itoa(int64(i))}, &more)
				bulk.Add("lead", itoa(more.Lead.ID))
			}
			st, body, h = sdr2.do("POST", "/console/leads/claim", bulk, true, true)
			if st != http.StatusOK || h.Get("HX-Retarget") != "#messages" || !strings.Contains(body, "已认领 2 条") || !strings.Contains(body, "1 条未认领") || strings.Count(body, `hx-swap-oob="true"`) != 2 {
				t.Fatalf("bulk claim: %d %s", st, body)
			}
			// A saved view is the filter, kept per user.
			if st, _, h := sdr2.do("POST", "/console/views", url.Values{"name": {"Unclaimed A"}, "query": {"owner=none&grade=A"}, "_csrf": {sdr2.csrf}}, false, false); st != http.StatusSeeOther || h.Get("Location") != "/console/pool?grade=A&owner=none" {
				t.Fatalf("save a view: %d %q", st, h.Get("Location"))
			}
			if _, body, _ := sdr2.do("GET", "/console/pool", nil, false, false); !strings.Contains(body, "Unclaimed A") {
				t.Fatal("the saved view is not on the pool page")
			}
			if _, body, _ := sdr1.do("GET", "/console/pool", nil, false, false); strings.Contains(body, "Unclaimed A") {
				t.Fatal("another SDR sees the view")
			}
			// The SDR logs a call on the lead's page; it shows in the timeline.
			leadPath := "/console/leads/" + itoa(lead.ID)
			if st, _, h := sdr1.do("POST", leadPath+"/touch", url.Values{"kind": {"call"}, "text": {"asked for pricing"}, "_csrf": {sdr1.csrf}}, false, false); st != http.StatusSeeOther || h.Get("Location") != leadPath {
				t.Fatalf("log a call: %d", st)
			}
			if _, body, _ := sdr1.do("GET", leadPath, nil, false, false); !strings.Contains(body, "asked for pricing") {
				t.Fatal("the call is not on the lead's page")
			}
			// An MQL (moved through the API: the console has no stage form
			// yet) is qualified to SQL for the rep on its page; without
			// BANT the page says what is missing and nothing changes.
			sdr1Token := login(t, s.url, "sdr1@example.com", "password sdr1")
			if st := call(t, "POST", s.url+"/api/v1/leads/"+itoa(lead.ID)+"/stage", sdr1Token, map[string]any{"stage": "mql", "reason": "asked for a demo"}, nil); st != http.StatusOK {
				t.Fatalf("to mql: %d", st)
			}
			if _, body, _ := sdr1.do("GET", leadPath, nil, false, false); !strings.Contains(body, leadPath+"/qualify") || !strings.Contains(body, "rep@example.com") {
				t.Fatal("no qualify form with the sales reps on an MQL's page")
			}
			if st, body, _ := sdr1.do("POST", leadPath+"/qualify", url.Values{"budget": {"500k"}, "_csrf": {sdr1.csrf}}, false, false); st != http.StatusUnprocessableEntity || !strings.Contains(body, "authority") {
				t.Fatalf("qualify without BANT: %d", st)
			}
			st, _, h = sdr1.do("POST", leadPath+"/qualify", url.Values{"budget": {"500k"}, "authority": {"CTO"}, "need": {"SCRM"}, "timeline": {"Q1"},
				"note": {"ready for a demo"}, "to_user_id": {itoa(users["rep"])}, "_csrf": {sdr1.csrf}}, false, false)
			if st != http.StatusSeeOther {
				t.Fatalf("qualify: %d", st)
			}
			var handoffs struct {
				Handoffs []leads.Handoff `json:"handoffs"`
			}
			call(t, "GET", s.url+"/api/v1/handoffs", admin, nil, &handoffs)
			if len(handoffs.Handoffs) != 1 || handoffs.Handoffs[0].ToUserID != users["rep"] {
				t.Fatalf("handoffs: %+v", handoffs.Handoffs)
			}
			h1 := handoffs.Handoffs[0]
			rep := newBrowser(t, s.url, "en")
			rep.signIn("rep@example.com", "password rep")
			if _, body, _ := rep.do("GET", "/console", nil, false, false); !strings.Contains(body, "ready for a demo") {
				t.Fatal("the handoff is not on the rep's home page")
			}
			if _, body, _ := rep.do("GET", "/console/inbox", nil, false, false); !strings.Contains(body, "/console/handoffs/"+itoa(h1.ID)+"/accept") {
				t.Fatal("the handoff is not in the inbox")
			}
			st, body, _ = rep.do("POST", "/console/handoffs/"+itoa(h1.ID)+"/accept", url.Values{}, true, true)
			if st != http.StatusOK || !strings.Contains(body, "Accepted") {
				t.Fatalf("accept: %d %s", st, body)
			}
			// Answered twice: the message says it was answered already.
			if st, body, _ := rep.do("POST", "/console/handoffs/"+itoa(h1.ID)+"/reject", url.Values{"reason": {"no"}}, true, true); st != http.StatusConflict || !strings.Contains(body, "answered already") {
				t.Fatalf("second answer: %d %s", st, body)
			}
			var got leads.Lead
			call(t, "GET", s.url+"/api/v1/leads/"+itoa(lead.ID), admin, nil, &struct {
				Lead *leads.Lead `json:"lead"`
			}{&got})
			if got.OwnerUserID != users["rep"] {
				t.Fatalf("after accepting, the lead's owner is %d, want the rep %d", got.OwnerUserID, users["rep"])
			}
		}
	})
}

// Operations in the console: the directory sync's job with its progress,
// a customer's add as an event with each subscriber's outcome, and a dead
// letter replayed from the page (once: a second replay says there is
// nothing to replay).
func TestE2E_ConsoleOperations(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		ctx := context.Background()
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)
		res, err := s.fake.Add(ctx, e2eCorp, "zhangsan", fake.Customer{Name: "Ann Customer"}, 1)
		if err != nil || !res.Callback.OK {
			t.Fatalf("add: %+v %v", res, err)
		}
		subject := "ext:" + res.ExternalUserID
		waitUntil(t, "the add and its intake to be processed", func() bool {
			return s.count("SELECT COUNT(*) FROM bus_events WHERE corp_id = ? AND subject = ? AND type = 'ContactSaved'", e2eCorp, subject) == 1 &&
				s.count("SELECT COUNT(*) FROM bus_deliveries d JOIN bus_events e ON e.id = d.event_id WHERE e.corp_id = ? AND e.subject = ? AND d.status <> 'done'", e2eCorp, subject) == 0
		})
		// The sync queues the lead backfill after it: the page stops polling
		// once every job has finished.
		waitUntil(t, "the sync and the backfill after it to finish", func() bool {
			return s.count("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')") == 0
		})
		b := newBrowser(t, s.url, "en")
		b.signIn("admin@example.com", "admin password")
		if _, body, _ := b.do("GET", "/console/jobs", nil, false, false); !strings.Contains(body, "directory.sync") || !strings.Contains(body, "status-done") || strings.Contains(body, "every 2s") {
			t.Fatal("the finished sync job is not on the jobs page, or the page still polls")
		}
		_, body, _ := b.do("GET", "/console/events", nil, false, false)
		if !strings.Contains(body, subject) || !strings.Contains(body, "ContactAdded") || !strings.Contains(body, "leads.intake") || !strings.Contains(body, "status-done") {
			t.Fatal("the add is not on the events page with its subscribers' outcomes")
		}
		// One of its deliveries gave up.
		var eventID int64
		if err := s.app.db.Get(&eventID, "SELECT MIN(event_id) FROM bus_deliveries d JOIN bus_events e ON e.id = d.event_id WHERE e.corp_id = ? AND e.subject = ?", e2eCorp, subject); err != nil {
			t.Fatal(err)
		}
		if _, err := s.app.db.Exec("UPDATE bus_deliveries SET status = 'dead', last_error = 'boom: the subscriber gave up' WHERE event_id = ?", eventID); err != nil {
			t.Fatal(err)
		}
		if _, body, _ := b.do("GET", "/console", nil, false, false); !strings.Contains(body, "deliveries gave up") {
			t.Fatal("the home page does not warn of the dead letter")
		}
		_, body, _ = b.do("GET", "/console/events?status=dead", nil, false, false)
		if !strings.Contains(body, "boom: the subscriber gave up") || !strings.Contains(body, "/console/events/"+itoa(eventID)+"/replay") {
			t.Fatal("the dead letter is not listed with its error and a replay button")
		}
		st, body, _ := b.do("POST", "/console/events/"+itoa(eventID)+"/replay", url.Values{}, true, true)
		if st != http.StatusOK || !strings.Contains(body, `id="event-`+itoa(eventID)+`"`) || strings.Contains(body, "status-dead") {
			t.Fatalf("replay: %d %s", st, body)
		}
		waitUntil(t, "the replayed deliveries to run again", func() bool {
			return s.count("SELECT COUNT(*) FROM bus_deliveries WHERE event_id = ? AND status <> 'done'", eventID) == 0
		})
		if st, body, _ := b.do("POST", "/console/events/"+itoa(eventID)+"/replay", url.Values{}, true, true); st != http.StatusConflict || !strings.Contains(body, "no dead letters to replay") {
			t.Fatalf("second replay: %d %s", st, body)
		}
	})
}

// Settings in the console: an admin adds a user (the generated password,
// shown once, signs them in), an engagement rule (which queues the rescore)
// and an API token that works on the API; a rule that does not compile is
// refused on the page with the reason. An SDR reads the rules without the
// forms to change them.
func TestE2E_ConsoleSettings(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		b := newBrowser(t, s.url, "en")
		b.signIn("admin@example.com", "admin password")
		st, body, _ := b.do("POST", "/console/settings/users", url.Values{"email": {"mei@example.com"}, "name": {"Mei"}, "role": {"sdr"}, "_csrf": {b.csrf}}, false, false)
		m := regexp.MustCompile(`id="new-password">([^<]+)<`).FindStringSubmatch(body)
		if st != http.StatusCreated || m == nil {
			t.Fatalf("add a user: %d", st)
		}
		mei := newBrowser(t, s.url, "en")
		mei.signIn("mei@example.com", html.UnescapeString(m[1]))
		if _, body, _ := mei.do("GET", "/console/settings/scoring", nil, false, false); strings.Contains(body, "/console/settings/scoring/rules\"") {
			t.Fatal("an SDR is offered the form to add a scoring rule")
		}

		st, body, _ = b.do("POST", "/console/settings/scoring/rules", url.Values{"name": {"webinar"}, "activity_type": {"webinar"}, "condition": {"properties.minutes >="},
			"points": {"10"}, "_csrf": {b.csrf}}, false, false)
		if st != http.StatusUnprocessableEntity || !strings.Contains(body, "condition") {
			t.Fatalf("a rule that does not compile: %d", st)
		}
		if st, _, h := b.do("POST", "/console/settings/scoring/rules", url.Values{"name": {"webinar"}, "activity_type": {"webinar"}, "condition": {"properties.minutes >= 30"},
			"points": {"10"}, "max_points": {"30"}, "repeatable": {"1"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther || h.Get("Location") != "/console/settings/scoring" {
			t.Fatalf("add a rule: %d", st)
		}
		if _, body, _ := mei.do("GET", "/console/settings/scoring", nil, false, false); !strings.Contains(body, "properties.minutes &gt;= 30") {
			t.Fatal("the rule is not listed")
		}
		if _, body, _ := b.do("GET", "/console/jobs", nil, false, false); !strings.Contains(body, "leads.rescore") {
			t.Fatal("no rescore queued after the rule changed")
		}

		// Roles: the marketer is given pii (the cell answers ticked); the
		// admin row cannot be changed.
		st, body, _ = b.do("POST", "/console/settings/roles/marketer/pii", url.Values{"allowed": {"1"}}, true, true)
		if st != http.StatusOK || !strings.Contains(body, "checked") || !strings.Contains(body, `"allowed": "0"`) {
			t.Fatalf("grant pii: %d %s", st, body)
		}
		if perms, _ := s.app.auth.RolePermissions(context.Background(), e2eCorp, auth.RoleMarketer); !perms[auth.PermPII] {
			t.Fatal("the marketer did not get pii")
		}
		if st, _, _ := b.do("POST", "/console/settings/roles/admin/users.manage", url.Values{"allowed": {"0"}}, true, true); st != http.StatusUnprocessableEntity {
			t.Fatalf("taking users.manage from admins: %d", st)
		}
		// Pools: a cap set on the page holds for claims; an SLA rule is added.
		var pools struct {
			Pools []leads.Pool `json:"pools"`
		}
		admin := login(t, s.url, "admin@example.com", "admin password")
		call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "x", "mobile": "13912349999"}, nil)
		call(t, "GET", s.url+"/api/v1/pools", admin, nil, &pools)
		if st, _, _ := b.do("POST", "/console/settings/pools/"+itoa(pools.Pools[0].ID), url.Values{"max_open": {"3"}, "recycle_days": {"5"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("update the pool: %d", st)
		}
		call(t, "GET", s.url+"/api/v1/pools", admin, nil, &pools)
		if pools.Pools[0].MaxOpen != 3 || pools.Pools[0].RecycleDays != 5 {
			t.Fatalf("pool after the page: %+v", pools.Pools[0])
		}
		// A web form made on the page: its hosted page takes fills; a bad
		// link name is refused with what was typed kept.
		formFields := url.Values{"title": {"Spring webinar"}, "slug": {"Bad Slug"}, "channel": {"webinar"}, "consent_text": {"I agree"}, "consent_required": {"1"},
			"field0_name": {"name"}, "field0_label": {"Name"}, "field0_type": {"text"}, "field0_maps_to": {"name"}, "field0_required": {"1"},
			"field1_name": {"mobile"}, "field1_label": {"Mobile"}, "field1_type": {"tel"}, "field1_maps_to": {"mobile"}, "field1_required": {"1"},
			"active": {"1"}, "_csrf": {b.csrf}}
		if st, body, _ := b.do("POST", "/console/settings/forms", formFields, false, false); st != http.StatusUnprocessableEntity || !strings.Contains(body, "slug") || !strings.Contains(body, `value="Spring webinar"`) {
			t.Fatalf("a bad slug: %d", st)
		}
		formFields.Set("slug", "spring-webinar")
		if st, _, _ := b.do("POST", "/console/settings/forms", formFields, false, false); st != http.StatusSeeOther {
			t.Fatalf("create the form: %d", st)
		}
		if st, body, _ := newBrowser(t, s.url, "en").do("GET", "/f/spring-webinar", nil, false, false); st != http.StatusOK || !strings.Contains(body, "Spring webinar") {
			t.Fatalf("the hosted page: %d", st)
		}
		// Teams: one with its manager, then a member; every user sees the
		// work calendar (the default hours when none are configured).
		users, _ := s.app.auth.ListUsers(context.Background(), e2eCorp)
		var adminID, meiID int64
		for _, u := range users {
			switch u.Email {
			case "admin@example.com":
				adminID = u.ID
			case "mei@example.com":
				meiID = u.ID
			}
		}
		if st, _, _ := b.do("POST", "/console/settings/teams", url.Values{"name": {"East SDRs"}, "manager_user_id": {itoa(adminID)}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("create a team: %d", st)
		}
		teams, _ := s.app.auth.Teams(context.Background(), e2eCorp)
		if st, _, _ := b.do("POST", "/console/settings/teams/members", url.Values{"team_id": {itoa(teams[0].ID)}, "user_id": {itoa(meiID)}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("add a member: %d", st)
		}
		if managed, _ := s.app.auth.ManagedUsers(context.Background(), e2eCorp, adminID); len(managed) != 1 || managed[0] != meiID {
			t.Fatalf("the team's members as its manager's: %v", managed)
		}
		if _, body, _ := mei.do("GET", "/console/settings/calendar", nil, false, false); !strings.Contains(body, "Asia/Shanghai") || !strings.Contains(body, "09:00-18:00") ||
			strings.Contains(body, `name="holidays"`) {
			t.Fatal("the work calendar page (read-only for an SDR)")
		}
		// The admin adds a holiday: it is in use at once here, and another
		// instance takes it up from the database; a bad date is refused.
		sh, _ := time.LoadLocation("Asia/Shanghai")
		holiday := time.Date(2027, 2, 16, 12, 0, 0, 0, sh) // a Tuesday
		cal := s.app.calendars[e2eCorp]
		if !cal.IsWorkday(holiday) {
			t.Fatal("the Tuesday is not a workday before")
		}
		week := url.Values{"_csrf": {b.csrf}, "holidays": {"2027-02-16"}}
		for _, d := range []string{"mon", "tue", "wed", "thu", "fri"} {
			week.Set("hours_"+d, "09:00-12:00, 13:00-18:00")
		}
		bad := url.Values{"_csrf": {b.csrf}, "holidays": {"2027-02-30"}, "hours_mon": {"09:00-18:00"}}
		if st, body, _ := b.do("POST", "/console/settings/calendar", bad, false, false); st != http.StatusUnprocessableEntity || !strings.Contains(body, "holidays") {
			t.Fatalf("a bad holiday: %d", st)
		}
		if st, _, _ := b.do("POST", "/console/settings/calendar", week, false, false); st != http.StatusSeeOther {
			t.Fatalf("save the calendar: %d", st)
		}
		if cal.IsWorkday(holiday) || cal.IsWorkingTime(time.Date(2027, 2, 15, 12, 30, 0, 0, sh)) {
			t.Fatal("the new calendar is not in use (the holiday, the lunch break)")
		}
		if _, body, _ := mei.do("GET", "/console/settings/calendar", nil, false, false); !strings.Contains(body, "2027-02-16") || !strings.Contains(body, "13:00-18:00") {
			t.Fatal("the calendar page does not show the calendar in use")
		}
		other, _ := configs.CalendarConfig{}.Compile("Asia/Shanghai")
		s.app.calendars[e2eCorp] = other // another instance, still on the file's
		if err := s.app.loadCalendars(context.Background()); err != nil || other.IsWorkday(holiday) {
			t.Fatalf("another instance did not take up the calendar: %v", err)
		}
		s.app.calendars[e2eCorp] = cal
		// An export from the pool page's link is a CSV, and is audited.
		if st, body, h := b.do("GET", "/console/exports/leads?owner=none", nil, false, false); st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") || !strings.Contains(body, "13912349999") {
			t.Fatalf("export: %d %s", st, h.Get("Content-Type"))
		}
		if _, body, _ := b.do("GET", "/console/exports", nil, false, false); !strings.Contains(body, "owner") {
			t.Fatal("the export is not in the audit")
		}
		// A rule being written previews its hits on the newest leads.
		if st, body, _ := b.do("POST", "/console/settings/scoring/preview?kind=fit", url.Values{"condition": {`title == ""`}}, true, true); st != http.StatusOK || !strings.Contains(body, "Holds for 1 of the 1 newest leads") {
			t.Fatalf("fit preview: %d %s", st, body)
		}
		if _, body, _ := b.do("POST", "/console/settings/scoring/preview?kind=fit", url.Values{"condition": {`title ==`}}, true, true); !strings.Contains(body, "condition") {
			t.Fatalf("a broken condition's preview: %s", body)
		}
		if st, _, _ := b.do("POST", "/console/settings/sla", url.Values{"name": {"first touch"}, "hours": {"4"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("add an SLA rule: %d", st)
		}
		if _, body, _ := b.do("GET", "/console/settings/pools", nil, false, false); !strings.Contains(body, "first touch") {
			t.Fatal("the SLA rule is not listed")
		}
		// An assignment rule: new MQLs to Mei, weighted.
		users, _ = s.app.auth.ListUsers(context.Background(), e2eCorp)
		var meiUser int64
		for _, u := range users {
			if u.Email == "mei@example.com" {
				meiUser = u.ID
			}
		}
		if st, _, _ := b.do("POST", "/console/settings/assignment", url.Values{"kind": {"mql"}, "name": {"all MQLs"}, "strategy": {"weighted"}, "users": {itoa(meiUser)},
			"weight_" + itoa(meiUser): {"3"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("add an assignment rule: %d", st)
		}
		var rules struct {
			Rules []leads.AssignmentRule `json:"rules"`
		}
		call(t, "GET", s.url+"/api/v1/assignment/rules", admin, nil, &rules)
		if len(rules.Rules) != 1 || rules.Rules[0].Users[0] != meiUser || rules.Rules[0].Weights[meiUser] != 3 {
			t.Fatalf("the assignment rule: %+v", rules.Rules)
		}

		st, body, _ = b.do("POST", "/console/settings/tokens", url.Values{"name": {"crm-sync"}, "ttl_hours": {"24"}, "_csrf": {b.csrf}}, false, false)
		tm := regexp.MustCompile(`id="new-token">([^<]+)<`).FindStringSubmatch(body)
		if st != http.StatusCreated || tm == nil {
			t.Fatalf("create a token: %d", st)
		}
		var me struct {
			Email string `json:"email"`
		}
		if st := call(t, "GET", s.url+"/api/v1/me", tm[1], nil, &me); st != http.StatusOK || me.Email != "admin@example.com" {
			t.Fatalf("the token on the API: %d %+v", st, me)
		}
		// Revoked on the page, the token stops working.
		_, body, _ = b.do("GET", "/console/settings/tokens", nil, false, false)
		rm := regexp.MustCompile(`/console/settings/tokens/(\d+)/revoke`).FindStringSubmatch(body)
		if rm == nil {
			t.Fatal("the token is not listed")
		}
		if st, _, _ := b.do("POST", "/console/settings/tokens/"+rm[1]+"/revoke", url.Values{"_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("revoke: %d", st)
		}
		if st := call(t, "GET", s.url+"/api/v1/me", tm[1], nil, nil); st != http.StatusUnauthorized {
			t.Fatalf("a revoked token: %d", st)
		}
		// Mei made a sales rep, then disabled: her session ends; the last
		// admin cannot be demoted.
		if st, _, _ := b.do("POST", "/console/settings/users/"+itoa(meiUser)+"/role", url.Values{"role": {"sales"}, "staff_userid": {"lisi"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("change a role: %d", st)
		}
		if ms, _ := s.app.auth.CorpsOf(context.Background(), meiUser); len(ms) != 1 || ms[0].Role != auth.RoleSales || ms[0].StaffUserID != "lisi" {
			t.Fatalf("mei's membership: %+v", ms)
		}
		if st, _, _ := b.do("POST", "/console/settings/users/"+itoa(meiUser)+"/disabled", url.Values{"disabled": {"1"}, "_csrf": {b.csrf}}, false, false); st != http.StatusSeeOther {
			t.Fatalf("disable: %d", st)
		}
		if st, _, _ := mei.do("GET", "/console", nil, false, false); st != http.StatusSeeOther {
			t.Fatalf("a disabled user's session: %d", st)
		}
		if st, body, _ := b.do("POST", "/console/settings/users/"+itoa(adminID)+"/role", url.Values{"role": {"sdr"}, "_csrf": {b.csrf}}, false, false); st != http.StatusConflict || !strings.Contains(body, "without an admin") {
			t.Fatalf("demote the last admin: %d", st)
		}
	})
}

// postMultipart sends a form with a file as htmx does (the CSRF header).
func (b *consoleUser) postMultipart(path string, fields url.Values, fileField, fileName string, data []byte) (int, string, http.Header) {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	if fileField != "" {
		fw, _ := mw.CreateFormFile(fileField, fileName)
		fw.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", b.base+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", b.csrf)
	req.Header.Set("Accept-Language", b.lang)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

// tinyPNG is a 1×1 PNG.
func tinyPNG() []byte {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 1, 1)))
	return buf.Bytes()
}

// A channel code made on the console's form: staff with a cap and a
// backup, a weekday schedule, a tag, a remark template, a welcome with an
// image. WeCom's refusal of a staff member without the customer-contact
// permission comes back on the form, what was typed kept; an edit based on
// an old version is refused, not saved over the newer one.
func TestE2E_ConsoleChannelCodeForm(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)
		b := newBrowser(t, s.url, "en")
		b.signIn("admin@example.com", "admin password")
		if _, body, _ := b.do("GET", "/console/codes/new", nil, false, false); !strings.Contains(body, `value="zhangsan"`) || !strings.Contains(body, "data-filter") {
			t.Fatal("the form has no staff picker")
		}
		tag := firstTagID(s)
		form := url.Values{"name": {"Spring poster"}, "channel": {"poster-2026"}, "mode": {"wecom_qr"}, "staff": {"zhangsan", "lisi", "wujiu"},
			"cap_zhangsan": {"50"}, "backup_lisi": {"1"}, "slot0_days": {"mon", "tue", "wed", "thu", "fri"}, "slot0_start": {"09:00"}, "slot0_end": {"18:00"},
			"slot0_staff": {"zhangsan"}, "tags": {tag}, "remark_template": {"{customer_name}-春"}, "welcome_text": {"你好 {customer_name}"},
			"variant0_days": {"sat", "sun"}, "variant0_start": {"00:00"}, "variant0_end": {"24:00"}, "variant0_text": {"周末好 {customer_name}"}}
		st, body, _ := b.postMultipart("/console/codes", form, "welcome_image", "poster.png", tinyPNG())
		if st != http.StatusBadGateway && st != http.StatusUnprocessableEntity || !strings.Contains(body, "wujiu") || !strings.Contains(body, `value="Spring poster"`) {
			t.Fatalf("a staff member WeCom refuses: %d %s", st, body)
		}
		form["staff"] = []string{"zhangsan", "lisi"}
		st, _, h := b.postMultipart("/console/codes", form, "welcome_image", "poster.png", tinyPNG())
		if st != http.StatusNoContent || h.Get("HX-Redirect") != "/console/codes" {
			t.Fatalf("create: %d %q", st, h.Get("HX-Redirect"))
		}
		var list struct {
			Codes []livecode.Code `json:"codes"`
		}
		call(t, "GET", s.url+"/api/v1/codes", admin, nil, &list)
		if len(list.Codes) != 1 {
			t.Fatalf("codes: %+v", list.Codes)
		}
		code := list.Codes[0]
		st2 := code.Settings
		if len(code.Staff) != 2 || code.Staff[0].DailyCap != 50 || !code.Staff[1].Backup || len(st2.Schedule.Slots) != 1 || st2.Schedule.Slots[0].Start != "09:00" ||
			len(st2.Schedule.Slots[0].Days) != 5 || st2.RemarkTemplate != "{customer_name}-春" || len(st2.Tags) != 1 || len(st2.Welcome.Attachments) != 1 ||
			st2.Welcome.Attachments[0].FileID == 0 || len(st2.Welcome.Variants) != 1 || st2.Welcome.Variants[0].Text != "周末好 {customer_name}" ||
			len(st2.Welcome.Variants[0].Slot.Days) != 2 {
			t.Fatalf("the code as saved: %+v", code)
		}
		if st, body, h := b.do("GET", "/console/media/"+itoa(st2.Welcome.Attachments[0].FileID), nil, false, false); st != http.StatusOK || h.Get("Content-Type") != "image/png" || !strings.HasPrefix(body, "\x89PNG") {
			t.Fatalf("the image's preview: %d %s", st, h.Get("Content-Type"))
		}
		// Edit: the page shows the version it is based on; a save on an
		// older one is refused.
		if _, body, _ := b.do("GET", "/console/codes/"+itoa(code.ID)+"/edit", nil, false, false); !strings.Contains(body, `name="version" value="`+strconv.FormatInt(code.Version, 10)+`"`) {
			t.Fatal("the edit form does not carry the version")
		}
		edit := url.Values{"name": {"Spring poster v2"}, "mode": {"wecom_qr"}, "staff": {"zhangsan"}, "keep_attachment": {itoa(st2.Welcome.Attachments[0].FileID)},
			"version": {strconv.FormatInt(code.Version, 10)}}
		if st, _, _ := b.postMultipart("/console/codes/"+itoa(code.ID), edit, "", "", nil); st != http.StatusNoContent {
			t.Fatalf("edit: %d", st)
		}
		if st, body, _ := b.postMultipart("/console/codes/"+itoa(code.ID), edit, "", "", nil); st != http.StatusConflict || !strings.Contains(body, "changed by someone else") {
			t.Fatalf("a stale edit: %d", st)
		}
		var got livecode.Code
		call(t, "GET", s.url+"/api/v1/codes/"+itoa(code.ID), admin, nil, &got)
		if got.Name != "Spring poster v2" || len(got.Staff) != 1 || len(got.Settings.Welcome.Attachments) != 1 {
			t.Fatalf("after the edit: %+v", got)
		}
	})
}

// Stores imported on the console from a CSV as Excel saves it in China
// (GBK): good lines are saved, a bad one is listed with its reason.
func TestE2E_ConsoleStoresImport(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)
		var ids []string
		for _, user := range []string{"zhangsan", "lisi"} {
			var code livecode.Code
			if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Store " + user, "mode": "wecom_qr", "staff": []map[string]any{{"userid": user}}}, &code); st != http.StatusCreated {
				t.Fatalf("code: %d", st)
			}
			ids = append(ids, itoa(code.ID))
		}
		b := newBrowser(t, s.url, "en")
		b.signIn("admin@example.com", "admin password")
		csvText := "name,city,address,lat,lng,datum,code_id\n人民广场店,上海,南京东路 1 号,31.2285,121.4790,gcj02," + ids[0] + "\n王府井店,北京,王府井大街 2 号,39.9152,116.4174,gcj02," + ids[1] + "\n坏门店,北京,,,116.4,gcj02,\n"
		gbk, err := simplifiedchinese.GBK.NewEncoder().String(csvText)
		if err != nil {
			t.Fatal(err)
		}
		st, body, _ := b.postMultipart("/console/stores/import", nil, "file", "stores.csv", []byte(gbk))
		if st != http.StatusOK || !strings.Contains(body, "2 stores saved") || !strings.Contains(body, "Line 4") || !strings.Contains(body, "人民广场店") {
			t.Fatalf("import: %d %s", st, body)
		}
		var stores struct {
			Stores []livecode.Store `json:"stores"`
		}
		call(t, "GET", s.url+"/api/v1/stores", admin, nil, &stores)
		if len(stores.Stores) != 2 {
			t.Fatalf("stores: %+v", stores.Stores)
		}
	})
}

// A group code made on the console: groups picked from the directory's, in
// the order typed (not the list's), each with its threshold.
func TestE2E_ConsoleGroupCodeForm(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		first, _, err := s.fake.CreateGroup(context.Background(), e2eCorp, "zhangsan", "VIP 1")
		if err != nil {
			t.Fatal(err)
		}
		second, _, err := s.fake.CreateGroup(context.Background(), e2eCorp, "zhangsan", "VIP 2")
		if err != nil {
			t.Fatal(err)
		}
		syncDirectory(t, s, admin)
		b := newBrowser(t, s.url, "en")
		b.signIn("admin@example.com", "admin password")
		if _, body, _ := b.do("GET", "/console/codes/new-group", nil, false, false); !strings.Contains(body, `value="`+first+`"`) {
			t.Fatal("the group picker does not list the groups")
		}
		st, _, _ := b.do("POST", "/console/codes/groups", url.Values{"name": {"Community"}, "groups": {first, second}, "order_" + first: {"2"}, "order_" + second: {"1"},
			"threshold_" + second: {"150"}, "group_welcome": {"欢迎入群"}, "_csrf": {b.csrf}}, false, false)
		if st != http.StatusSeeOther {
			t.Fatalf("create: %d", st)
		}
		var list struct {
			Codes []livecode.Code `json:"codes"`
		}
		call(t, "GET", s.url+"/api/v1/codes?mode=join_way", admin, nil, &list)
		if len(list.Codes) != 1 {
			t.Fatalf("group codes: %+v", list.Codes)
		}
		g := list.Codes[0].Settings.Groups
		if len(g) != 2 || g[0].ChatID != second || g[0].Threshold != 150 || g[1].ChatID != first || list.Codes[0].Settings.GroupWelcome == nil {
			t.Fatalf("the groups as saved: %+v", list.Codes[0].Settings)
		}
	})
}

// createUsers makes users of the e2e corp, each name@example.com with the
// password "password <name>", and returns their ids by name.
func createUsers(t testing.TB, s *stack, roles map[string]auth.Role) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	for name, role := range roles {
		u, err := s.app.auth.CreateUser(context.Background(), auth.NewUser{Email: name + "@example.com", Password: "password " + name, CorpID: e2eCorp, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = u.ID
	}
	return ids
}

// Served over HTTPS (QIFLOW_PUBLIC_URL), the console's cookies are Secure.
func TestE2E_ConsoleCookiesSecureBehindHTTPS(t *testing.T) {
	s := startStackConfig(t, "sqlite", nil, func(c *configs.Config) { c.PublicURL = "https://qiflow.example.com" })
	resp, err := http.Get(s.url + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) == 0 {
		t.Fatal("no cookie set")
	}
	for _, c := range cookies {
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookie %s: Secure %v HttpOnly %v SameSite %v", c.Name, c.Secure, c.HttpOnly, c.SameSite)
		}
	}
}
