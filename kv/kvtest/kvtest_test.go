package kvtest

import (
	"context"
	"os"
	"testing"
)

// Two tests on one Redis never see each other's keys, and a real server's
// keys are gone once the test that made them ends.
func TestOpen_EachTestHasItsOwnKeys(t *testing.T) {
	ctx := context.Background()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			var key string
			t.Run("first", func(t *testing.T) {
				s := b.Open(t)
				key = s.Key("counter")
				if err := s.Set(ctx, key, "1", 0).Err(); err != nil {
					t.Fatal(err)
				}
			})
			other := b.Open(t)
			if other.Key("counter") == key {
				t.Fatalf("two tests share the key %s", key)
			}
			if b.Name == "redis" {
				if n, err := other.Exists(ctx, key).Result(); err != nil || n != 0 {
					t.Fatalf("%s left behind (%d, %v)", key, n, err)
				}
			}
		})
	}
	if want := 1 + map[bool]int{true: 1}[os.Getenv("QIFLOW_TEST_REDIS_ADDR") != ""]; len(Backends()) != want {
		t.Fatalf("%d backends, want %d", len(Backends()), want)
	}
}
