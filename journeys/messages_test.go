package journeys

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qiflow/qiflow/kv/kvtest"
	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/fake"
	"github.com/qiflow/qiflow/wecom/media"
)

// Customer messages go through the staff member at the fake WeCom, once
// per step, within the corp's caps (one a day here), never in quiet hours
// (21:00–08:00), never to a person who opted out; once the staff member
// confirms, the result is tracked and recorded as the person's activity.
func TestMessages_CapsQuietHoursOptOutAndOnce(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		fk, base := fake.StartForTest(t, corp, true)
		fk.SetClock(func() time.Time { return time.UnixMilli(f.now.Load()) })
		api := wecom.NewAPI(base, kvtest.Open(t), 10*time.Second, wecom.CorpApp{CorpID: corp, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
		f.s.SetMessenger(api, nil)
		for i := range 3 {
			if _, err := fk.Add(ctx, corp, "zhangsan", fake.Customer{ExternalUserID: fmt.Sprint("wm", i)}, 1); err != nil {
				t.Fatal(err)
			}
		}
		ids := f.seed(t, 3) // wm0, wm1, wm2, added by zhangsan
		if _, err := f.s.SetMessageSettings(ctx, corp, MessageSettings{CapDay: 1, CapWeek: 3, QuietStart: "21:00", QuietEnd: "08:00", OptOutActivity: "contact.opted_out"}); err != nil {
			t.Fatal(err)
		}
		f.activity(t, "contact.opted_out", ids[2])
		j := f.publish(t, "two messages", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "hello"}},
			{ID: "hello", Type: NodeAction, Action: &Action{Kind: ActionMessage, Text: "Hello {{name}}"}, Exits: map[string]string{"next": "hour"}},
			{ID: "hour", Type: NodeWait, Wait: &Wait{For: "duration", Minutes: 60}, Exits: map[string]string{"next": "again"}},
			{ID: "again", Type: NodeAction, Action: &Action{Kind: ActionMessage, Text: "Still there?"}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		// Monday 08:00: wm0 and wm2 enter; wm1 enters at 22:00, in quiet hours.
		if _, err := f.s.Enrol(ctx, corp, j.ID, []int64{ids[0], ids[2]}); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		runs := f.runsOf(t, j.ID)
		if r := runs[ids[0]]; r.Node != "hour" {
			t.Fatalf("wm0's run %+v: want past the first message", r)
		}
		if r := runs[ids[2]]; r.Node != "hour" {
			t.Fatalf("wm2 (opted out) %+v: want past the first message without one", r)
		}
		if n := fk.Calls(corp, "externalcontact/add_msg_template"); n != 1 {
			t.Fatalf("%d messages queued at WeCom, want 1 (wm2 opted out)", n)
		}
		// A retried step never queues a second copy.
		r0 := runs[ids[0]]
		r0.Step--
		p, _ := f.leads.ProfilesOf(ctx, corp, []int64{ids[0]})
		if detail, err := f.s.message(ctx, &Action{Kind: ActionMessage, Text: "Hello"}, &r0, &p[0], time.UnixMilli(f.now.Load())); err != nil || detail != "already queued" {
			t.Fatalf("a retried step: %q %v", detail, err)
		}
		// An hour on: the second message is over wm0's daily cap and waits
		// until the first is a day old (Tuesday 08:00).
		f.advance(time.Hour)
		f.tickAll(t)
		r0 = f.runsOf(t, j.ID)[ids[0]]
		if r0.Node != "again" || r0.State != StateReady || *r0.DueAt != start.Add(24*time.Hour).UnixMilli() {
			t.Fatalf("capped run %+v: want waiting at again until Tuesday 08:00", r0)
		}
		// 22:00: wm1 enters and waits for the end of quiet hours.
		f.advance(13 * time.Hour)
		if _, err := f.s.Enrol(ctx, corp, j.ID, []int64{ids[1]}); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		r1 := f.runsOf(t, j.ID)[ids[1]]
		if r1.Node != "hello" || *r1.DueAt != start.Add(24*time.Hour).UnixMilli() {
			t.Fatalf("quiet-hours run %+v: want waiting at hello until 08:00", r1)
		}
		// Tuesday 08:00: both go.
		f.advance(10 * time.Hour)
		f.tickAll(t)
		if n := fk.Calls(corp, "externalcontact/add_msg_template"); n != 3 {
			t.Fatalf("%d messages queued, want 3", n)
		}
		// zhangsan confirms; the results are tracked.
		if _, err := fk.ConfirmGroupMsg(corp, fk.PendingGroupMsgs(corp, "zhangsan")[0].ID, "zhangsan"); err != nil {
			t.Fatal(err)
		}
		n, err := f.s.TrackMessages(ctx)
		if err != nil || n != 1 {
			t.Fatalf("settled %d (%v), want 1", n, err)
		}
		counts, _ := f.leads.CountActivities(ctx, corp, []int64{ids[0]}, []leads.ActivityQuery{{Type: "wecom.message_received"}})
		if counts[ids[0]][0].N != 1 {
			t.Fatalf("received activity: %+v", counts[ids[0]])
		}
		got := 0
		for _, m := range fk.Messages(corp) {
			if m.Kind == "groupmsg" && m.ExternalUserID == "wm0" && m.Text == "Hello "+p[0].Name {
				got++
			}
		}
		if got != 1 {
			t.Fatalf("wm0 received %d copies of the first message", got)
		}
	})
}

