package wecom

import (
	"errors"
	"testing"
)

func TestParseEvent_ExternalContactTypes(t *testing.T) {
	const x = `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]></ExternalUserID><State><![CDATA[teststate]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>`
	ev, err := ParseEvent([]byte(x))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := ev.(*ExternalContactEvent)
	if !ok {
		t.Fatalf("got %T", ev)
	}
	if c.UserID != "zhangsan" || c.ExternalUserID != "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA" || c.State != "teststate" || c.WelcomeCode != "WELCOMECODE" || c.CreateTime != 1403610513 {
		t.Fatalf("fields: %+v", c)
	}
	if Type(ev) != "change_external_contact/add_external_contact" || Subject(ev) != "ext:woAJ2GCAAAXtWyujaWJHDDGi0mAAAA" {
		t.Fatalf("type %s, subject %s", Type(ev), Subject(ev))
	}
	for _, ct := range []string{"add_half_external_contact", "edit_external_contact", "del_external_contact", "del_follow_user", "transfer_fail"} {
		x := `<xml><ToUserName>ww1</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>` + ct + `</ChangeType><UserID>u</UserID><ExternalUserID>wm1</ExternalUserID><Source>DELETE_BY_TRANSFER</Source><FailReason>customer_refused</FailReason></xml>`
		ev, err := ParseEvent([]byte(x))
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		e := ev.(*ExternalContactEvent)
		if e.ChangeType != ct || e.Source != SourceDeleteByTransfer || e.FailReason != "customer_refused" {
			t.Fatalf("%s: %+v", ct, e)
		}
	}
}

func TestParseEvent_ChatUpdateWithMembers(t *testing.T) {
	x := `<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrx1]]></ChatId><ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>3</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>wmA</Item><Item>wmB</Item></MemChangeList><LastMemVer>v1</LastMemVer><CurMemVer>v2</CurMemVer></xml>`
	ev, err := ParseEvent([]byte(x))
	if err != nil {
		t.Fatal(err)
	}
	c := ev.(*ExternalChatEvent)
	if c.ChatID != "wrx1" || c.UpdateDetail != ChatAddMember || c.JoinScene != 3 || c.MemChangeCnt != 2 || len(c.MemChangeList) != 2 || c.MemChangeList[1] != "wmB" || c.CurMemVer != "v2" {
		t.Fatalf("%+v", c)
	}
	// Another join in the same second differs by member version: another event.
	c2 := *c
	c2.LastMemVer, c2.CurMemVer = "v2", "v3"
	if c.DedupKey() == c2.DedupKey() {
		t.Fatal("events in the same second with different CurMemVer share a dedup key")
	}
	for _, d := range []string{ChatDelMember, ChatChangeOwner, ChatChangeName, ChatChangeNotice} {
		x := `<xml><ToUserName>ww1</ToUserName><CreateTime>1</CreateTime><Event>change_external_chat</Event><ChatId>wrx1</ChatId><ChangeType>update</ChangeType><UpdateDetail>` + d + `</UpdateDetail></xml>`
		ev, err := ParseEvent([]byte(x))
		if err != nil || ev.(*ExternalChatEvent).UpdateDetail != d {
			t.Fatalf("%s: %v %+v", d, err, ev)
		}
	}
}

func TestParseEvent_TagsAndRaw(t *testing.T) {
	for _, ct := range []string{"create", "update", "delete", "shuffle"} {
		x := `<xml><ToUserName>ww1</ToUserName><CreateTime>1</CreateTime><Event>change_external_tag</Event><Id>et1</Id><TagType>tag_group</TagType><ChangeType>` + ct + `</ChangeType><StrategyId>7</StrategyId></xml>`
		ev, err := ParseEvent([]byte(x))
		if err != nil {
			t.Fatal(err)
		}
		tg := ev.(*ExternalTagEvent)
		if tg.ID != "et1" || tg.TagType != "tag_group" || tg.StrategyID != "7" || tg.ChangeType != ct {
			t.Fatalf("%+v", tg)
		}
	}
	ev, err := ParseEvent([]byte(officialPostPlain))
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := ev.(*RawEvent)
	if !ok || raw.MsgType != "text" || string(raw.XML) != officialPostPlain {
		t.Fatalf("raw: %T %+v", ev, ev)
	}
}

func TestParseEvent_RejectsMalformed(t *testing.T) {
	for _, x := range []string{
		"<xml><ToUserName>ww1",
		`<xml><ToUserName>ww1</ToUserName><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><UserID>u</UserID></xml>`,
		`<xml><ToUserName>ww1</ToUserName><Event>change_external_chat</Event><ChangeType>create</ChangeType></xml>`,
	} {
		if _, err := ParseEvent([]byte(x)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", x, err)
		}
	}
}

func TestDedupKey_SameEventSameKey(t *testing.T) {
	x := []byte(`<xml><ToUserName>ww1</ToUserName><CreateTime>5</CreateTime><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><UserID>u</UserID><ExternalUserID>wm1</ExternalUserID><WelcomeCode>A</WelcomeCode></xml>`)
	a, _ := ParseEvent(x)
	b, _ := ParseEvent(x)
	if a.DedupKey() != b.DedupKey() {
		t.Fatal("same event, different keys")
	}
	y := []byte(`<xml><ToUserName>ww1</ToUserName><CreateTime>5</CreateTime><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><UserID>u2</UserID><ExternalUserID>wm1</ExternalUserID></xml>`)
	c, _ := ParseEvent(y)
	if a.DedupKey() == c.DedupKey() {
		t.Fatal("different staff in the same second share a key")
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(officialPostPlain))
	f.Add([]byte(`<xml><ToUserName>ww1</ToUserName><Event>change_external_chat</Event><ChatId>c</ChatId><ChangeType>update</ChangeType><MemChangeList><Item>a</Item></MemChangeList></xml>`))
	f.Add([]byte(`<xml><ToUserName>ww1</ToUserName><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><UserID>u</UserID><ExternalUserID>e</ExternalUserID></xml>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEvent(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapped as ErrMalformed: %v", err)
			}
			return
		}
		if ev.DedupKey() == "" {
			t.Fatal("empty dedup key")
		}
		if ev2, err := ParseEvent(data); err != nil || ev2.DedupKey() != ev.DedupKey() {
			t.Fatal("parsing is not deterministic")
		}
	})
}

// go test -run x -bench ParseEvent ./wecom/
func BenchmarkParseEvent(b *testing.B) {
	x := []byte(`<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACAAA]]></ExternalUserID><State><![CDATA[c7]]></State><WelcomeCode><![CDATA[CALLBACK_CODE]]></WelcomeCode></xml>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(x); err != nil {
			b.Fatal(err)
		}
	}
}
