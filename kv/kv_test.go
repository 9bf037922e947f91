package kv_test

import (
	"context"
	"testing"
	"time"

	"github.com/qiflow/qiflow/kv"
	"github.com/qiflow/qiflow/kv/kvtest"
)

func TestEmbeddedRedisExpiresKeysWithRealTime(t *testing.T) {
	s, err := kv.Open(context.Background(), kv.Options{Prefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Embedded() {
		t.Fatal("empty address should start the in-process redis")
	}
	ctx := context.Background()
	s.Set(ctx, s.Key("short"), "1", 300*time.Millisecond)
	deadline := time.Now().Add(3 * time.Second)
	for s.Exists(ctx, s.Key("short")).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key with a TTL never expired: miniredis's clock is not moving")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLock_OnlyTheHolderUnlocks(t *testing.T) {
	for _, b := range kvtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := b.Open(t)
			ctx := context.Background()
			if s.Key("a", "b") == "a:b" {
				t.Fatal("keys carry no prefix")
			}
			l1, ok, err := s.TryLock(ctx, s.Key("lock"), time.Minute)
			if err != nil || !ok {
				t.Fatalf("first lock: %v %v", ok, err)
			}
			if _, ok, _ := s.TryLock(ctx, s.Key("lock"), time.Minute); ok {
				t.Fatal("a held lock was taken twice")
			}
			// A lock that expired and was taken by another is not released by the first holder.
			s.Del(ctx, s.Key("lock"))
			l2, ok, _ := s.TryLock(ctx, s.Key("lock"), time.Minute)
			if !ok {
				t.Fatal("free lock not taken")
			}
			l1.Unlock(ctx)
			if s.Exists(ctx, s.Key("lock")).Val() != 1 {
				t.Fatal("the old holder released the new holder's lock")
			}
			l2.Unlock(ctx)
			if s.Exists(ctx, s.Key("lock")).Val() != 0 {
				t.Fatal("the holder could not release its lock")
			}
		})
	}
}
