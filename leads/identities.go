package leads

import (
	"net/mail"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Identity kinds: what names one person in a corp.
const (
	IdentityWeCom   = "wecom"   // an external contact of the corp
	IdentityUnionID = "unionid" // the WeChat unionid (the same person across apps)
	IdentityMobile  = "mobile"  // a phone number in E.164 (+8613800138000)
	IdentityEmail   = "email"   // an email address, lowercased
)

// Review is why a person needs a look: the field and what is wrong with it.
// A person with reviews is kept (and flagged), never dropped.
type Review struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// NormalizeMobile returns a phone number in E.164, read as a Chinese number
// unless it carries a country code (+1 650…, 0086 139…): mobiles and
// landlines (010-12345678) alike. ok is false when it is not a valid number.
func NormalizeMobile(raw string) (e164 string, ok bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", false
	}
	n, err := phonenumbers.Parse(raw, "CN")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}

// NormalizeEmail returns an address lowercased; ok is false unless it is a
// bare address (no display name) with a dotted domain.
func NormalizeEmail(raw string) (string, bool) {
	s := strings.ToLower(strings.TrimSpace(raw))
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || !strings.Contains(s[at+1:], ".") || strings.HasSuffix(s, ".") {
		return "", false
	}
	return s, true
}

// knownTestNumbers are numbers people type when a form insists.
var knownTestNumbers = map[string]bool{"13800138000": true, "12345678901": true, "13900139000": true, "13000000000": true}

// testDigits reports whether a number's digits look made up: a known test
// number, seven or more of one digit in a row, or eight ascending or
// descending digits in a row.
func testDigits(raw string) bool {
	var d []byte
	for i := 0; i < len(raw); i++ {
		if raw[i] >= '0' && raw[i] <= '9' {
			d = append(d, raw[i])
		}
	}
	s := strings.TrimPrefix(strings.TrimPrefix(string(d), "0086"), "86")
	if len(s) == 11 && knownTestNumbers[s] || knownTestNumbers[string(d)] {
		return true
	}
	same, up, down := 1, 1, 1
	for i := 1; i < len(d); i++ {
		same, up, down = next(same, d[i] == d[i-1]), next(up, d[i] == d[i-1]+1), next(down, d[i]+1 == d[i-1])
		if same >= 7 || up >= 8 || down >= 8 {
			return true
		}
	}
	return false
}

func next(run int, continues bool) int {
	if continues {
		return run + 1
	}
	return 1
}

// testEmail reports addresses of the reserved test domains (RFC 2606) and
// the obvious ones.
func testEmail(email string) bool {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return false
	}
	local, domain := email[:at], email[at+1:]
	switch domain {
	case "example.com", "example.org", "example.net", "test.com", "test.cn":
		return true
	}
	return local == "test" || local == "asdf" || local == "aaa"
}
