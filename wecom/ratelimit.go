package wecom

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qiflow/qiflow/kv"
)

// gcra is the generic cell rate algorithm in one atomic script: it keeps the
// "theoretical arrival time" per key and admits a call when the call conforms
// within the caller's tolerance. Priority callers get a larger tolerance, so
// they may dip into a reserve that normal calls leave untouched.
var gcra = redis.NewScript(`
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call("GET", KEYS[1]) or "0")
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if allow_at > now then return math.ceil(allow_at - now) end
redis.call("SET", KEYS[1], tostring(tat + interval), "PX", math.ceil(tat + interval - now + tolerance + 1000))
return 0`)

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
}

func NewLimiter(store *kv.Store) *Limiter { return &Limiter{kv: store, now: time.Now} }

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
	for {
		now := l.now().UnixMilli()
		wait, err := gcra.Run(ctx, l.kv, []string{l.kv.Key("wecom", "rl", key)}, now, interval, tolerance).Int64()
		if err != nil {
			return err
		}
		if wait <= 0 {
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
