package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom/fake"
)

// chrome starts a headless Chromium of its own (its own cookies: one per
// signed-in user) sized as a 1366×768 laptop.
func chrome(t *testing.T, bin string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1366, 768))
	// Its profile lives in a directory of our own rather than t.TempDir():
	// Chromium's helper processes may still be writing into it for a moment
	// after the browser is told to quit, and the test must not fail on that.
	dir, err := os.MkdirTemp("", "qiflow-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, chromedp.UserDataDir(dir))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// Chromium is newer than chromedp's protocol tables: log its decode complaints to the test log only.
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		for range 50 { // until the helpers have let go of the profile
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("chromium's profile %s left behind", dir)
	})
	// A browser in China asks for Chinese (headless Chromium says en-US).
	if err := chromedp.Run(ctx, network.SetExtraHTTPHeaders(network.Headers{"Accept-Language": "zh-CN,zh;q=0.9"})); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page as a test artifact (go test -artifacts keeps
// them under _artifacts/).
func screenshot(t *testing.T, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var png []byte
		if err := chromedp.CaptureScreenshot(&png).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(t.ArtifactDir(), name+".png"), png, 0o644)
	})
}

func signInActions(base, email, password string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Navigate(base + "/console/login"),
		chromedp.WaitVisible(`input[name="email"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`header.top details.dropdown`, chromedp.ByQuery),
	}
}

// Two SDRs in their own browsers look at the same unclaimed lead; the
// first claims it (its row says so without a reload), the second's click
// shows the message that a colleague was faster, not an error page. The
// sales rep then accepts the handoff from the inbox.
func TestBrowser_ConsoleClaimRaceAndInbox(t *testing.T) {
	bin := chromiumPath(t)
	s := startStack(t, "sqlite")
	users := createUsers(t, s, map[string]auth.Role{"sdr1": auth.RoleSDR, "sdr2": auth.RoleSDR, "rep": auth.RoleSales})
	admin := login(t, s.url, "admin@example.com", "admin password")
	var created struct {
		Lead leads.Lead `json:"lead"`
	}
	for _, p := range []map[string]any{{"name": "王小明", "mobile": "13912345600", "title": "CTO"}, {"name": "李华", "mobile": "13912345601"}} {
		if st := call(t, "POST", s.url+"/api/v1/leads", admin, p, &created); st != http.StatusCreated {
			t.Fatalf("create lead: %d", st)
		}
	}
	lead := created.Lead // 李华
	row := "#lead-" + itoa(lead.ID)

	sdr1, sdr2 := chrome(t, bin), chrome(t, bin)
	var home string
	if err := chromedp.Run(sdr1, signInActions(s.url, "sdr1@example.com", "password sdr1"),
		chromedp.Text("main", &home, chromedp.ByQuery), screenshot(t, "home-sdr")); err != nil {
		t.Fatalf("sdr1 signs in: %v", err)
	}
	if !strings.Contains(home, "工作台") {
		t.Fatalf("home page: %q", home)
	}
	pool := s.url + "/console/pool?owner=none"
	for _, b := range []context.Context{sdr1, sdr2} {
		email := "sdr1@example.com"
		if b == sdr2 {
			email = "sdr2@example.com"
		}
		if err := chromedp.Run(b, signInActions(s.url, email, "password "+strings.TrimSuffix(email, "@example.com")),
			chromedp.Navigate(pool), chromedp.WaitVisible(row+" button.claim", chromedp.ByQuery)); err != nil {
			t.Fatalf("%s opens the pool: %v", email, err)
		}
	}
	var claimed, message string
	if err := chromedp.Run(sdr1, chromedp.Click(row+" button.claim", chromedp.ByQuery),
		chromedp.WaitVisible(row+" .ok", chromedp.ByQuery), chromedp.Text(row, &claimed, chromedp.ByQuery), screenshot(t, "pool-claimed")); err != nil {
		t.Fatalf("sdr1 claims: %v", err)
	}
	if !strings.Contains(claimed, "已认领") {
		t.Fatalf("claimed row: %q", claimed)
	}
	if err := chromedp.Run(sdr2, chromedp.Click(row+" button.claim", chromedp.ByQuery),
		chromedp.WaitVisible("#messages .error", chromedp.ByQuery), chromedp.Text("#messages", &message, chromedp.ByQuery), screenshot(t, "pool-claim-lost")); err != nil {
		t.Fatalf("sdr2's late claim: %v", err)
	}
	if !strings.Contains(message, "该线索刚刚被同事认领了") {
		t.Fatalf("late claim's message: %q", message)
	}
	// The row now shows the colleague as owner, without its claim button.
	var buttons int
	if err := chromedp.Run(sdr2, chromedp.Evaluate(`document.querySelectorAll("`+row+` button.claim").length`, &buttons),
		chromedp.Text(row, &claimed, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if buttons != 0 || !strings.Contains(claimed, "sdr1@example.com") {
		t.Fatalf("the lost lead's row: %q with %d claim buttons", claimed, buttons)
	}

	// The SDR qualifies it on the lead's page (an MQL first, through the API).
	sdr1Token := login(t, s.url, "sdr1@example.com", "password sdr1")
	if st := call(t, "POST", s.url+"/api/v1/leads/"+itoa(lead.ID)+"/stage", sdr1Token, map[string]any{"stage": "mql", "reason": "asked for a demo"}, nil); st != http.StatusOK {
		t.Fatalf("to mql: %d", st)
	}
	if err := chromedp.Run(sdr1, chromedp.Navigate(s.url+"/console/leads/"+itoa(lead.ID)),
		chromedp.WaitVisible(`input[name="budget"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="budget"]`, "50万", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="authority"]`, "CTO", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="need"]`, "私域 SCRM", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="timeline"]`, "Q1", chromedp.ByQuery),
		chromedp.SetValue(`select[name="to_user_id"]`, itoa(users["rep"]), chromedp.ByQuery),
		chromedp.SendKeys(`textarea[name="note"]`, "想看演示", chromedp.ByQuery),
		screenshot(t, "lead-qualify"),
		chromedp.Submit(`input[name="budget"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`input[name="budget"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("sdr1 qualifies: %v", err)
	}

	rep := chrome(t, bin)
	var answered string
	if err := chromedp.Run(rep, signInActions(s.url, "rep@example.com", "password rep"),
		chromedp.Navigate(s.url+"/console/inbox"), chromedp.WaitVisible(`button[hx-post$="/accept"]`, chromedp.ByQuery), screenshot(t, "inbox"),
		chromedp.Click(`button[hx-post$="/accept"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr .ok`, chromedp.ByQuery), chromedp.Text(`tbody`, &answered, chromedp.ByQuery)); err != nil {
		t.Fatalf("rep accepts: %v", err)
	}
	if !strings.Contains(answered, "已接收") || !strings.Contains(answered, "想看演示") {
		t.Fatalf("the accepted handoff's row: %q", answered)
	}
	var history string
	if err := chromedp.Run(rep, chromedp.Navigate(s.url+"/console/leads/"+itoa(lead.ID)), chromedp.WaitVisible("section table", chromedp.ByQuery),
		chromedp.Text("section table", &history, chromedp.ByQuery), screenshot(t, "lead")); err != nil {
		t.Fatalf("rep opens the lead: %v", err)
	}
	if !strings.Contains(history, "handoff") || !strings.Contains(history, "sql") {
		t.Fatalf("the lead's timeline: %q", history)
	}
	var got struct {
		Lead leads.Lead `json:"lead"`
	}
	call(t, "GET", s.url+"/api/v1/leads/"+itoa(lead.ID), admin, nil, &got)
	if got.Lead.OwnerUserID != users["rep"] || got.Lead.Stage != leads.StageSQL {
		t.Fatalf("after accepting: owner %d stage %s", got.Lead.OwnerUserID, got.Lead.Stage)
	}
}