// A notify action reaches the lead's staff member as a WeCom app message
// (the owner's, once the lead has one); a pool action moves the lead.
func TestActions_NotifyTheOwnerAndMoveToAPool(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		fk, base := fake.StartForTest(t, corp, true)
		api := wecom.NewAPI(base, kvtest.Open(t), 10*time.Second, wecom.CorpApp{CorpID: corp, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
		f.s.SetMessenger(api, func(context.Context, string, int64) (string, error) { return "lisi", nil })
		ids := f.seed(t, 2)
		pool, err := f.leads.CreatePool(ctx, leads.Pool{CorpID: corp, Name: "nurture pool"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.leads.Claim(ctx, corp, ids[1], 42); err != nil { // an owner: user 42, staff lisi
			t.Fatal(err)
		}
		j := f.publish(t, "notify", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "tell"}},
			{ID: "tell", Type: NodeAction, Action: &Action{Kind: ActionNotify, Text: "跟进 {{lead}}"}, Exits: map[string]string{"next": "move"}},
			{ID: "move", Type: NodeAction, Action: &Action{Kind: ActionPool, Pool: pool.ID}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		got := map[string]string{}
		for _, m := range fk.Messages(corp) {
			if m.Kind == "app" {
				got[m.Text] = m.UserID
			}
		}
		if got[fmt.Sprint("跟进 ", ids[0])] != "zhangsan" || got[fmt.Sprint("跟进 ", ids[1])] != "lisi" {
			t.Fatalf("app messages %v: want the unowned lead's to zhangsan (who added them), the owned one's to its owner lisi", got)
		}
		ps, _ := f.leads.ProfilesOf(ctx, corp, ids)
		for _, p := range ps {
			if p.PoolID != pool.ID {
				t.Fatalf("lead %d in pool %d, want %d", p.LeadID, p.PoolID, pool.ID)
			}
		}
	})
}

// A message's images, links, mini programs and files are uploaded to
// WeCom (the media store's media ids) and reach the customer with the
// text; a mini program WeCom would refuse is refused when the draft is
// checked, and by the fake when sent.
func TestMessages_CarryImagesAndAttachments(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		fk, base := fake.StartForTest(t, corp, true)
		api := wecom.NewAPI(base, kvtest.Open(t), 10*time.Second, wecom.CorpApp{CorpID: corp, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
		f.s.SetMessenger(api, nil)
		store := media.New(db, api)
		f.s.SetMedia(store)
		if _, err := f.s.SetMessageSettings(ctx, corp, MessageSettings{CapDay: 5, CapWeek: 10, OptOutActivity: "contact.opted_out"}); err != nil {
			t.Fatal(err)
		}
		if _, err := fk.Add(ctx, corp, "zhangsan", fake.Customer{ExternalUserID: "wm0"}, 1); err != nil {
			t.Fatal(err)
		}
		ids := f.seed(t, 1)
		img, err := store.Save(ctx, corp, "image", "poster.png", "image/png", []byte("\\x89PNG poster"), 0)
		if err != nil {
			t.Fatal(err)
		}
		pdf, err := store.Save(ctx, corp, "file", "brochure.pdf", "application/pdf", []byte("%PDF-1.4 brochure"), 0)
		if err != nil {
			t.Fatal(err)
		}
		badMini := Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "poster"}},
			{ID: "poster", Type: NodeAction, Action: &Action{Kind: ActionMessage, Attachments: []Attachment{
				{Kind: "miniprogram", Title: "商城", AppID: "wx123", Page: "pages/index", Media: img.ID},
				{Kind: "link", Title: "活动", URL: "ftp://example.com"},
			}}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}}
		fs := fieldsOf(badMini.Validate())
		if fs["nodes.poster.action.attachments[0].page"] == "" || fs["nodes.poster.action.attachments[1].url"] == "" {
			t.Fatalf("bad attachments passed: %v", fs)
		}
		j := f.publish(t, "poster", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "poster"}},
			{ID: "poster", Type: NodeAction, Action: &Action{Kind: ActionMessage, Text: "新海报", Images: []int64{img.ID}, Attachments: []Attachment{
				{Kind: "link", Title: "春季活动", URL: "https://example.com/spring", Desc: "报名"},
				{Kind: "miniprogram", Title: "商城", AppID: "wx123", Page: "pages/index.html", Media: img.ID},
				{Kind: "file", Media: pdf.ID},
			}}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		pending := fk.PendingGroupMsgs(corp, "zhangsan")
		if len(pending) != 1 || len(pending[0].Attachments) != 4 || pending[0].Text != "新海报" {
			t.Fatalf("queued %+v", pending)
		}
		atts := pending[0].Attachments
		if atts[0].Image == nil || atts[0].Image.MediaID == "" || atts[1].Link == nil || atts[1].Link.URL != "https://example.com/spring" ||
			atts[2].MiniProgram == nil || atts[2].MiniProgram.PicMediaID != atts[0].Image.MediaID || atts[3].File == nil || atts[3].File.MediaID == "" {
			t.Fatalf("attachments %+v", atts)
		}
		// The fake refuses what WeCom refuses.
		_, _, err = api.AddMsgTemplate(ctx, corp, wecom.MsgTemplate{ChatType: "single", ExternalUserID: []string{"wm0"}, Sender: "zhangsan",
			Attachments: []wecom.Attachment{{MsgType: "miniprogram", MiniProgram: &wecom.MiniProgram{Title: "商城", AppID: "wx123", Page: "pages/index", PicMediaID: atts[0].Image.MediaID}}}})
		if !wecom.IsCode(err, 40058) {
			t.Fatalf("a mini program page without .html: %v", err)
		}
	})
}

