package wecom_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/qiflow/qiflow/kv"
	"github.com/qiflow/qiflow/kv/kvtest"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/fake"
)

const corp = "wwtestcorp0001"

func setup(t *testing.T) (*fake.Fake, *wecom.API) {
	t.Helper()
	f, base := fake.StartForTest(t, corp, true)
	api := wecom.NewAPI(base, kvtest.Open(t), 10*time.Second, wecom.CorpApp{CorpID: corp, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
	return f, api
}

func TestAPI_DirectoryAndTags(t *testing.T) {
	_, api := setup(t)
	ctx := context.Background()
	depts, err := api.ListDepartments(ctx, corp)
	if err != nil || len(depts) != 4 {
		t.Fatalf("departments: %v %v", depts, err)
	}
	staff, err := api.ListStaff(ctx, corp, 2)
	if err != nil || len(staff) != 2 {
		t.Fatalf("staff of sales: %v %v", staff, err)
	}
	if _, err := api.GetStaff(ctx, corp, "nobody"); !wecom.IsCode(err, 60111) {
		t.Fatalf("unknown user: %v", err)
	}
	g, err := api.AddCorpTags(ctx, corp, wecom.TagGroup{GroupName: "Interest", Tags: []wecom.CorpTag{{Name: "Golf"}}})
	if err != nil || len(g.Tags) != 1 {
		t.Fatalf("add tag: %+v %v", g, err)
	}
	if err := api.EditCorpTag(ctx, corp, g.Tags[0].ID, "Tennis", 1); err != nil {
		t.Fatal(err)
	}
	groups, _ := api.ListCorpTags(ctx, corp)
	found := false
	for _, x := range groups {
		for _, tg := range x.Tags {
			found = found || tg.Name == "Tennis"
		}
	}
	if !found {
		t.Fatal("renamed tag not listed")
	}
}

func TestAPI_ContactWayValidationAndScan(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	yes := true
	if _, _, err := api.AddContactWay(ctx, corp, wecom.ContactWay{Type: 2, Scene: 2, State: strings.Repeat("s", 31), User: []string{"zhangsan"}, SkipVerify: &yes}); !wecom.IsCode(err, 40058) {
		t.Fatalf("state over 30 chars: %v", err)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = "zhangsan"
	}
	if _, _, err := api.AddContactWay(ctx, corp, wecom.ContactWay{Type: 2, Scene: 2, User: many}); !wecom.IsCode(err, wecom.CodeInvalidParameter) {
		t.Fatalf("over 100 users: %v", err)
	}
	id, qr, err := api.AddContactWay(ctx, corp, wecom.ContactWay{Type: 2, Scene: 2, State: "poster", User: []string{"zhangsan", "lisi"}, SkipVerify: &yes})
	if err != nil || id == "" || qr == "" {
		t.Fatalf("add: %q %q %v", id, qr, err)
	}
	if err := api.UpdateContactWay(ctx, corp, wecom.ContactWay{ConfigID: id, State: "poster", User: []string{"wangwu"}}); err != nil {
		t.Fatal(err)
	}
	w, err := api.GetContactWay(ctx, corp, id)
	if err != nil || len(w.User) != 1 || w.User[0] != "wangwu" {
		t.Fatalf("get: %+v %v", w, err)
	}
	// Nobody listens for callbacks here: the scan still changes the world.
	res, err := f.Scan(ctx, corp, id, fake.Customer{Name: "Zoe"})
	if err != nil || res.UserID != "wangwu" || res.State != "poster" {
		t.Fatalf("scan: %+v %v", res, err)
	}
	if res.Callback.OK || res.Callback.Attempts != 0 && res.Callback.Err == nil {
		t.Fatalf("callback without a URL: %+v", res.Callback)
	}
	d, err := api.GetExternalContact(ctx, corp, res.ExternalUserID)
	if err != nil || d.ExternalContact.Name != "Zoe" || len(d.FollowUser) != 1 || d.FollowUser[0].State != "poster" {
		t.Fatalf("contact: %+v %v", d, err)
	}
	if err := api.DeleteContactWay(ctx, corp, id); err != nil {
		t.Fatal(err)
	}
	if _, err := api.GetContactWay(ctx, corp, id); !wecom.IsCode(err, 41044) {
		t.Fatalf("deleted way: %v", err)
	}
}

func TestAPI_WelcomeCodeIsSingleUseAndLives20s(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	now := time.Now()
	var mu sync.Mutex
	f.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	res, err := f.Add(ctx, corp, "zhangsan", fake.Customer{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	msg := wecom.WelcomeMsg{WelcomeCode: res.WelcomeCode, Text: &wecom.Text{Content: "Hi"}}
	if err := api.SendWelcomeMsg(ctx, corp, msg); err != nil {
		t.Fatal(err)
	}
	if err := api.SendWelcomeMsg(ctx, corp, msg); !wecom.IsCode(err, wecom.CodeWelcomeCodeUsed) {
		t.Fatalf("second use: %v", err)
	}
	if err := api.SendWelcomeMsg(ctx, corp, wecom.WelcomeMsg{WelcomeCode: "never-issued", Text: &wecom.Text{Content: "Hi"}}); !wecom.IsCode(err, wecom.CodeWelcomeCodeInvalid) {
		t.Fatalf("unknown code: %v", err)
	}
	res2, _ := f.Add(ctx, corp, "lisi", fake.Customer{}, 1)
	mu.Lock()
	now = now.Add(21 * time.Second)
	mu.Unlock()
	if err := api.SendWelcomeMsg(ctx, corp, wecom.WelcomeMsg{WelcomeCode: res2.WelcomeCode, Text: &wecom.Text{Content: "Hi"}}); !wecom.IsCode(err, wecom.CodeWelcomeCodeInvalid) {
		t.Fatalf("after 20 s: %v", err)
	}
	msgs := f.Messages(corp)
	if len(msgs) != 1 || msgs[0].Text != "Hi" || msgs[0].ExternalUserID != res.ExternalUserID {
		t.Fatalf("messages: %+v", msgs)
	}
}

func TestAPI_RecoversFromTokenInvalidationBusyAndRateLimits(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	if _, err := api.ListDepartments(ctx, corp); err != nil {
		t.Fatal(err)
	}
	f.InvalidateTokens()
	if _, err := api.ListDepartments(ctx, corp); err != nil {
		t.Fatalf("after token invalidation: %v", err)
	}
	if n := f.Calls(corp, "department/list"); n != 2 {
		t.Fatalf("department/list reached the world %d times, want 2 (before, and the retry with a fresh token)", n)
	}
	f.Inject(fake.Fault{Endpoint: "department/list", ErrCode: 45009, Count: 2})
	if _, err := api.ListDepartments(ctx, corp); err != nil {
		t.Fatalf("after a 45009 burst: %v", err)
	}
	f.Inject(fake.Fault{Endpoint: "department/list", ErrCode: -1, Count: 1})
	f.Inject(fake.Fault{Endpoint: "user/get", Status: 502, Count: 1})
	f.Inject(fake.Fault{Endpoint: "user/list", Drop: true, Count: 1})
	if _, err := api.ListDepartments(ctx, corp); err != nil {
		t.Fatalf("after -1: %v", err)
	}
	if _, err := api.GetStaff(ctx, corp, "zhangsan"); err != nil {
		t.Fatalf("after a 502: %v", err)
	}
	if _, err := api.ListStaff(ctx, corp, 2); err != nil {
		t.Fatalf("after a dropped connection: %v", err)
	}
	f.Inject(fake.Fault{Endpoint: "user/get", ErrCode: 45009})
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, err := api.GetStaff(short, corp, "zhangsan")
	if !wecom.IsCode(err, 45009) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("persistent 45009: %v", err)
	}
	f.ClearFaults()
}

func TestAPI_MediaUpload(t *testing.T) {
	f, api := setup(t)
	id, at, err := api.UploadMedia(context.Background(), corp, "image", "a.png", bytes.NewReader([]byte("\x89PNG fake image bytes")))
	if err != nil || id == "" || at.IsZero() {
		t.Fatalf("upload: %q %v %v", id, at, err)
	}
	res, _ := f.Add(context.Background(), corp, "zhangsan", fake.Customer{}, 1)
	err = api.SendWelcomeMsg(context.Background(), corp, wecom.WelcomeMsg{WelcomeCode: res.WelcomeCode,
		Attachments: []wecom.Attachment{{MsgType: "image", Image: &wecom.Image{MediaID: id}}}})
	if err != nil {
		t.Fatalf("welcome with uploaded image: %v", err)
	}
}

func TestLimiter_PriorityGoesFirstAndRateHolds(t *testing.T) {
	for _, b := range kvtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			l := wecom.NewLimiter(b.Open(t))
			// 100 a day: a new permit every 16 minutes, so however slow the
			// machine, no permit accrues while the test counts the burst.
			lim := wecom.Limit{Per: 100, Window: 24 * time.Hour}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			normal := 0
			for l.Wait(ctx, "k", lim, false) == nil {
				normal++
			}
			// Normal calls may use half the 10% burst (5 calls), then must wait.
			if normal < 4 || normal > 6 {
				t.Fatalf("normal calls admitted at once: %d", normal)
			}
			ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel2()
			prio := 0
			for l.Wait(ctx2, "k", lim, true) == nil {
				prio++
			}
			if prio < 4 {
				t.Fatalf("priority calls got no reserve: %d", prio)
			}
		})
	}
}