// An admin imports a CSV in the console: the browser reads its header
// line and guesses the fields (姓名 → name, 手机 → mobile), the upload
// opens the import's page, whose progress bar runs to the end and then
// shows what the import did and its report.
func TestBrowser_ConsoleImportShowsItsProgress(t *testing.T) {
	bin := chromiumPath(t)
	s := startStack(t, "sqlite")
	file := filepath.Join(t.TempDir(), "客户名单.csv")
	var csv strings.Builder
	csv.WriteString("姓名,手机,备注\n")
	for i := range 300 {
		csv.WriteString("客户" + itoa(int64(i)) + ",139" + fmt8(i) + ",展会\n")
	}
	csv.WriteString("坏号码,12345,展会\n")
	if err := os.WriteFile(file, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	b := chrome(t, bin)
	var mapping, result, url, progress string
	err := chromedp.Run(b, signInActions(s.url, "admin@example.com", "admin password"),
		chromedp.Navigate(s.url+"/console/imports"),
		chromedp.WaitVisible(`form[data-import] input[type=file]`, chromedp.ByQuery),
		chromedp.SetUploadFiles(`form[data-import] input[type=file]`, []string{file}, chromedp.ByQuery),
		chromedp.WaitVisible(`select[data-column="手机"]`, chromedp.ByQuery),
		chromedp.Value(`input[name=mapping]`, &mapping, chromedp.ByQuery),
		screenshot(t, "import-mapping"),
		chromedp.Click(`form[data-import] button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#import-status p.ok`, chromedp.ByQuery),
		chromedp.Text(`#import-status`, &result, chromedp.ByQuery),
		chromedp.AttributeValue(`#import-progress`, "value", &progress, nil, chromedp.ByQuery),
		chromedp.Location(&url),
		screenshot(t, "import-done"),
	)
	if err != nil {
		t.Fatalf("import in the console: %v", err)
	}
	if mapping != `{"姓名":"name","手机":"mobile"}` {
		t.Fatalf("the guessed mapping: %s", mapping)
	}
	if progress != "100" || !strings.Contains(url, "/console/imports/") || !strings.Contains(result, "共 301 行") || !strings.Contains(result, "新建 300") || !strings.Contains(result, "拒绝 1") {
		t.Fatalf("the import's page %s: %q", url, result)
	}
}

// fmt8 is n as eight digits.
func fmt8(n int) string {
	s := itoa(int64(n))
	return strings.Repeat("0", 8-len(s)) + s
}

// A marketer's view of a channel code: listed with its QR (downloadable
// as PNG), and once a customer scans it through the fake WeCom, the add
// is in the channel results' chart and table for today.
func TestBrowser_ConsoleCodeAndChannelResults(t *testing.T) {
	bin := chromiumPath(t)
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	syncDirectory(t, s, admin)
	picture := filepath.Join(t.TempDir(), "poster.png")
	if err := os.WriteFile(picture, tinyPNG(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The marketer makes the code on the form: two staff members found
	// through the picker's search, a schedule round the clock every day, a
	// welcome with an image.
	b := chrome(t, bin)
	err := chromedp.Run(b, signInActions(s.url, "admin@example.com", "admin password"),
		chromedp.Navigate(s.url+"/console/codes/new"),
		chromedp.WaitVisible(`input[name=name]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=name]`, "春季海报", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=channel]`, "poster-2026-spring", chromedp.ByQuery),
		chromedp.SendKeys(`input[data-filter]`, "zhang", chromedp.ByQuery),
		chromedp.Click(`#staff-picker input[value=zhangsan]`, chromedp.ByQuery),
		chromedp.SetValue(`input[data-filter]`, "", chromedp.ByQuery),
		chromedp.Click(`#staff-picker input[value=lisi]`, chromedp.ByQuery),
		chromedp.ActionFunc(func(ctx context.Context) error {
			for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
				if err := chromedp.Click(`input[name=slot0_days][value=`+d+`]`, chromedp.ByQuery).Do(ctx); err != nil {
					return err
				}
			}
			return nil
		}),
		chromedp.SendKeys(`input[name=slot0_start]`, "00:00", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=slot0_end]`, "24:00", chromedp.ByQuery),
		chromedp.SendKeys(`textarea[name=welcome_text]`, "你好 {customer_name}，我是 {staff_name}", chromedp.ByQuery),
		chromedp.SetUploadFiles(`input[name=welcome_image]`, []string{picture}, chromedp.ByQuery),
		chromedp.WaitVisible(`#image-preview`, chromedp.ByQuery),
		screenshot(t, "code-form"),
		chromedp.Click(`form.codeform button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`img.qr`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("the code form: %v", err)
	}
	var list struct {
		Codes []livecode.Code `json:"codes"`
	}
	call(t, "GET", s.url+"/api/v1/codes", admin, nil, &list)
	if len(list.Codes) != 1 || len(list.Codes[0].Staff) != 2 || len(list.Codes[0].Settings.Schedule.Slots) != 1 || len(list.Codes[0].Settings.Welcome.Attachments) != 1 {
		t.Fatalf("the code made on the form: %+v", list.Codes)
	}
	code := list.Codes[0]
	res, err := s.fake.Scan(context.Background(), e2eCorp, code.ConfigID, fake.Customer{Name: "Mei"})
	if err != nil || !res.Callback.OK {
		t.Fatalf("scan: %+v %v", res, err)
	}
	waitUntil(t, "the add to be counted", func() bool {
		var st struct {
			Rows []livecode.StatsRow `json:"rows"`
		}
		today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
		call(t, "GET", s.url+"/api/v1/stats/codes?group_by=day&from="+today+"&to="+today, admin, nil, &st)
		return len(st.Rows) == 1 && st.Rows[0].Adds == 1
	})
	// The welcome went out with its text and the image.
	waitUntil(t, "the welcome", func() bool {
		var ok bool
		s.fake.Inspect(e2eCorp, func(c *fake.Corp) {
			for _, m := range c.Messages {
				ok = ok || (m.Kind == "welcome" && strings.Contains(m.Text, "你好 Mei") && len(m.Attachments) == 1 && m.Attachments[0].MsgType == "image")
			}
		})
		return ok
	})
	var qrWidth int
	var table, rendered string
	err = chromedp.Run(b,
		chromedp.Navigate(s.url+"/console/codes"),
		chromedp.WaitVisible(`#code-`+itoa(code.ID)+` img.qr`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#code-`+itoa(code.ID)+` img.qr").naturalWidth`, &qrWidth),
		screenshot(t, "codes"),
		chromedp.Navigate(s.url+"/console/results"),
		chromedp.WaitVisible(`#results-chart[data-rendered="true"] canvas`, chromedp.ByQuery),
		chromedp.WaitVisible(`#retention-chart[data-rendered="true"] canvas`, chromedp.ByQuery),
		chromedp.Text(`main table tbody`, &table, chromedp.ByQuery),
		chromedp.AttributeValue(`#results-chart`, "data-rendered", &rendered, nil, chromedp.ByQuery),
		screenshot(t, "results"),
	)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	if qrWidth != 128 {
		t.Fatalf("the code's QR image is %d px wide, want 128 (a broken image is 0)", qrWidth)
	}
	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	if !strings.Contains(table, today) || !strings.Contains(strings.Fields(table[strings.Index(table, today):])[2], "1") {
		t.Fatalf("today's row: %q", table)
	}
	// The PNG download the page links to is a PNG of the asked size.
	cu := newBrowser(t, s.url, "zh-CN")
	cu.signIn("admin@example.com", "admin password")
	st, body, h := cu.do("GET", "/console/codes/"+itoa(code.ID)+"/qr.png?size=1024", nil, false, false)
	if st != http.StatusOK || h.Get("Content-Type") != "image/png" || !strings.HasPrefix(body, "\x89PNG") {
		t.Fatalf("QR download: %d %s", st, h.Get("Content-Type"))
	}
}

// The chat sidebar in the sandbox, 360 px wide as in WeCom: WeCom's OAuth
// (the fake's) signs zhangsan in, the stand-in JS-SDK checks the page's
// signatures and names the customer, the card shows them, and a tag picked
// there reaches the fake WeCom.
func TestBrowser_SidebarAddsATagThatReachesWeCom(t *testing.T) {
	bin := chromiumPath(t)
	s, customer := sidebarStack(t, "sqlite")
	tag := firstTagID(s)
	var tagName string
	s.fake.Inspect(e2eCorp, func(c *fake.Corp) { tagName = c.TagGroups[0].Tags[0].Name })
	b := chrome(t, bin)
	var card string
	err := chromedp.Run(b, chromedp.EmulateViewport(360, 720),
		chromedp.Navigate(s.url+"/sidebar?corp="+e2eCorp+"&external_userid="+customer), // the stand-in JS-SDK answers this customer
		chromedp.WaitVisible(`#contact article.card select[name=add]`, chromedp.ByQuery),
		screenshot(t, "sidebar"),
		chromedp.SetValue(`#contact select[name=add]`, tag, chromedp.ByQuery),
		chromedp.Click(`#contact form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#contact .tag`, chromedp.ByQuery),
		chromedp.Text(`#contact`, &card, chromedp.ByQuery),
		screenshot(t, "sidebar-tagged"),
	)
	if err != nil {
		t.Fatalf("sidebar: %v", err)
	}
	if !strings.Contains(card, "陈小姐") || !strings.Contains(card, tagName) {
		t.Fatalf("the card: %q", card)
	}
	if !followTagged(s, customer, "zhangsan", tag) {
		t.Fatal("the tag did not reach WeCom")
	}
}
