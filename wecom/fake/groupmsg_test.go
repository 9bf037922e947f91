package fake

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Mass messages to customers wait for the staff member's confirmation;
// then each customer gets one within the corp's receiving limit (here one
// a day): a second message the same day fails for them with status 3, as
// get_groupmsg_send_result reports. Requests WeCom refuses are refused.
func TestFake_GroupMessagesWaitForStaffAndKeepReceivingLimits(t *testing.T) {
	f, base := StartForTest(t, SandboxCorpID, true)
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, chinaTime)
	f.SetClock(func() time.Time { return now })
	tok := sandboxToken(t, base)
	f.Mutate(SandboxCorpID, func(c *Corp) { c.GroupMsgRule = GroupMsgRuleDay })
	ctx := context.Background()
	a, _ := f.Add(ctx, SandboxCorpID, "zhangsan", Customer{Name: "A"}, 1)
	b, _ := f.Add(ctx, SandboxCorpID, "zhangsan", Customer{Name: "B"}, 1)
	call := func(endpoint string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		resp, err := http.Post(base+"/cgi-bin/externalcontact/"+endpoint+"?access_token="+tok, "application/json", strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	code := func(out map[string]any) int { n, _ := out["errcode"].(float64); return int(n) }

	for name, bad := range map[string]any{
		"too long":      map[string]any{"external_userid": []string{a.ExternalUserID}, "text": map[string]string{"content": strings.Repeat("x", 4001)}},
		"empty":         map[string]any{"external_userid": []string{a.ExternalUserID}},
		"unknown field": map[string]any{"external_userid": []string{a.ExternalUserID}, "text": map[string]string{"content": "hi"}, "sendr": "zhangsan"},
		"nobody":        map[string]any{"external_userid": []string{"wmnobody"}, "text": map[string]string{"content": "hi"}},
	} {
		if out := call("add_msg_template", bad); code(out) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
	send := func(text string) string {
		t.Helper()
		out := call("add_msg_template", map[string]any{"external_userid": []string{a.ExternalUserID, b.ExternalUserID, "wmnobody"}, "sender": "zhangsan",
			"text": map[string]string{"content": text}})
		if code(out) != 0 || out["msgid"] == "" {
			t.Fatalf("add_msg_template: %v", out)
		}
		if fl, _ := out["fail_list"].([]any); len(fl) != 1 || fl[0] != "wmnobody" {
			t.Fatalf("fail_list %v", out["fail_list"])
		}
		return out["msgid"].(string)
	}
	first := send("hello")
	results := func(msgid string) map[string]float64 {
		out := call("get_groupmsg_send_result", map[string]any{"msgid": msgid, "userid": "zhangsan"})
		got := map[string]float64{}
		for _, s := range out["send_list"].([]any) {
			m := s.(map[string]any)
			got[m["external_userid"].(string)] = m["status"].(float64)
		}
		return got
	}
	if got := results(first); got[a.ExternalUserID] != 0 || got[b.ExternalUserID] != 0 {
		t.Fatalf("before the staff member confirms: %v", got)
	}
	if n := len(f.Messages(SandboxCorpID)); n != 0 {
		t.Fatalf("%d messages reached customers before confirmation", n)
	}
	if _, err := f.ConfirmGroupMsg(SandboxCorpID, first, "zhangsan"); err != nil {
		t.Fatal(err)
	}
	if got := results(first); got[a.ExternalUserID] != 1 || got[b.ExternalUserID] != 1 {
		t.Fatalf("after confirming: %v", got)
	}
	// B deletes the staff member; a second message the same day reaches nobody.
	if _, err := f.CustomerDeletesStaff(ctx, SandboxCorpID, b.ExternalUserID, "zhangsan"); err != nil {
		t.Fatal(err)
	}
	second := call("add_msg_template", map[string]any{"external_userid": []string{a.ExternalUserID}, "text": map[string]string{"content": "again"}})["msgid"].(string)
	f.ConfirmGroupMsg(SandboxCorpID, second, "zhangsan")
	if got := results(second); got[a.ExternalUserID] != 3 {
		t.Fatalf("over the daily limit: %v", got)
	}
	// The next day the limit starts again.
	now = now.Add(24 * time.Hour)
	tok = sandboxToken(t, base)
	third := call("add_msg_template", map[string]any{"external_userid": []string{a.ExternalUserID}, "text": map[string]string{"content": "next day"}})["msgid"].(string)
	f.ConfirmGroupMsg(SandboxCorpID, third, "zhangsan")
	if got := results(third); got[a.ExternalUserID] != 1 {
		t.Fatalf("next day: %v", got)
	}
	kinds := 0
	for _, m := range f.Messages(SandboxCorpID) {
		if m.Kind == "groupmsg" {
			kinds++
		}
	}
	if kinds != 3 {
		t.Fatalf("%d mass messages reached customers, want 3", kinds)
	}
}
