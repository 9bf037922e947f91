package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// A marketer publishes a form; a visitor from a live code's page fills the
// hosted page (a mistake comes back on the page, by field), a site posts
// the same form as JSON, and one address is limited.
func TestE2E_HostedFormFillsBecomeLeads(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		var created struct {
			URL string `json:"url"`
		}
		if st := call(t, "POST", s.url+"/api/v1/forms", admin, map[string]any{"slug": "spring-webinar", "title": "春季研讨会",
			"consent_text": "我同意接收活动信息", "consent_required": true, "fields": []map[string]any{
				{"name": "name", "label": "姓名", "type": "text", "required": true, "maps_to": "name"},
				{"name": "phone", "label": "手机", "type": "tel", "required": true, "maps_to": "mobile"},
			}}, &created); st != http.StatusCreated || !strings.HasSuffix(created.URL, "/f/spring-webinar") {
			t.Fatalf("create form: %d %+v", st, created)
		}
		page := get(t, s.url+"/f/spring-webinar?code=7&channel=poster")
		nonce := regexp.MustCompile(`name="nonce" value="([0-9a-f]+)"`).FindStringSubmatch(page)
		if nonce == nil || !strings.Contains(page, `name="phone"`) || !strings.Contains(page, `name="code_id" value="7"`) {
			t.Fatalf("form page:\n%s", page)
		}
		post := func(v url.Values) (int, string) {
			resp, err := http.PostForm(s.url+"/f/spring-webinar", v)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		v := url.Values{"nonce": {nonce[1]}, "code_id": {"7"}, "channel": {"poster"}, "name": {"李雷"}, "phone": {"1391234"}}
		if st, body := post(v); st != http.StatusUnprocessableEntity || !strings.Contains(body, "is not a valid phone number") ||
			!strings.Contains(body, "is required to send this form") || !strings.Contains(body, `value="李雷"`) {
			t.Fatalf("a fill with mistakes: %d\n%s", st, body)
		}
		v.Set("phone", "13912345679")
		v.Set("consent", "1")
		if st, body := post(v); st != http.StatusOK || !strings.Contains(body, "Thank you") {
			t.Fatalf("fill: %d\n%s", st, body)
		}
		if n := s.count("SELECT COUNT(*) FROM leads WHERE source = 'form' AND code_id = 7 AND channel = 'poster'"); n != 1 {
			t.Fatalf("%d form leads with the code's source", n)
		}
		var res struct {
			OK bool `json:"ok"`
		}
		if st := call(t, "POST", s.url+"/api/public/forms/spring-webinar", "", map[string]any{"values": map[string]string{"name": "韩梅梅", "phone": "13912345680"},
			"consent": true}, &res); st != http.StatusCreated || !res.OK {
			t.Fatalf("JSON fill: %d", st)
		}
		if n := s.count("SELECT COUNT(*) FROM activities WHERE type = 'form.submitted'"); n != 2 {
			t.Fatalf("%d form activities", n)
		}
		// One address sends at most 20 fills in a ten-minute window (it has
		// sent 3); up to 41 more tries cover a window boundary passing meanwhile.
		limited := false
		for i := 0; i < 41 && !limited; i++ {
			limited = call(t, "POST", s.url+"/api/public/forms/spring-webinar", "", map[string]any{"values": map[string]string{"name": "x", "phone": "1"}}, nil) == http.StatusTooManyRequests
		}
		if !limited {
			t.Fatal("one address was never limited")
		}
		if resp, err := http.Get(s.url + "/f/no-such-form"); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown form: %v %v", resp, err)
		}
	})
}

// get fetches a page and returns its body.
func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", u, resp.StatusCode, b)
	}
	return string(b)
}
