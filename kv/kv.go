// Package kv opens Qiflow's Redis: a real server, or an in-process one
// (miniredis) served to the same go-redis client so there is one code path.
// Redis holds only what may be lost or rebuilt: tokens, locks, counters,
// rate-limit windows.
package kv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Store is a go-redis client plus the key prefix every Qiflow key carries,
// so several deployments (or test runs) can share one Redis.
type Store struct {
	redis.UniversalClient
	prefix   string
	embedded *miniredis.Miniredis
	stop     chan struct{}

	// downUntil (Unix ms) is set when a call found Redis unreachable: until
	// then, callers with a local fallback skip Redis instead of waiting on
	// its dial retries (a welcome has 20 s, not seconds per attempt).
	downUntil atomic.Int64
	closeOnce sync.Once
	closeErr  error
}

// downFor is how long Redis is skipped after it was found unreachable.
const downFor = 2 * time.Second

// Down says whether Redis was found unreachable within the last moments.
func (s *Store) Down() bool { return time.Now().UnixMilli() < s.downUntil.Load() }

// Unreachable records err when it means Redis could not be reached (not a
// missing key, not a cancelled context) and reports whether it did.
func (s *Store) Unreachable(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || ctx.Err() != nil {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return false // Redis answered (a script error, a wrong type): it is up
	}
	s.downUntil.Store(time.Now().Add(downFor).UnixMilli())
	return true
}

// Options say where Redis is; an empty Addr starts the in-process Redis.
type Options struct {
	Addr     string
	Password string
	DB       int
	Prefix   string
}

// Open connects to Redis, or starts the embedded one.
func Open(ctx context.Context, o Options) (*Store, error) {
	s := &Store{prefix: o.Prefix}
	addr := o.Addr
	if addr == "" {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start in-process redis: %w", err)
		}
		s.embedded, s.stop = m, make(chan struct{})
		addr = m.Addr()
		go s.tick()
	}
	s.UniversalClient = redis.NewClient(&redis.Options{
		Addr:         addr,
		Password:     o.Password,
		DB:           o.DB,
		DialTimeout:  3 * time.Second,
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,
		PoolSize:     64,
	})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Ping(pctx).Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to redis at %s: %w", addr, err)
	}
	return s, nil
}

// tick keeps miniredis's clock moving with real time: it expires keys only
// when its clock is advanced.
func (s *Store) tick() {
	last := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.embedded.FastForward(now.Sub(last))
			s.embedded.SetTime(now)
			last = now
		}
	}
}

// Embedded says whether this is the in-process Redis.
func (s *Store) Embedded() bool { return s.embedded != nil }

// Key joins parts under the deployment's prefix: Key("token", corp) → "qiflow:token:corp".
func (s *Store) Key(parts ...string) string {
	k := s.prefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

// Close closes the client and stops the embedded server; again, it does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.UniversalClient != nil {
			s.closeErr = s.UniversalClient.Close()
		}
		if s.embedded != nil {
			close(s.stop)
			s.embedded.Close()
		}
	})
	return s.closeErr
}
