package fake

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
