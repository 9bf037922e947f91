package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/qiflow/qiflow/leads"
)

// choose sets a control's value as a person would and tells the page (the
// designer listens for input and change events).
func choose(sel, value string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var ok bool
		js := `(() => { const e = document.querySelector(` + jsString(sel) + `); if (!e) return false; e.value = ` + jsString(value) + `;
			e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`
		if err := chromedp.Evaluate(js, &ok).Do(ctx); err != nil {
			return err
		}
		if !ok {
			return errNoElement(sel)
		}
		return nil
	})
}

// stepper runs a named step of a browser test within 20 s; a failure
// shows the step, the page's errors and its text, with a screenshot.
func stepper(t *testing.T, b context.Context, errs *[]string) func(what string, actions ...chromedp.Action) {
	return func(what string, actions ...chromedp.Action) {
		t.Helper()
		ctx, cancel := context.WithTimeout(b, 20*time.Second)
		defer cancel()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var text string
			chromedp.Run(b, screenshot(t, "failed"), chromedp.Text("main", &text, chromedp.ByQuery))
			t.Fatalf("%s: %v; page errors %v; page: %.600s", what, err, *errs, text)
		}
	}
}

// pollAcrossLoads evaluates js until it is true, through page loads: an
// evaluation in a document being replaced fails ("Cannot find context"),
// and is simply tried again in the next one (chromedp.Poll stops there).
func pollAcrossLoads(js string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var ok bool
			if err := chromedp.Evaluate(js, &ok).Do(ctx); err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

type errNoElement string

func (e errNoElement) Error() string { return "no element " + string(e) }

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// A marketer builds a small journey in the designer (entry → action →
// exit, connected from the side panel), publishes it, enrols a lead, and
// sees the person reach the exit in the statistics drawn on the graph.
// The segment editor shows its count as the filter is edited.
func TestBrowser_DesignerBuildsPublishesAndShowsAPersonMoving(t *testing.T) {
	bin := chromiumPath(t)
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	var created struct {
		Lead leads.Lead `json:"lead"`
	}
	if st := call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "韩梅梅", "mobile": "13912345600"}, &created); st != http.StatusCreated {
		t.Fatalf("create lead: %d", st)
	}
	b := chrome(t, bin)
	var errs []string
	listenConsoleErrors(b, &errs)
	step := stepper(t, b, &errs)
	step("sign in", signInActions(s.url, "admin@example.com", "admin password"))
	step("new journey", chromedp.Navigate(s.url+"/console/journeys"),
		chromedp.SendKeys(`input[name="name"]`, "欢迎旅程", chromedp.ByQuery),
		chromedp.Click(`form[action="/console/journeys"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#designer-canvas svg`, chromedp.ByQuery))
	step("add an action", chromedp.Click(`[data-add="action"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#designer-panel select`, chromedp.ByQuery),
		choose(`#designer-panel select`, "activity"),
		chromedp.WaitVisible(`#designer-panel input`, chromedp.ByQuery),
		choose(`#designer-panel input`, "journey.touch"))
	step("add an exit", chromedp.Click(`[data-add="exit"]`, chromedp.ByQuery))
	// A node dragged from the palette onto the canvas gets our id and its
	// panel; then it is deleted again (the journey stays three nodes).
	step("drag a wait onto the canvas", dragFromPalette("wait"),
		chromedp.Poll(`window.QiflowDesigner.lf.getGraphData().nodes.some((n) => n.id === "wait4" && n.properties.node.type === "wait")`, nil),
		chromedp.WaitVisible(`#designer-panel h3`, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll("#designer-panel button")].find((b) => b.textContent === "删除节点").click()`, nil),
		chromedp.Poll(`!window.QiflowDesigner.lf.getGraphData().nodes.some((n) => n.id === "wait4")`, nil))
	// Connect from the panel: the entry to the action, the action to the exit.
	var ids []string
	if err := chromedp.Run(b, chromedp.Evaluate(`[...document.querySelectorAll("[data-add]")].length`, new(int))); err != nil {
		t.Fatal(err)
	}
	steps := []struct{ node, exit, to string }{{"entry1", "next", "action2"}, {"action2", "next", "exit3"}}
	for _, st := range steps {
		// Open the node's panel by clicking its shape.
		if err := chromedp.Run(b, clickNode(st.node), chromedp.WaitVisible(`#designer-panel select[data-exit="`+st.exit+`"]`, chromedp.ByQuery),
			choose(`#designer-panel select[data-exit="`+st.exit+`"]`, st.to)); err != nil {
			t.Fatalf("connect %s.%s → %s: %v", st.node, st.exit, st.to, err)
		}
		ids = append(ids, st.node)
	}
	var problems string
	if err := chromedp.Run(b, chromedp.Click(`#designer-save`, chromedp.ByQuery), chromedp.WaitVisible(`#designer-status`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("designer-status").textContent !== ""`, nil),
		chromedp.AttributeValue(`#designer`, "data-problems", &problems, nil, chromedp.ByQuery), screenshot(t, "designer-built")); err != nil {
		t.Fatalf("save: %v", err)
	}
	if problems != "0" {
		var text string
		chromedp.Run(b, chromedp.Text(`#designer-errors`, &text, chromedp.ByQuery))
		t.Fatalf("the draft has problems: %s", text)
	}
	// Publishing reloads the page (published, with the enrol form).
	step("publish", chromedp.Evaluate(`document.getElementById("designer-publish").click()`, nil))
	step("enrol", chromedp.WaitVisible(`input[name="lead_ids"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="lead_ids"]`, itoa(created.Lead.ID), chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('form[action$="/enrol"]').requestSubmit()`, nil))
	// The statistics on the exit node show the person who went through.
	// The enrolment's post reloads the page: the poll outlives documents.
	step("see the person at the exit", pollAcrossLoads(`(() => { const t = [...document.querySelectorAll("#designer-canvas text")].find((e) => e.textContent.includes("exit3"));
			return !!t && t.textContent.includes("进入 1"); })()`),
		screenshot(t, "designer-published"))
	var drawn int
	step("count the edges", chromedp.Evaluate(`document.querySelectorAll("#designer-canvas .lf-edge").length`, &drawn))
	if drawn != 2 {
		var model string
		chromedp.Run(b, chromedp.Evaluate(`JSON.stringify(window.QiflowDesigner.lf.getGraphData().edges)`, &model))
		t.Fatalf("%d edges drawn, want 2; the model's: %s", drawn, model)
	}
	var st struct {
		Journey struct {
			Enrolled, Active, Exited, Goals int64
		} `json:"journey"`
	}
	var list struct {
		Journeys []struct {
			ID int64 `json:"id"`
		} `json:"journeys"`
	}
	call(t, "GET", s.url+"/api/v1/journeys", admin, nil, &list)
	call(t, "GET", s.url+"/api/v1/journeys/"+itoa(list.Journeys[0].ID)+"/stats", admin, nil, &st)
	if st.Journey.Enrolled != 1 || st.Journey.Active != 0 {
		t.Fatalf("stats %+v", st.Journey)
	}

	// The segment editor counts as the filter changes.
	var count string
	if err := chromedp.Run(b, chromedp.Navigate(s.url+"/console/segments/new"),
		chromedp.WaitVisible(`[data-add-row="field"]`, chromedp.ByQuery),
		chromedp.Click(`[data-add-row="field"]`, chromedp.ByQuery),
		choose(`.filter-row select`, "name"),
		choose(`.filter-row input`, "韩梅梅"),
		chromedp.Poll(`document.getElementById("segment-preview").dataset.matched === "1"`, nil),
		chromedp.Text(`#segment-preview`, &count, chromedp.ByQuery), screenshot(t, "segment-editor")); err != nil {
		t.Fatalf("segment editor: %v", err)
	}
	if !strings.Contains(count, "1") {
		t.Fatalf("count %q", count)
	}
	if len(errs) > 0 {
		t.Fatalf("the pages logged errors (CSP?): %v", errs)
	}
}

// clickNode clicks a node of the designer's canvas by its id, through
// LogicFlow's own element (its shape's group carries the id).
func clickNode(id string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var box []float64
		js := `(() => { const t = [...document.querySelectorAll("#designer-canvas text")].find((e) => e.textContent.includes(` + jsString(id) + `));
			if (!t) return []; const r = t.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`
		if err := chromedp.Evaluate(js, &box).Do(ctx); err != nil {
			return err
		}
		if len(box) != 2 {
			return errNoElement("node " + id)
		}
		return chromedp.MouseClickXY(box[0], box[1]).Do(ctx)
	})
}

