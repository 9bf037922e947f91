package wecom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	// last is the newest token seen with its real expiry: while Redis is
	// down it is used for its whole life (welcomes must not stop), and when
	// there is none this instance fetches its own.
	mu       sync.Mutex
	local    string
	localExp time.Time
	last     string
	lastExp  time.Time
}

const localTokenTTL = 30 * time.Second

// refreshTimeout bounds a token refresh, whoever asked for it.
const refreshTimeout = 10 * time.Second

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
	now := time.Now()
	ts.mu.Lock()
	if ts.local != "" && now.Before(ts.localExp) {
		tok := ts.local
		ts.mu.Unlock()
		return tok, nil
	}
	ts.mu.Unlock()
	if ts.kv.Down() {
		return ts.withoutRedis(ctx, errors.New("redis is unreachable"))
	}
	pipe := ts.kv.Pipeline()
	get := pipe.Get(ctx, ts.key)
	ttl := pipe.PTTL(ctx, ts.key)
	_, err := pipe.Exec(ctx)
	if ts.kv.Unreachable(ctx, err) {
		return ts.withoutRedis(ctx, err)
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", err
	}
	tok := get.Val()
	exp := now.Add(ttl.Val())
	if tok == "" {
		// The refresh serves every waiter: it runs under its own context and
		// timeout, so one caller giving up (a welcome past its 20 s) fails
		// nobody else. Each waiter still stops waiting at its own deadline.
		ch := ts.group.DoChan("refresh", func() (any, error) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			return ts.refresh(rctx)
		})
		var v any
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case r := <-ch:
			v, err = r.Val, r.Err
		}
		if err != nil {
			return "", err
		}
		f := v.(fetched)
		tok, exp = f.token, f.expires
	}
	ts.remember(tok, exp)
	return tok, nil
}

// remember caches tok locally for a short while and as the newest token.
func (ts *TokenSource) remember(tok string, exp time.Time) {
	now := time.Now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.local, ts.localExp = tok, now.Add(localTokenTTL)
	if exp.After(ts.lastExp) || ts.last == tok {
		ts.last, ts.lastExp = tok, exp
	}
}

// withoutRedis serves a token while Redis is unreachable: the newest token
// this instance has seen, for the rest of its life, else one fetched from
// WeCom by this instance alone (tokens of one app coexist, so another
// instance doing the same is harmless).
func (ts *TokenSource) withoutRedis(ctx context.Context, cause error) (string, error) {
	redisFallbacks.WithLabelValues("token").Inc()
	ts.mu.Lock()
	tok, exp := ts.last, ts.lastExp
	ts.mu.Unlock()
	if tok != "" && time.Now().Add(time.Minute).Before(exp) {
		return tok, nil
	}
	ch := ts.group.DoChan("fetch-local", func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		tok, life, err := ts.fetch(rctx)
		return fetched{tok, time.Now().Add(life - 5*time.Minute)}, err
	})
	var v any
	var err error
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		v, err = r.Val, r.Err
	}
	if err != nil {
		return "", fmt.Errorf("token without redis (%v): %w", cause, err)
	}
	f := v.(fetched)
	ts.mu.Lock()
	ts.last, ts.lastExp = f.token, f.expires
	ts.local, ts.localExp = f.token, f.expires
	ts.mu.Unlock()
	return f.token, nil
}

// fetched is a token with the time it stops being used.
type fetched struct {
	token   string
	expires time.Time
}

func (ts *TokenSource) refresh(ctx context.Context) (fetched, error) {
	lockKey := ts.key + ":lock"
	deadline := time.Now().Add(5 * time.Second)
	for {
		if tok, err := ts.kv.Get(ctx, ts.key).Result(); err == nil && tok != "" {
			ttl, _ := ts.kv.PTTL(ctx, ts.key).Result()
			return fetched{tok, time.Now().Add(ttl)}, nil
		}
		lock, ok, err := ts.kv.TryLock(ctx, lockKey, 10*time.Second)
		if err != nil {
			return fetched{}, fmt.Errorf("token lock: %w", err)
		}
		if ok {
			defer lock.Unlock(context.WithoutCancel(ctx))
			// The lock outlives the fetch: the fetch's context ends first.
			fctx, cancel := context.WithTimeout(ctx, 8*time.Second)
			defer cancel()
			tok, ttl, err := ts.fetch(fctx)
			if err != nil {
				return fetched{}, err
			}
			// Expire early so no call goes out with a token about to lapse.
			ttl -= 5 * time.Minute
			if ttl < time.Minute {
				ttl = time.Minute
			}
			if err := ts.kv.Set(ctx, ts.key, tok, ttl).Err(); err != nil {
				return fetched{}, fmt.Errorf("store token: %w", err)
			}
			return fetched{tok, time.Now().Add(ttl)}, nil
		}
		// Another instance is fetching: wait for its result.
		if time.Now().After(deadline) {
			return fetched{}, fmt.Errorf("wecom: timed out waiting for another instance's token refresh")
		}
		select {
		case <-ctx.Done():
			return fetched{}, ctx.Err()
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
	if ts.last == tok {
		ts.last = ""
	}
	ts.mu.Unlock()
	ts.kv.Eval(ctx, invalidateScript, []string{ts.key}, tok)
}
