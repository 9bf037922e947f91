// Package kvtest gives tests a Redis: always the in-process one, and the real
// server at QIFLOW_TEST_REDIS_ADDR when that is set, each under its own prefix.
package kvtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/qiflow/qiflow/kv"
)

// Backend is one Redis a test runs against.
type Backend struct {
	Name string
	Open func(t testing.TB) *kv.Store
}

// Backends lists the embedded Redis and, when configured, the real one.
func Backends() []Backend {
	out := []Backend{{Name: "miniredis", Open: func(t testing.TB) *kv.Store { return open(t, "") }}}
	if addr := os.Getenv("QIFLOW_TEST_REDIS_ADDR"); addr != "" {
		out = append(out, Backend{Name: "redis", Open: func(t testing.TB) *kv.Store { return open(t, addr) }})
	}
	return out
}

// Open returns the embedded Redis, or the real one when QIFLOW_TEST_REDIS_ADDR is set.
func Open(t testing.TB) *kv.Store {
	return open(t, os.Getenv("QIFLOW_TEST_REDIS_ADDR"))
}

func open(t testing.TB, addr string) *kv.Store {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "qiflowtest:" + hex.EncodeToString(b) + ":"
	s, err := kv.Open(context.Background(), kv.Options{Addr: addr, Prefix: prefix})
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(func() {
		if addr != "" {
			ctx := context.Background()
			iter := s.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				s.Del(ctx, iter.Val())
			}
		}
		s.Close()
	})
	return s
}