// listenConsoleErrors records the page's uncaught exceptions and console
// errors (a Content-Security-Policy violation is one) into errs.
func listenConsoleErrors(ctx context.Context, errs *[]string) {
	var mu sync.Mutex
	chromedp.ListenTarget(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			*errs = append(*errs, e.ExceptionDetails.Error())
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.LevelError && !strings.Contains(e.Entry.URL, "favicon") {
				*errs = append(*errs, e.Entry.Text)
			}
		}
	})
	_ = chromedp.Run(ctx, cdplog.Enable(), runtime.Enable())
}

// dragFromPalette drags a palette button onto the middle of the canvas with
// the mouse, as a marketer would.
func dragFromPalette(kind string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var pts []float64
		js := `(() => { const b = document.querySelector('[data-add="` + kind + `"]').getBoundingClientRect();
			const c = document.getElementById("designer-canvas").getBoundingClientRect();
			return [b.x + b.width / 2, b.y + b.height / 2, c.x + c.width / 2, c.y + c.height / 2]; })()`
		if err := chromedp.Evaluate(js, &pts).Do(ctx); err != nil {
			return err
		}
		for _, ev := range []struct {
			typ  input.MouseType
			x, y float64
		}{{input.MousePressed, pts[0], pts[1]}, {input.MouseMoved, (pts[0] + pts[2]) / 2, (pts[1] + pts[3]) / 2}, {input.MouseMoved, pts[2], pts[3]}, {input.MouseReleased, pts[2], pts[3]}} {
			p := input.DispatchMouseEvent(ev.typ, ev.x, ev.y).WithButton(input.Left).WithClickCount(1)
			if ev.typ == input.MouseMoved {
				p = p.WithButtons(1)
			}
			if err := p.Do(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

// The designer's panels for what marketers build beyond the basics: a
// condition made multi-way, each case with its own name (its exit) and a
// filter built with the builder; a message with a link card; an action
// assigning an owner; an entry on one of the corp's date fields. The
// saved draft holds exactly what was built.
func TestBrowser_DesignerCasesAttachmentsAssignAndDateEntry(t *testing.T) {
	bin := chromiumPath(t)
	s := startStack(t, "sqlite")
	admin := login(t, s.url, "admin@example.com", "admin password")
	if st := call(t, "PUT", s.url+"/api/v1/lead-fields/renewal_date", admin, map[string]any{"label": "续约日期", "kind": "date"}, nil); st != http.StatusOK {
		t.Fatalf("define a field: %d", st)
	}
	b := chrome(t, bin)
	var errs []string
	listenConsoleErrors(b, &errs)
	step := stepper(t, b, &errs)
	step("sign in", signInActions(s.url, "admin@example.com", "admin password"))
	step("new journey", chromedp.Navigate(s.url+"/console/journeys"),
		chromedp.SendKeys(`input[name="name"]`, "续约旅程", chromedp.ByQuery),
		chromedp.Click(`form[action="/console/journeys"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#designer-canvas svg`, chromedp.ByQuery))
	// The entry (entry1, already there) on the date field.
	step("date entry", clickNode("entry1"), chromedp.WaitVisible(`#designer-panel select`, chromedp.ByQuery),
		choose(`#designer-panel select`, "date"),
		chromedp.Poll(`[...document.querySelectorAll("#designer-panel select option")].some((o) => o.value === "renewal_date")`, nil),
		choose(`#designer-panel input[type="number"]`, "-30"))
	step("a multi-way condition", chromedp.Click(`[data-add="condition"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#designer-panel .filter-adds`, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll("#designer-panel button")].find((b) => b.textContent === "改为多路条件").click()`, nil),
		chromedp.WaitVisible(`#designer-panel fieldset.case input`, chromedp.ByQuery),
		choose(`#designer-panel fieldset.case input`, "vip"),
		chromedp.WaitVisible(`#designer-panel select[data-exit="vip"]`, chromedp.ByQuery),
		chromedp.Click(`#designer-panel fieldset.case [data-add-row="field"]`, chromedp.ByQuery),
		choose(`#designer-panel fieldset.case .filter-row select`, "fields.renewal_date"),
		choose(`#designer-panel fieldset.case .filter-row select[aria-label="op"]`, "lte"),
		choose(`#designer-panel fieldset.case .filter-row input`, "2027-06-30"),
		chromedp.Evaluate(`[...document.querySelectorAll("#designer-panel button")].find((b) => b.textContent.startsWith("+ 添加分支")).click()`, nil),
		chromedp.WaitVisible(`#designer-panel select[data-exit="case2"]`, chromedp.ByQuery),
		screenshot(t, "designer-cases"))
	step("a message with a link", chromedp.Click(`[data-add="action"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#designer-panel select`, chromedp.ByQuery),
		choose(`#designer-panel select`, "message"),
		chromedp.WaitVisible(`#designer-panel textarea`, chromedp.ByQuery),
		choose(`#designer-panel textarea`, "续约提醒"),
		chromedp.Evaluate(`[...document.querySelectorAll("#designer-panel button")].find((b) => b.textContent.startsWith("+ 链接")).click()`, nil),
		chromedp.WaitVisible(`#designer-panel fieldset.attachment input[type="url"]`, chromedp.ByQuery),
		choose(`#designer-panel fieldset.attachment input`, "续约优惠"),
		choose(`#designer-panel fieldset.attachment input[type="url"]`, "https://example.com/renew"),
		screenshot(t, "designer-attachment"))
	step("assign an owner", chromedp.Click(`[data-add="action"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#designer-panel select`, chromedp.ByQuery),
		choose(`#designer-panel select`, "assign"),
		chromedp.Poll(`[...document.querySelectorAll("#designer-panel select option")].some((o) => o.textContent === "按分配规则")`, nil))
	step("save", chromedp.Click(`#designer-save`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("designer-status").textContent !== ""`, nil))
	var list struct {
		Journeys []struct {
			ID int64 `json:"id"`
		} `json:"journeys"`
	}
	call(t, "GET", s.url+"/api/v1/journeys", admin, nil, &list)
	var j struct {
		Draft struct {
			Nodes []struct {
				ID    string `json:"id"`
				Entry *struct {
					On         string `json:"on"`
					Field      string `json:"field"`
					OffsetDays int    `json:"offset_days"`
				} `json:"entry"`
				Cases []struct {
					Name      string         `json:"name"`
					Condition map[string]any `json:"condition"`
				} `json:"cases"`
				Action *struct {
					Kind        string `json:"kind"`
					Attachments []struct {
						Kind, Title, URL string
					} `json:"attachments"`
				} `json:"action"`
			} `json:"nodes"`
		} `json:"draft"`
	}
	if st := call(t, "GET", s.url+"/api/v1/journeys/"+itoa(list.Journeys[0].ID), admin, nil, &j); st != 200 {
		t.Fatalf("read the draft: %d", st)
	}
	var entry, cases, link, assign bool
	for _, n := range j.Draft.Nodes {
		if e := n.Entry; e != nil && e.On == "date" && e.Field == "renewal_date" && e.OffsetDays == -30 {
			entry = true
		}
		if len(n.Cases) == 2 && n.Cases[0].Name == "vip" && n.Cases[1].Name == "case2" && strings.Contains(mustJSON(n.Cases[0].Condition), `"fields.renewal_date"`) {
			cases = true
		}
		if a := n.Action; a != nil && a.Kind == "message" && len(a.Attachments) == 1 && a.Attachments[0].Kind == "link" && a.Attachments[0].URL == "https://example.com/renew" {
			link = true
		}
		if a := n.Action; a != nil && a.Kind == "assign" {
			assign = true
		}
	}
	if !entry || !cases || !link || !assign {
		t.Fatalf("the draft: date entry %v, cases %v, link %v, assign %v: %+v", entry, cases, link, assign, j.Draft)
	}
	if len(errs) > 0 {
		t.Fatalf("page errors: %v", errs)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
