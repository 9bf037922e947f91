package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/fake"
)

// freeAddr is a loopback address nothing listens on now: a stack whose
// public URL must be its real address (WeCom's OAuth sends the browser
// back there) listens on it.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// sidebarStack is a stack at a known address with a customer who added
// zhangsan, whose Qiflow user is an SDR; the fake's WeCom is signed in as
// zhangsan.
func sidebarStack(t *testing.T, driver string) (*stack, string) {
	addr := freeAddr(t)
	s := startStackConfig(t, driver, nil, func(c *configs.Config) { c.HTTPAddr, c.PublicURL = addr, "http://"+addr })
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	if _, err := s.app.auth.CreateUser(context.Background(), auth.NewUser{Email: "zhang@example.com", Password: "password zhang", CorpID: e2eCorp,
		Role: auth.RoleSDR, StaffUserID: "zhangsan"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.fake.Add(context.Background(), e2eCorp, "zhangsan", fake.Customer{Name: "陈小姐"}, 1)
	if err != nil || !res.Callback.OK {
		t.Fatalf("add: %+v %v", res, err)
	}
	waitUntil(t, "the customer's lead", func() bool {
		return s.count(`SELECT COUNT(*) FROM person_identities i JOIN leads l ON l.person_id = i.person_id
			WHERE i.corp_id = ? AND i.kind = 'wecom' AND i.value = ?`, e2eCorp, res.ExternalUserID) == 1 &&
			s.count("SELECT COUNT(*) FROM follow_relations WHERE corp_id = ? AND external_userid = ?", e2eCorp, res.ExternalUserID) == 1
	})
	s.fake.SetOAuthUser(e2eCorp, "zhangsan")
	return s, res.ExternalUserID
}

// The sidebar's WeCom side through the real server: WeCom's OAuth signs
// zhangsan's user in (a forged state is refused, a staff member without a
// user is told so), the JS-SDK signatures check against the fake's own
// tickets, the customer's card shows the lead, and a tag added there
// reaches WeCom.
func TestE2E_SidebarSignsInThroughWeComAndTagsTheCustomer(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s, customer := sidebarStack(t, driver)
		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Jar: jar} // follows redirects: to the fake's OAuth page and back
		get := func(c *http.Client, u string) (int, string) {
			t.Helper()
			resp, err := c.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		side := s.url + "/sidebar?corp=" + e2eCorp // two corps are configured: the page names its own
		st, page := get(browser, side)
		if st != http.StatusOK || !strings.Contains(page, "/static/sandbox/wecom-jssdk.js") || !strings.Contains(page, `data-corp="`+e2eCorp+`"`) {
			t.Fatalf("the sidebar after WeCom's OAuth: %d %s", st, page)
		}
		// A return from OAuth this browser did not start is refused.
		other, _ := cookiejar.New(nil)
		if st, _ := get(&http.Client{Jar: other}, side+"&code=forged&state=forged"); st != http.StatusForbidden {
			t.Fatalf("a forged state: %d", st)
		}
		// A staff member with no Qiflow user is told whom to ask.
		s.fake.SetOAuthUser(e2eCorp, "lisi")
		nobody, _ := cookiejar.New(nil)
		if st, body := get(&http.Client{Jar: nobody}, side); st != http.StatusForbidden || !strings.Contains(body, "lisi") {
			t.Fatalf("a staff member without a user: %d %s", st, body)
		}

		pageURL := side
		for _, agent := range []string{"0", "1"} {
			st, body := get(browser, s.url+"/sidebar/signature?agent="+agent+"&url="+url.QueryEscape(pageURL))
			var sig wecom.JSSignature
			json.Unmarshal([]byte(body), &sig)
			kind := map[string]string{"0": "corp", "1": "agent"}[agent]
			if st != http.StatusOK || sig.Signature != wecom.JSSign(s.fake.Ticket(e2eCorp, kind), sig.NonceStr, sig.Timestamp, pageURL) {
				t.Fatalf("%s signature: %d %s", kind, st, body)
			}
		}
		if st, _ := get(browser, s.url+"/sidebar/signature?url="+url.QueryEscape("https://evil.example/")); st != http.StatusUnprocessableEntity {
			t.Fatalf("a signature for another site: %d", st)
		}

		st, card := get(browser, s.url+"/sidebar/contact?external_userid="+customer)
		if st != http.StatusOK || !strings.Contains(card, "陈小姐") || !strings.Contains(card, "lead") || !strings.Contains(card, "/sidebar/contact/claim") {
			t.Fatalf("the customer's card: %d %s", st, card)
		}
		tag := firstTagID(s)
		csrf := csrfFromPage(t, page)
		req, _ := http.NewRequest("POST", s.url+"/sidebar/contact/tags", strings.NewReader(url.Values{"external_userid": {customer}, "add": {tag}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("tag: %d %s", resp.StatusCode, b)
		}
		if !followTagged(s, customer, "zhangsan", tag) {
			t.Fatal("the tag did not reach WeCom")
		}
		if !strings.Contains(string(b), `"remove": "`+tag+`"`) {
			t.Fatalf("the card after tagging does not show the tag: %s", b)
		}
		// The lead's page in the console loads the same card (its tags).
		var leadID int64
		if err := s.app.db.Get(&leadID, `SELECT l.id FROM person_identities i JOIN leads l ON l.person_id = i.person_id WHERE i.corp_id = ? AND i.kind = 'wecom' AND i.value = ?`, e2eCorp, customer); err != nil {
			t.Fatal(err)
		}
		if st, body := get(browser, s.url+"/console/leads/"+itoa(leadID)); st != http.StatusOK || !strings.Contains(body, `hx-get="/sidebar/contact?external_userid=`+customer+`"`) || !strings.Contains(body, "halves every") && !strings.Contains(body, "天减半") {
			t.Fatalf("the lead's page: %d", st)
		}
	})
}

var csrfInBody = `"X-CSRF-Token": "`

// csrfFromPage reads the CSRF token a page gives htmx.
func csrfFromPage(t *testing.T, page string) string {
	i := strings.Index(page, csrfInBody)
	if i < 0 {
		t.Fatal("no CSRF token on the page")
	}
	rest := page[i+len(csrfInBody):]
	return rest[:strings.Index(rest, `"`)]
}

// followTagged says whether WeCom (the fake) has tag on the customer as
// staff member user follows them.
func followTagged(s *stack, customer, user, tag string) bool {
	var tagged bool
	s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
		for _, t := range c.Customers[customer].Follows[user].Tags {
			tagged = tagged || t.TagID == tag
		}
	})
	return tagged
}
