package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiflow/qiflow/wecom"
)

func newTestFake(t *testing.T, callback string) *Fake {
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	spec := SandboxCorp
	spec.CallbackURL = callback
	f.AddCorp(spec, true)
	return f
}

func TestCallbacks_RetriedLikeWeCom(t *testing.T) {
	var calls atomic.Int32
	// Fails twice, then accepts: WeCom's three tries get it through.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cr := wecom.Crypto{Token: SandboxCorp.Token, AESKey: SandboxCorp.AESKey, ReceiverID: SandboxCorpID}
		if _, err := cr.Open(r.URL.Query().Get("msg_signature"), r.URL.Query().Get("timestamp"), r.URL.Query().Get("nonce"), mustRead(r)); err != nil {
			t.Errorf("callback does not verify: %v", err)
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	f := newTestFake(t, srv.URL)
	f.CallbackTimeout = 200 * time.Millisecond
	start := time.Now()
	res, err := f.Add(context.Background(), SandboxCorpID, "zhangsan", Customer{}, 1)
	if err != nil || !res.Callback.OK || res.Callback.Attempts != 3 {
		t.Fatalf("%+v %v", res.Callback, err)
	}
	// Quick refusals are retried on WeCom's rhythm, one attempt per answer deadline.
	if took := time.Since(start); took < 2*f.CallbackTimeout {
		t.Fatalf("three attempts in %s: retries not spaced", took)
	}
	// Silence beyond the answer deadline counts as a failure; after 3 tries WeCom gives up.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	f.SetCallbackURL(SandboxCorpID, slow.URL)
	f.CallbackTimeout = 100 * time.Millisecond
	res, _ = f.Add(context.Background(), SandboxCorpID, "lisi", Customer{}, 1)
	if res.Callback.OK || res.Callback.Attempts != 3 {
		t.Fatalf("silent server: %+v", res.Callback)
	}
}

func TestWorld_SurvivesRestart(t *testing.T) {
	path := t.TempDir() + "/world.json"
	f, _ := New(Options{WorldFile: path})
	f.Start("127.0.0.1:0")
	f.AddCorp(SandboxCorp, true)
	res, _ := f.Add(context.Background(), SandboxCorpID, "zhangsan", Customer{Name: "Kept"}, 1)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{WorldFile: path})
	if err != nil {
		t.Fatal(err)
	}
	found := ""
	g.Inspect(SandboxCorpID, func(c *Corp) { found = c.Customers[res.ExternalUserID].Contact.Name })
	if found != "Kept" {
		t.Fatal("the world was not saved")
	}
}

func mustRead(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

// The QR URLs the fake hands out are images, as WeCom's are: a landing page
// that shows one shows a QR, not a broken image.
func TestFake_QRCodesArePNGImages(t *testing.T) {
	f, base := StartForTest(t, SandboxCorpID, true)
	_ = f
	resp, err := http.Get(base + "/fake/qr/" + SandboxCorpID + "/anyconfig")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	img, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Fatalf("qr: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), img[:min(len(img), 16)])
	}
}

// The fake reads requests into its own types: a misspelt or unknown field
// is refused (as WeCom refuses malformed JSON), not silently dropped, so a
// Qiflow typo fails its tests.
func TestFake_RefusesUnknownRequestFields(t *testing.T) {
	_, base := StartForTest(t, SandboxCorpID, true)
	tok := sandboxToken(t, base)
	post := func(endpoint, body string) int64 {
		resp, err := http.Post(base+"/cgi-bin/"+endpoint+"?access_token="+tok, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			ErrCode int64 `json:"errcode"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		return out.ErrCode
	}
	for endpoint, body := range map[string]string{
		"externalcontact/send_welcome_msg":                 `{"welcom_code":"x","text":{"content":"hi"}}`,
		"externalcontact/remark":                           `{"userid":"zhangsan","external_userid":"wm1","remarks":"typo"}`,
		"message/send":                                     `{"touser":"zhangsan","msgtype":"text","agentid":1000002,"text":{"contents":"typo"}}`,
		"externalcontact/add_contact_way":                  `{"type":1,"scene":2,"users":["zhangsan"]}`,
		"externalcontact/groupchat/add_join_way":           `{"scene":2,"chat_ids":["wr1"]}`,
		"externalcontact/add_corp_tag":                     `{"group_name":"Source","tags":[{"name":"Poster"}]}`,
		"externalcontact/mark_tag":                         `{"userid":"zhangsan","external_userid":"wm1","add_tags":["et1"]}`,
		"externalcontact/del_corp_tag":                     `{"tag_ids":["et1"]}`,
		"externalcontact/get_corp_tag_list":                `{"strategy_id":1}`,
		"externalcontact/customer_acquisition/create_link": `{"link_name":"SMS","range":{"users":["zhangsan"]}}`,
		"externalcontact/customer_acquisition/get":         `{"linkid":"al1"}`,
		"externalcontact/list_contact_way":                 `{"start":1625875200,"limit":100}`,
		"externalcontact/get_contact_way":                  `{"config_id":"cw1","state":"x"}`,
		"externalcontact/group_welcome_template/add":       `{"text":{"content":"hi"},"notice":1}`,
	} {
		if code := post(endpoint, body); code != 40058 {
			t.Errorf("%s with a misspelt field: errcode %d, want 40058", endpoint, code)
		}
	}
	// A required field left out is refused too.
	if code := post("externalcontact/add_corp_tag", `{"group_name":"Source"}`); code != 40058 {
		t.Errorf("add_corp_tag without tag: errcode %d, want 40058", code)
	}
}

// App messages: one person gets 30 a minute (the rest are dropped, the
// call still answers ok), a text is cut at 2,048 bytes, and a message to
// nobody valid is refused with 81013.
func TestFake_AppMessagesObeyWeComsPerPersonLimits(t *testing.T) {
	f, base := StartForTest(t, SandboxCorpID, true)
	tok := sandboxToken(t, base)
	send := func(to, text string) int64 {
		body, _ := json.Marshal(map[string]any{"touser": to, "msgtype": "text", "agentid": SandboxCorp.AgentID, "text": map[string]string{"content": text}})
		resp, err := http.Post(base+"/cgi-bin/message/send?access_token="+tok, "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			ErrCode int64 `json:"errcode"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		return out.ErrCode
	}
	for i := range 31 {
		if code := send("zhangsan", strings.Repeat("长", 1000)); code != 0 {
			t.Fatalf("message %d: errcode %d", i, code)
		}
	}
	kinds := map[string]int{}
	for _, m := range f.Messages(SandboxCorpID) {
		kinds[m.Kind]++
		if len(m.Text) > 2048 || len(m.Text)%3 != 0 {
			t.Fatalf("text of %d bytes (cut inside a character?)", len(m.Text))
		}
	}
	if kinds["app"] != 30 || kinds["dropped"] != 1 {
		t.Fatalf("messages %v, want 30 delivered and 1 dropped", kinds)
	}
	if code := send("nobody", "hi"); code != 81013 {
		t.Fatalf("to nobody valid: errcode %d", code)
	}
}

// sandboxToken fetches an access token of the sandbox corp.
func sandboxToken(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/cgi-bin/gettoken?corpid=" + SandboxCorpID + "&corpsecret=" + SandboxCorp.Secret)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	return tok.AccessToken
}
