package wecom

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// JS-SDK support for pages WeCom opens (the chat sidebar): who the staff
// member is (OAuth: a code for their userid) and the signatures ww.register
// asks for. silenceper's work/jsapi is not used: it fetches tickets from a
// fixed host (no fake WeCom), without a context or timeout, and serialises
// refreshes only within one process.

// CodeInvalidCode is WeCom's answer to an OAuth code that is unknown,
// expired (5 minutes) or used already (once).
const CodeInvalidCode = 40029

// UserIDByCode exchanges an OAuth code (from WeCom's redirect to the page)
// for the signed-in staff member's userid. A visitor who is not a member of
// the corp has none: ErrNotStaff.
func (a *API) UserIDByCode(ctx context.Context, corpID, code string) (string, error) {
	var out struct {
		base
		UserID string `json:"userid"`
		OpenID string `json:"openid"`
	}
	if err := a.call(ctx, corpID, request{endpoint: "auth/getuserinfo", query: url.Values{"code": {code}}}, &out); err != nil {
		return "", err
	}
	if out.UserID == "" {
		return "", ErrNotStaff
	}
	return out.UserID, nil
}

// ErrNotStaff is an OAuth visitor who is not a member of the corp.
var ErrNotStaff = errors.New("the visitor is not a member of the corp")

// JSSignature is what ww.register's getConfigSignature and
// getAgentConfigSignature return for one page.
type JSSignature struct {
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
}

// SignJS signs pageURL (without its #fragment) for the JS-SDK with the
// corp's ticket (agent false: ww.register's config) or the app's (agent
// true: its agentConfig), as WeCom's "JS-SDK 签名算法" says.
func (a *API) SignJS(ctx context.Context, corpID, pageURL string, agent bool) (JSSignature, error) {
	ticket, err := a.jsTicket(ctx, corpID, agent)
	if err != nil {
		return JSSignature{}, err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	s := JSSignature{Timestamp: time.Now().Unix(), NonceStr: hex.EncodeToString(b)}
	s.Signature = JSSign(ticket, s.NonceStr, s.Timestamp, pageURL)
	return s, nil
}

// JSSign is the signature of one page: SHA-1 of
// "jsapi_ticket=…&noncestr=…&timestamp=…&url=…" with the values as they
// are (no escaping), the URL without its #fragment.
func JSSign(ticket, nonce string, timestamp int64, pageURL string) string {
	pageURL, _, _ = strings.Cut(pageURL, "#")
	sum := sha1.Sum([]byte("jsapi_ticket=" + ticket + "&noncestr=" + nonce + "&timestamp=" + strconv.FormatInt(timestamp, 10) + "&url=" + pageURL))
	return hex.EncodeToString(sum[:])
}

// ticketMargin is how long before WeCom's expiry a cached ticket is
// replaced: a page signed with it must still register.
const ticketMargin = 10 * time.Minute

// jsTicket is the corp's (or its app's) jsapi_ticket, cached in Redis for
// every instance: WeCom allows 400 fetches an hour per corp (100 per app),
// so it is fetched once per instance group per lifetime (two hours), with
// concurrent misses in one process sharing a fetch.
func (a *API) jsTicket(ctx context.Context, corpID string, agent bool) (string, error) {
	app, _, err := a.corp(corpID)
	if err != nil {
		return "", err
	}
	kind := "corp"
	if agent {
		kind = "agent:" + strconv.Itoa(app.AgentID)
	}
	key := a.kv.Key("wecom", "jsticket", corpID, kind)
	if t, err := a.kv.Get(ctx, key).Result(); err == nil {
		return t, nil
	} else if !errors.Is(err, redis.Nil) && !a.kv.Unreachable(ctx, err) {
		return "", err
	}
	v, err, _ := a.tickets.Do(key, func() (any, error) {
		var out struct {
			base
			Ticket    string `json:"ticket"`
			ExpiresIn int64  `json:"expires_in"`
		}
		req := request{endpoint: "get_jsapi_ticket"}
		if agent {
			req = request{endpoint: "ticket/get", query: url.Values{"type": {"agent_config"}}}
		}
		if err := a.call(ctx, corpID, req, &out); err != nil {
			return "", err
		}
		if out.Ticket == "" {
			return "", fmt.Errorf("wecom %s: no ticket in the answer", req.endpoint)
		}
		ttl := time.Duration(out.ExpiresIn)*time.Second - ticketMargin
		if ttl > 0 {
			if err := a.kv.Set(ctx, key, out.Ticket, ttl).Err(); err != nil {
				a.kv.Unreachable(ctx, err) // the next page fetches again: within WeCom's limit for a while
			}
		}
		return out.Ticket, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}
