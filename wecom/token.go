package wecom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/silenceper/wechat/v2/credential"
	"golang.org/x/sync/singleflight"

	"github.com/qiflow/qiflow/kv"
)

// TokenSource keeps a corp app's access token in Redis, shared by every
// instance. The key names corp, agent and a hash of the secret, so two apps of
// one corp never collide. A refresh is single-flight within the process and
// guarded by a Redis lock across instances. It also satisfies silenceper's
// credential.AccessTokenContextHandle, so SDK clients can share it.
type TokenSource struct {
	kv      *kv.Store
	base    string
	corpID  string
	secret  string
	agentID int
	http    *http.Client
	group   singleflight.Group
	key     string

	// A short in-process cache in front of Redis saves a round trip per call;
	// a token another instance replaced is caught by WeCom's 40014 and retried.
	mu       sync.Mutex
	local    string
	localExp time.Time
}

const localTokenTTL = 30 * time.Second

var _ credential.AccessTokenContextHandle = (*TokenSource)(nil)

func NewTokenSource(store *kv.Store, httpc *http.Client, base string, corp CorpApp) *TokenSource {
	sum := sha256.Sum256([]byte(corp.Secret))
	return &TokenSource{
		kv: store, base: base, corpID: corp.CorpID, secret: corp.Secret, agentID: corp.AgentID, http: httpc,
		key: store.Key("wecom", "token", corp.CorpID, strconv.Itoa(corp.AgentID), hex.EncodeToString(sum[:6])),
	}
}

func (ts *TokenSource) GetAccessToken() (string, error) {
	return ts.GetAccessTokenContext(context.Background())
}

// GetAccessTokenContext returns the cached token, fetching a new one when there is none.
func (ts *TokenSource) GetAccessTokenContext(ctx context.Context) (string, error) {
	ts.mu.Lock()
	if ts.local != "" && time.Now().Before(ts.localExp) {
		tok := ts.local
		ts.mu.Unlock()
		return tok, nil
	}
	ts.mu.Unlock()
	tok, err := ts.kv.Get(ctx, ts.key).Result()
	if err != nil || tok == "" {
		v, err, _ := ts.group.Do("refresh", func() (any, error) { return ts.refresh(ctx) })
		if err != nil {
			return "", err
		}
		tok = v.(string)
	}
	ts.mu.Lock()
	ts.local, ts.localExp = tok, time.Now().Add(localTokenTTL)
	ts.mu.Unlock()
	return tok, nil
}

func (ts *TokenSource) refresh(ctx context.Context) (string, error) {
	lockKey := ts.key + ":lock"
	deadline := time.Now().Add(5 * time.Second)
	for {
		if tok, err := ts.kv.Get(ctx, ts.key).Result(); err == nil && tok != "" {
			return tok, nil
		}
		lock, ok, err := ts.kv.TryLock(ctx, lockKey, 10*time.Second)
		if err != nil {
			return "", fmt.Errorf("token lock: %w", err)
		}
		if ok {
			defer lock.Unlock(context.WithoutCancel(ctx))
			tok, ttl, err := ts.fetch(ctx)
			if err != nil {
				return "", err
			}
			// Expire early so no call goes out with a token about to lapse.
			ttl -= 5 * time.Minute
			if ttl < time.Minute {
				ttl = time.Minute
			}
			if err := ts.kv.Set(ctx, ts.key, tok, ttl).Err(); err != nil {
				return "", fmt.Errorf("store token: %w", err)
			}
			return tok, nil
		}
		// Another instance is fetching: wait for its result.
		if time.Now().After(deadline) {
			return "", fmt.Errorf("wecom: timed out waiting for another instance's token refresh")
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (ts *TokenSource) fetch(ctx context.Context) (string, time.Duration, error) {
	start := time.Now()
	u := ts.base + "/cgi-bin/gettoken?corpid=" + url.QueryEscape(ts.corpID) + "&corpsecret=" + url.QueryEscape(ts.secret)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, scrubbedError{err}
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		observe("gettoken", "transport", start)
		return "", 0, scrubbedError{err}
	}
	defer resp.Body.Close()
	var out struct {
		ErrCode     int64  `json:"errcode"`
		ErrMsg      string `json:"errmsg"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK {
		observe("gettoken", "http_"+strconv.Itoa(resp.StatusCode), start)
		return "", 0, fmt.Errorf("wecom gettoken: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		observe("gettoken", "bad_json", start)
		return "", 0, fmt.Errorf("wecom gettoken: %w", err)
	}
	observe("gettoken", strconv.FormatInt(out.ErrCode, 10), start)
	if out.ErrCode != 0 || out.AccessToken == "" {
		return "", 0, &APIError{Endpoint: "gettoken", Code: out.ErrCode, Msg: out.ErrMsg}
	}
	return out.AccessToken, time.Duration(out.ExpiresIn) * time.Second, nil
}

// invalidateScript drops the cached token only if it is the one that failed,
// so a fresh token another instance just stored survives.
const invalidateScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// Invalidate drops tok after WeCom rejected it (40001/40014/42001).
func (ts *TokenSource) Invalidate(ctx context.Context, tok string) {
	ts.mu.Lock()
	if ts.local == tok {
		ts.local = ""
	}
	ts.mu.Unlock()
	ts.kv.Eval(ctx, invalidateScript, []string{ts.key}, tok)
}
