package handlers

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qiflow/qiflow/kv/kvtest"
)

// A window starts at the first attempt it counts, so a burst is never split
// by a clock boundary: the eleventh of ten allowed is refused however the
// attempts fall, with the time left in that window; once it ends the next
// attempt opens a new one.
func TestOverLimit_WindowStartsAtTheFirstAttempt(t *testing.T) {
	for _, b := range kvtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			_, s := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), KV: b.Open(t)})
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest("POST", "/", nil)
			attempt := func(window time.Duration) (time.Duration, bool) {
				return s.overLimit(c, window, limit{s.kvKey("t", "acct"), 10}, limit{s.kvKey("t", "ip"), 50})
			}
			for i := 1; i <= 10; i++ {
				if _, limited := attempt(time.Hour); limited {
					t.Fatalf("attempt %d of 10 refused", i)
				}
			}
			wait, limited := attempt(time.Hour)
			if !limited || wait <= 59*time.Minute || wait > time.Hour {
				t.Fatalf("11th attempt: limited %v, wait %v (want the rest of the hour)", limited, wait)
			}
			if _, limited := s.overLimit(c, time.Hour, limit{s.kvKey("t", "other"), 10}); limited {
				t.Fatal("another account was refused")
			}

			// A short window ends by itself; the next attempt is counted afresh.
			short := limit{s.kvKey("t", "short"), 1}
			if _, limited := s.overLimit(c, 50*time.Millisecond, short); limited {
				t.Fatal("first attempt in a short window refused")
			}
			for {
				if _, limited := s.overLimit(c, 50*time.Millisecond, short); !limited {
					break // the window ended and a new one began
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
