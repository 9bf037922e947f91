package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/qiflow/qiflow/livecode"
)

// chromiumPath finds Debian's chromium. Outside CI the browser test skips
// (saying so) without one; under CI=true it must run.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but no chromium is installed (.ci/run installs Debian's chromium)")
	}
	t.Skip("skipped: no chromium on this machine (apt-get install chromium to run the store-code browser test)")
	return ""
}

func TestBrowser_StoreCodeShowsTheNearestStore(t *testing.T) {
	bin := chromiumPath(t)
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	mk := func(name, user string) livecode.Code {
		var c livecode.Code
		body := map[string]any{"name": name, "mode": "wecom_qr", "staff": []map[string]any{{"userid": user}}}
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, body, &c); st != http.StatusCreated {
			t.Fatalf("code %s: %d", name, st)
		}
		return c
	}
	shanghai, beijing := mk("Shanghai store", "zhangsan"), mk("Beijing store", "lisi")
	for _, st := range []map[string]any{
		// GCJ-02 coordinates, as a Chinese map service gives them.
		{"name": "人民广场店 People's Square", "city": "上海", "lat": 31.2285, "lng": 121.4790, "datum": "gcj02", "code_id": shanghai.ID},
		{"name": "王府井店 Wangfujing", "city": "北京", "lat": 39.9152, "lng": 116.4174, "datum": "gcj02", "code_id": beijing.ID},
	} {
		if code := call(t, "POST", s.url+"/api/v1/stores", admin, st, nil); code != http.StatusCreated {
			t.Fatalf("store: %d", code)
		}
	}
	var storeCode livecode.Code
	if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Find your store", "mode": "stores"}, &storeCode); st != http.StatusCreated {
		t.Fatalf("store code: %d", st)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	// Chromium is newer than chromedp's protocol tables: log its decode complaints to the test log only.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var name, src string
	// A phone near People's Square, reporting WGS-84 as browsers do.
	err := chromedp.Run(ctx,
		browser.GrantPermissions([]browser.PermissionType{browser.PermissionTypeGeolocation}).WithOrigin(s.url),
		emulation.SetGeolocationOverride().WithLatitude(31.2304).WithLongitude(121.4737).WithAccuracy(20),
		chromedp.Navigate(s.url+"/s/"+storeCode.Slug),
		chromedp.WaitVisible("#store-name", chromedp.ByID),
		chromedp.Text("#store-name", &name, chromedp.ByID),
		chromedp.AttributeValue("#qr", "src", &src, nil, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if name != "人民广场店 People's Square" || src != shanghai.QRCode {
		t.Fatalf("nearest store shown: %q with QR %q (want the Shanghai store's %q)", name, src, shanghai.QRCode)
	}
}
