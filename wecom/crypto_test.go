package wecom

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Tencent's official WXBizMsgCrypt sample vector (shared/wecom-protocol.md).
var official = Crypto{Token: "QDG6eK", AESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", ReceiverID: "wx5823bf96d3bd56c7"}

const (
	officialEcho      = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
	officialPostBody  = `<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>`
	officialPostPlain = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
)

func TestVerifyURL_OfficialVector(t *testing.T) {
	got, err := official.VerifyURL("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", officialEcho)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "1616140317555161061" {
		t.Fatalf("echo = %q", got)
	}
}

func TestOpen_OfficialVector(t *testing.T) {
	got, err := official.Open("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", []byte(officialPostBody))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != officialPostPlain {
		t.Fatalf("plaintext = %q", got)
	}
	if len(got) != 284 {
		t.Fatalf("plaintext is %d bytes, want 284", len(got))
	}
}

func TestOpen_Rejects(t *testing.T) {
	_, err := official.Open("477715d11cdb4164915debcba66cb864d751f3e7", "1409659813", "1372623149", []byte(officialPostBody))
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong signature: %v", err)
	}
	other := official
	other.ReceiverID = "wwsomeoneelse"
	_, err = other.Open("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", []byte(officialPostBody))
	if !errors.Is(err, ErrReceiver) {
		t.Fatalf("wrong receiver: %v", err)
	}
	_, err = official.Open("x", "1", "2", []byte("not xml"))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("not xml: %v", err)
	}
	garbage := "AAAA" + strings.Repeat("B", 40)
	_, err = official.Open(official.Sign("1", "2", garbage), "1", "2", []byte("<xml><Encrypt>"+garbage+"</Encrypt></xml>"))
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("undecryptable: %v", err)
	}
}

func TestSeal_RoundTripsEveryPadLength(t *testing.T) {
	// Plaintexts of every length mod 32 exercise pad bytes 1..32.
	for n := 0; n < 64; n++ {
		msg := []byte(strings.Repeat("x", n))
		body, sig, ts, nonce, err := official.Seal(msg, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatal(err)
		}
		got, err := official.Open(sig, ts, nonce, body)
		if err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		if string(got) != string(msg) {
			t.Fatalf("len %d: round trip gave %q", n, got)
		}
	}
}
