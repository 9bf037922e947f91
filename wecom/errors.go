package wecom

import (
	"errors"
	"fmt"
	"regexp"
)

// WeCom error codes Qiflow acts on.
const (
	CodeBusy               = -1
	CodeInvalidSecret      = 40001
	CodeInvalidToken       = 40014
	CodeMissingToken       = 41001
	CodeExpiredToken       = 42001
	CodeWelcomeCodeUsed    = 41051 // the welcome code was used already (by us or another app)
	CodeRateLimited        = 45009
	CodeConcurrencyLimit   = 45033
	CodeInvalidUserID      = 40003
	CodeInvalidExternalID  = 40096
	CodeInvalidParameter   = 40058
	CodeNoPrivilege        = 60011
	CodeContactWayNotFound = 41044
	CodeStaffNotResigned   = 40097 // resigned transfer of staff who has not left yet
	CodeInvalidChatID      = 40050
	CodeWelcomeCodeInvalid = 41050 // the welcome code expired (20 s) or is unknown: never retry
	CodeWelcomeSending     = 41096 // a welcome for this code is being sent: not a failure
)

// APIError is a WeCom answer with a non-zero errcode.
type APIError struct {
	Endpoint string
	Code     int64
	Msg      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wecom %s: errcode %d: %s", e.Endpoint, e.Code, scrub(e.Msg))
}

// IsCode reports whether err is a WeCom error with one of the codes.
func IsCode(err error, codes ...int64) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.Code == c {
			return true
		}
	}
	return false
}

// ErrRateLimited is returned when a call cannot get a slot before its deadline.
var ErrRateLimited = errors.New("wecom: rate limit would be exceeded before the deadline")

var secretParams = regexp.MustCompile(`(access_token|corpsecret|secret)=[^&\s"]+`)

// scrub removes tokens and secrets from text that may reach a log (Go's URL
// errors quote the whole URL, access_token included).
func scrub(s string) string { return secretParams.ReplaceAllString(s, "$1=REDACTED") }

type scrubbedError struct{ err error }

func (e scrubbedError) Error() string { return scrub(e.err.Error()) }
func (e scrubbedError) Unwrap() error { return e.err }