// The assign action gives an unowned lead to a user within the pool's
// caps; an owned lead keeps its owner, and a user of no corp is refused.
func TestActions_AssignAnOwner(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		f.s.SetUsers(func(_ context.Context, _ string, user int64) (bool, error) { return user == 7 || user == 42, nil })
		ids := f.seed(t, 3)
		pools, err := f.leads.Pools(ctx, corp)
		if err != nil {
			t.Fatal(err)
		}
		pools[0].MaxOpen = 1
		if _, err := f.leads.UpdatePool(ctx, pools[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := f.leads.Claim(ctx, corp, ids[1], 42); err != nil {
			t.Fatal(err)
		}
		j := f.publish(t, "assign", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "give"}},
			{ID: "give", Type: NodeAction, Action: &Action{Kind: ActionAssign, Owner: 7, Reason: "renewal"}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		ps, _ := f.leads.ProfilesOf(ctx, corp, ids)
		if ps[0].OwnerUserID != 7 || ps[1].OwnerUserID != 42 || ps[2].OwnerUserID != 0 {
			t.Fatalf("owners %d %d %d: want 7, 42 (kept), none (7 at the pool's cap)", ps[0].OwnerUserID, ps[1].OwnerUserID, ps[2].OwnerUserID)
		}
		runs := f.runsOf(t, j.ID)
		for i, want := range []string{"done", "skipped owned", "skipped at_cap"} {
			acts, err := f.s.RunActions(ctx, corp, j.ID, runs[ids[i]].ID)
			if err != nil || len(acts) != 1 || strings.TrimSpace(acts[0].Status+" "+acts[0].Detail) != want {
				t.Fatalf("lead %d's action %+v %v, want %s", i, acts, err, want)
			}
		}
		_, h, _ := f.leads.Get(ctx, corp, ids[0], leads.Viewer{All: true})
		if last := h[len(h)-1]; last.Kind != leads.HistoryAssigned || last.To != "7" || last.Reason != "renewal" {
			t.Fatalf("history %+v", last)
		}

		stranger := f.publish(t, "stranger", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "give"}},
			{ID: "give", Type: NodeAction, Action: &Action{Kind: ActionAssign, Owner: 99}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		if _, err := f.s.Enrol(ctx, corp, stranger.ID, ids[2:]); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		if r := f.runsOf(t, stranger.ID)[ids[2]]; r.State != StateFailed {
			t.Fatalf("assigning to a stranger: run %+v", r)
		}
	})
}

