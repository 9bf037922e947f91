package handlers

import (
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

// limit is a counter's key (without its window) and how many a window allows.
type limit struct {
	key   string
	limit int64
}

// kvKey names a counter in Redis.
func (s *Server) kvKey(parts ...string) string {
	if s.d.KV == nil {
		return strings.Join(parts, ":")
	}
	return s.d.KV.Key(parts...)
}

// overLimit counts one more for each limit in its window (shared by every
// instance through Redis) and says whether any is over, with how long until
// that window ends. A window starts at the first request it counts rather
// than on a clock boundary: a fixed boundary would let twice the limit
// through around it (and reset a count midway through a burst). Should Redis
// be unreachable the request goes through (logged): shutting every user out
// would be worse than an unthrottled window.
func (s *Server) overLimit(c *gin.Context, window time.Duration, limits ...limit) (time.Duration, bool) {
	if s.d.KV == nil {
		return 0, false
	}
	ctx := c.Request.Context()
	pipe := s.d.KV.TxPipeline()
	counts := make([]*redis.IntCmd, len(limits))
	ttls := make([]*redis.DurationCmd, len(limits))
	for i, l := range limits {
		pipe.SetNX(ctx, l.key, 0, window)
		counts[i] = pipe.Incr(ctx, l.key)
		ttls[i] = pipe.PTTL(ctx, l.key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.logger(c).Warn("requests not counted: redis unreachable", "path", c.Request.URL.Path, "err", err)
		return 0, false
	}
	for i, l := range limits {
		if counts[i].Val() > l.limit {
			return max(ttls[i].Val(), time.Second), true
		}
	}
	return 0, false
}
