package fake

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/qiflow/qiflow/kv/kvtest"
	"github.com/qiflow/qiflow/wecom"
)

// The sidebar's WeCom side: OAuth gives a code for the signed-in staff
// member that works once; the signature Qiflow computes is checked against
// the fake's own ticket; tickets are cached (one fetch for many pages).
func TestFake_OAuthCodeOnceAndJSSignatures(t *testing.T) {
	f, base := StartForTest(t, "wwjs", true)
	store := kvtest.Open(t)
	api := wecom.NewAPI(base, store, 5*time.Second, wecom.CorpApp{CorpID: "wwjs", Secret: SandboxCorp.Secret, AgentID: SandboxCorp.AgentID})
	f.SetOAuthUser("wwjs", "lisi")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"appid": {"wwjs"}, "redirect_uri": {"https://qiflow.example.com/sidebar?x=1"}, "response_type": {"code"}, "scope": {"snsapi_base"}, "state": {"s1"}}
	resp, err := noFollow.Get(base + "/connect/oauth2/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || back.Host != "qiflow.example.com" || back.Query().Get("state") != "s1" || back.Query().Get("x") != "1" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, back)
	}
	ctx := context.Background()
	code := back.Query().Get("code")
	if u, err := api.UserIDByCode(ctx, "wwjs", code); err != nil || u != "lisi" {
		t.Fatalf("the code's user: %q %v", u, err)
	}
	if _, err := api.UserIDByCode(ctx, "wwjs", code); !wecom.IsCode(err, wecom.CodeInvalidCode) {
		t.Fatalf("the code again: %v, want 40029", err)
	}
	// A page off the app's trusted domain (Qiflow's callback host) gets
	// no user: 50001.
	f.SetCallbackURL("wwjs", "https://qiflow.example.com/wecom/callback/wwjs")
	q.Set("redirect_uri", "https://evil.example/steal")
	resp, err = noFollow.Get(base + "/connect/oauth2/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ = url.Parse(resp.Header.Get("Location"))
	if _, err := api.UserIDByCode(ctx, "wwjs", back.Query().Get("code")); !wecom.IsCode(err, 50001) {
		t.Fatalf("a code for another domain: %v, want 50001", err)
	}
	page := "https://qiflow.example.com/sidebar?x=1"
	for _, agent := range []bool{false, true} {
		sig, err := api.SignJS(ctx, "wwjs", page, agent)
		if err != nil {
			t.Fatal(err)
		}
		kind := map[bool]string{false: "corp", true: "agent"}[agent]
		if want := wecom.JSSign(f.Ticket("wwjs", kind), sig.NonceStr, sig.Timestamp, page); sig.Signature != want {
			t.Fatalf("%s signature %s, want %s", kind, sig.Signature, want)
		}
	}
	for range 5 {
		if _, err := api.SignJS(ctx, "wwjs", page, false); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Calls("wwjs", "get_jsapi_ticket"); n != 1 {
		t.Fatalf("%d ticket fetches for six pages, want 1 (cached)", n)
	}
}
