package wecom

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/qiflow/qiflow/kv"
)

// gcra is the generic cell rate algorithm in one atomic script: it keeps the
// "theoretical arrival time" per key and admits a call when the call conforms
// within the caller's tolerance. Priority callers get a larger tolerance, so
// they may dip into a reserve that normal calls leave untouched.
// Time is Redis's own (TIME), so instances whose clocks disagree share one
// schedule.
var gcra = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call("GET", KEYS[1]) or "0")
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if allow_at > now then return math.ceil(allow_at - now) end
redis.call("SET", KEYS[1], tostring(tat + interval), "PX", math.ceil(tat + interval - now + tolerance + 1000))
return 0`)

// chunkMin is the smallest limit whose permits are taken from Redis in chunks:
// at 10,000 calls a minute, fetching permits ten at a time saves nine round
// trips in ten, and a chunk unused for a second is only 0.1% of the budget.
// Small limits (30 messages a minute to one person) are never chunked.
const (
	chunkMin  = 1000
	chunkSize = 10
	chunkLife = time.Second
)

// Limit is a rate: Per calls per Window at most in any sliding window.
type Limit struct {
	Per    int
	Window time.Duration
}

// Limiter is a rate limiter in Redis shared by every instance.
// The sustained rate is 90% of the limit and the burst 10%, so no sliding
// window ever sees more than the limit. Normal calls may use half the burst;
// priority calls (welcome messages) the whole of it.
type Limiter struct {
	kv  *kv.Store
	now func() time.Time

	mu     sync.Mutex
	chunks map[string]*chunk        // permits already taken from Redis, by key and priority
	local  map[string]*rate.Limiter // used while Redis is unreachable
}

type chunk struct {
	left    int
	expires time.Time
}

func NewLimiter(store *kv.Store) *Limiter {
	return &Limiter{kv: store, now: time.Now, chunks: map[string]*chunk{}, local: map[string]*rate.Limiter{}}
}

// takeLocal uses a permit from a chunk fetched earlier.
func (l *Limiter) takeLocal(k string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.chunks[k]
	if c == nil || c.left == 0 || l.now().After(c.expires) {
		return false
	}
	c.left--
	return true
}

// Wait blocks until the call may go, or returns ErrRateLimited when it could
// not go before ctx's deadline.
func (l *Limiter) Wait(ctx context.Context, key string, lim Limit, priority bool) error {
	interval := float64(lim.Window.Milliseconds()) / (float64(lim.Per) * 0.9)
	burst := float64(lim.Per) * 0.1
	if burst < 1 {
		burst = 1
	}
	tolerance := interval * burst
	if !priority {
		tolerance /= 2
	}
	cost := 1
	ck := fmt.Sprintf("%s/%v", key, priority)
	if lim.Per >= chunkMin {
		if l.takeLocal(ck) {
			return nil
		}
		cost = chunkSize
	}
	for {
		if l.kv.Down() {
			return l.waitLocal(ctx, key, lim, interval)
		}
		wait, err := gcra.Run(ctx, l.kv, []string{l.kv.Key("wecom", "rl", key)}, interval*float64(cost), tolerance).Int64()
		if l.kv.Unreachable(ctx, err) {
			return l.waitLocal(ctx, key, lim, interval)
		}
		if err != nil {
			return err
		}
		if wait <= 0 {
			if cost > 1 {
				l.mu.Lock()
				l.chunks[ck] = &chunk{left: cost - 1, expires: l.now().Add(chunkLife)}
				l.mu.Unlock()
			}
			return nil
		}
		d := time.Duration(wait) * time.Millisecond
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return ErrRateLimited
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// waitLocal limits calls in this process alone while Redis is unreachable:
// welcomes keep going out (their code lives 20 s) at the sustained rate, and
// the metric says the shared budget is not being enforced. Should several
// instances exceed WeCom's limit together, WeCom answers 45009 and the call
// is retried.
func (l *Limiter) waitLocal(ctx context.Context, key string, lim Limit, interval float64) error {
	redisFallbacks.WithLabelValues("rate_limit").Inc()
	l.mu.Lock()
	rl := l.local[key]
	if rl == nil {
		rl = rate.NewLimiter(rate.Every(time.Duration(interval*float64(time.Millisecond))), max(1, lim.Per/10))
		l.local[key] = rl
	}
	l.mu.Unlock()
	if err := rl.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrRateLimited // would not fit before the deadline
	}
	return nil
}
