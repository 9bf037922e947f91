package kv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"
)

// unlockScript deletes the lock only if we still own it, so an instance whose
// lock expired never releases the one another instance took since.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Lock is a held Redis lock.
type Lock struct {
	s     *Store
	key   string
	token string
}

// TryLock takes key for ttl if nobody holds it; ok is false when someone does.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (l *Lock, ok bool, err error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	ok, err = s.SetNX(ctx, key, tok, ttl).Result()
	if err != nil || !ok {
		return nil, false, err
	}
	return &Lock{s: s, key: key, token: tok}, true, nil
}

// Unlock releases the lock if it is still ours.
func (l *Lock) Unlock(ctx context.Context) error {
	return unlockScript.Run(ctx, l.s, []string{l.key}, l.token).Err()
}