// Redis holds only what can be lost: while it is down, welcomes still go
// out on this process's token and rate limit.
func TestAPI_WelcomesGoOutWhileRedisIsDown(t *testing.T) {
	f, base := fake.StartForTest(t, corp, true)
	m := miniredis.RunT(t)
	store, err := kv.Open(context.Background(), kv.Options{Addr: m.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	api := wecom.NewAPI(base, store, 5*time.Second, wecom.CorpApp{CorpID: corp, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
	ctx := context.Background()
	m.Close() // down before the first token: the process fetches its own
	for i := 0; i < 5; i++ {
		res, err := f.Add(ctx, corp, "zhangsan", fake.Customer{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := api.SendWelcomeMsg(ctx, corp, wecom.WelcomeMsg{WelcomeCode: res.WelcomeCode, Text: &wecom.Text{Content: "Hi"}}); err != nil {
			t.Fatalf("welcome %d with Redis down: %v", i, err)
		}
	}
	if n := len(f.Messages(corp)); n != 5 {
		t.Fatalf("%d of 5 welcomes arrived", n)
	}
	if n := f.Calls(corp, "gettoken"); n != 1 {
		t.Fatalf("%d token fetches for 5 calls: the token is not kept", n)
	}
}

// The token refresh serves every waiter under its own context: the caller
// that started it giving up fails nobody else.
func TestAPI_TokenRefreshOutlivesItsFirstCaller(t *testing.T) {
	f, api := setup(t)
	gate := make(chan struct{})
	f.Inject(fake.Fault{Endpoint: "gettoken", Count: 1, Gate: gate})
	first, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, err := api.ListDepartments(first, corp); firstErr <- err }()
	for f.Held() == 0 {
		time.Sleep(time.Millisecond) // wait for the refresh to reach WeCom
	}
	secondErr := make(chan error, 1)
	go func() { _, err := api.ListDepartments(context.Background(), corp); secondErr <- err }()
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled caller: %v", err)
	}
	close(gate)
	if err := <-secondErr; err != nil {
		t.Fatalf("the caller waiting on the same refresh: %v", err)
	}
	if n := f.Calls(corp, "gettoken"); n != 1 {
		t.Fatalf("%d token fetches", n)
	}
}

// A call that changes something is not sent again after WeCom may have
// acted on it (a 5xx, a timeout); a read is.
func TestAPI_RetriesOnlyWhatIsSafeToRepeat(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	f.Inject(fake.Fault{Endpoint: "externalcontact/add_contact_way", Count: 2, Status: 502})
	if _, _, err := api.AddContactWay(ctx, corp, wecom.ContactWay{Type: 1, Scene: 2, User: []string{"zhangsan"}}); err == nil {
		t.Fatal("an add answered 502 was retried until it succeeded: it may now exist twice")
	}
	f.ClearFaults()
	id, _, err := api.AddContactWay(ctx, corp, wecom.ContactWay{Type: 1, Scene: 2, User: []string{"zhangsan"}})
	if err != nil {
		t.Fatal(err)
	}
	f.Inject(fake.Fault{Endpoint: "externalcontact/get_contact_way", Count: 1, Status: 502})
	if _, err := api.GetContactWay(ctx, corp, id); err != nil {
		t.Fatalf("a read answered 502 once was not retried: %v", err)
	}
}

// del_corp_tag gets lists, never null: deleting tags without groups works
// against a WeCom that refuses a null group_id.
func TestAPI_DeleteTagsSendsListsNotNull(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	var id string
	f.Inspect(corp, func(c *fake.Corp) { id = c.TagGroups[0].Tags[0].ID })
	if err := api.DeleteCorpTags(ctx, corp, []string{id}, nil); err != nil {
		t.Fatal(err)
	}
	gone := true
	f.Inspect(corp, func(c *fake.Corp) {
		for _, g := range c.TagGroups {
			for _, tg := range g.Tags {
				gone = gone && tg.ID != id
			}
		}
	})
	if !gone {
		t.Fatal("the tag is still there")
	}
}

// Tags under an existing group name join that group (WeCom makes no second
// group of the name); a name already in the group is refused (40071), and
// the refused request adds nothing.
func TestAPI_TagsJoinTheirGroupByName(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	first, err := api.AddCorpTags(ctx, corp, wecom.TagGroup{GroupName: "Interest", Tags: []wecom.CorpTag{{Name: "Golf"}}})
	if err != nil {
		t.Fatal(err)
	}
	second, err := api.AddCorpTags(ctx, corp, wecom.TagGroup{GroupName: "Interest", Tags: []wecom.CorpTag{{Name: "Sailing"}}})
	if err != nil || second.GroupID != first.GroupID {
		t.Fatalf("same group name: %+v %v, want group %s", second, err, first.GroupID)
	}
	if _, err := api.AddCorpTags(ctx, corp, wecom.TagGroup{GroupName: "Interest", Tags: []wecom.CorpTag{{Name: "Chess"}, {Name: "Golf"}}}); !wecom.IsCode(err, 40071) {
		t.Fatalf("duplicate name: %v", err)
	}
	var groups, tags int
	f.Inspect(corp, func(c *fake.Corp) {
		for _, g := range c.TagGroups {
			if g.GroupName == "Interest" {
				groups++
				tags += len(g.Tags)
			}
		}
	})
	if groups != 1 || tags != 2 {
		t.Fatalf("%d groups named Interest with %d tags, want 1 with 2", groups, tags)
	}
}

// A resigned transfer of staff still in the corp is refused (40097); once
// they left, WeCom reports each customer's outcome through transfer_result.
func TestAPI_ResignedTransferAndItsResult(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	res, err := f.Add(ctx, corp, "zhangsan", fake.Customer{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.TransferResignedCustomers(ctx, corp, "zhangsan", "lisi", []string{res.ExternalUserID}); !wecom.IsCode(err, wecom.CodeStaffNotResigned) {
		t.Fatalf("staff still employed: %v", err)
	}
	f.Mutate(corp, func(c *fake.Corp) { delete(c.Staff, "zhangsan") })
	out, err := api.TransferResignedCustomers(ctx, corp, "zhangsan", "lisi", []string{res.ExternalUserID})
	if err != nil || len(out) != 1 || out[0].ErrCode != 0 {
		t.Fatalf("transfer: %+v %v", out, err)
	}
	st, next, err := api.ResignedTransferResult(ctx, corp, "zhangsan", "lisi", "")
	if err != nil || next != "" || len(st) != 1 || st[0].ExternalUserID != res.ExternalUserID || st[0].Status != wecom.TransferDone {
		t.Fatalf("transfer_result: %+v %q %v", st, next, err)
	}
}

// WeCom lists only the last 90 days' contact ways unless asked for a start
// time: Qiflow's reconcile must see the old ways too.
func TestAPI_ListContactWaysReachesWaysOlderThan90Days(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	yes := true
	id, _, err := api.AddContactWay(ctx, corp, wecom.ContactWay{Type: 1, Scene: 2, User: []string{"zhangsan"}, SkipVerify: &yes})
	if err != nil {
		t.Fatal(err)
	}
	f.Inspect(corp, func(c *fake.Corp) { c.WayCreated[id] = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Unix() })
	ids, _, err := api.ListContactWays(ctx, corp, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range ids {
		found = found || x == id
	}
	if !found {
		t.Fatalf("a way made in 2022 is missing from %v", ids)
	}
}

// WeCom hands at most 300 of one person's groups to a new owner a day.
func TestAPI_GroupTransferStopsAt300ADayPerNewOwner(t *testing.T) {
	f, api := setup(t)
	ctx := context.Background()
	names := make([]string, 301)
	for i := range names {
		names[i] = fmt.Sprint("group ", i)
	}
	chats := f.SeedGroups(corp, "zhangsan", names...)
	var failed []wecom.TransferResult
	for start := 0; start < len(chats); start += 100 {
		res, err := api.TransferGroupChats(ctx, corp, chats[start:min(start+100, len(chats))], "wangwu")
		if err != nil {
			t.Fatal(err)
		}
		failed = append(failed, res...)
	}
	if len(failed) != 1 || failed[0].ChatID != chats[300] || failed[0].ErrCode == 0 {
		t.Fatalf("failed %+v, want only the 301st group refused", failed)
	}
	// Another new owner has a quota of its own.
	if res, err := api.TransferGroupChats(ctx, corp, chats[300:], "lisi"); err != nil || len(res) != 0 {
		t.Fatalf("to another owner: %+v %v", res, err)
	}
}