// The task action gives the lead's owner a follow-up task, due after the
// step by its hours, once per step even when the step runs again; a lead
// without an owner is passed over.
func TestActions_TaskForTheOwnerOncePerStep(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		ids := f.seed(t, 2)
		if _, err := f.leads.Claim(ctx, corp, ids[0], 7); err != nil {
			t.Fatal(err)
		}
		j := f.publish(t, "task", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "manual"}, Exits: map[string]string{"next": "call"}},
			{ID: "call", Type: NodeAction, Action: &Action{Kind: ActionTask, Text: "给 {{name}} 打电话", DueHours: 4}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}})
		if _, err := f.s.Enrol(ctx, corp, j.ID, ids); err != nil {
			t.Fatal(err)
		}
		f.tickAll(t)
		tasks, err := f.leads.TasksOf(ctx, corp, 7, false, 10)
		if err != nil || len(tasks) != 1 || tasks[0].LeadID != ids[0] || tasks[0].DueAt != start.Add(4*time.Hour).UnixMilli() || !strings.HasPrefix(tasks[0].Title, "给 ") {
			t.Fatalf("tasks %+v %v", tasks, err)
		}
		runs := f.runsOf(t, j.ID)
		acts, _ := f.s.RunActions(ctx, corp, j.ID, runs[ids[1]].ID)
		if len(acts) != 1 || acts[0].Status != "skipped" || acts[0].Detail != "no owner" {
			t.Fatalf("the unowned lead's action %+v", acts)
		}
		// The step again (a retried claim): the task is not made twice.
		r := runs[ids[0]]
		if _, made, err := f.leads.CreateTask(ctx, corp, 0, leads.TaskIn{LeadID: ids[0], Title: "x", DueAt: 1, Key: ActionKey(r.ID, 1)}); err != nil || made {
			t.Fatalf("the step's key made a second task (%v, %v); the action's step key differs from %q?", made, err, ActionKey(r.ID, 1))
		}
	})
}
