package livecode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Caps and the rotating link's round-robin live in Redis, per corp-local day.
// Every key of one corp carries the hash tag {corp}, so the scripts below
// (which touch several keys) run on Redis Cluster too:
//
//	lc:{corp}:cnt:{day}:c{code}:{user}  today's counted adds of a staff member through a code
//	lc:{corp}:cnt:{day}:s:{user}        … through any code
//	lc:{corp}:rsv:{day}:c{code}:{user}  reservations: visitor ids scored by expiry
//	lc:{corp}:rsv:{day}:s:{user}        … across codes: "code:visitor"
//	lc:{corp}:rr:{code}                 smooth weighted round-robin state
//
// A count is a set of contact_sources ids plus the marker "_", so counting
// an add twice (a retried delivery) counts it once, and a missing key means
// "lost" (Redis flushed or restarted), never "zero". The scripts refuse to
// use a missing count and name it; the caller rebuilds it from the database
// (a union, so an add counted meanwhile is kept) and runs the script again.
// Redis is a fast copy; contact_sources is the record.

const dayKeyTTL = 48 * time.Hour

// countMarker marks a count set as present: its size is the count plus one.
const countMarker = "_"

func (s *Service) tag(corp string) string { return "{" + corp + "}" }

func (s *Service) cntKey(corp, day string, code int64, user string) string {
	if code == 0 {
		return s.kv.Key("lc", s.tag(corp), "cnt", day, "s", user)
	}
	return s.kv.Key("lc", s.tag(corp), "cnt", day, fmt.Sprintf("c%d", code), user)
}

func (s *Service) rsvKey(corp, day string, code int64, user string) string {
	if code == 0 {
		return s.kv.Key("lc", s.tag(corp), "rsv", day, "s", user)
	}
	return s.kv.Key("lc", s.tag(corp), "rsv", day, fmt.Sprintf("c%d", code), user)
}

func (s *Service) rrKey(corp string, code int64) string {
	return s.kv.Key("lc", s.tag(corp), "rr", fmt.Sprint(code))
}

// pickScript chooses the staff member for one visit of a rotating link and
// reserves a cap slot for the visitor, in one step: every instance shares one
// rotation, two visits never both take the last slot, and a visitor holds at
// most one reservation (a returning visitor keeps theirs, and is shown the
// same staff member while it lasts).
//
// KEYS[1] the rotation hash; then per candidate 4 keys: code count, code
// reservations, staff count, staff reservations.
// ARGV: now ms, reservation expiry ms, visitor, key TTL s, code id, then per
// candidate: userid, weight, code cap, staff cap (0 = no cap).
// Returns the userid, nil when every candidate is at its cap, or
// {"rebuild", i, …}: the count keys (KEYS indexes) that are missing.
var pickScript = redis.NewScript(`
local now, exp, visitor, ttl, code = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local n = (#ARGV - 5) / 4
local missing = {"rebuild"}
for i = 0, n - 1 do
  local k = 2 + i*4
  if tonumber(ARGV[8 + i*4]) > 0 and redis.call("EXISTS", KEYS[k]) == 0 then missing[#missing+1] = k end
  if tonumber(ARGV[9 + i*4]) > 0 and redis.call("EXISTS", KEYS[k+2]) == 0 then missing[#missing+1] = k + 2 end
end
if #missing > 1 then return missing end
local function used(count, rsv)
  redis.call("ZREMRANGEBYSCORE", rsv, "-inf", now)
  return redis.call("SCARD", count) - 1 + redis.call("ZCARD", rsv)
end
local mine = code .. ":" .. visitor
-- A returning visitor with a live reservation keeps its staff member.
for i = 0, n - 1 do
  local k = 2 + i*4
  local s = redis.call("ZSCORE", KEYS[k+1], visitor)
  if s and tonumber(s) > now then
    redis.call("ZADD", KEYS[k+1], exp, visitor)
    if tonumber(ARGV[9 + i*4]) > 0 then redis.call("ZADD", KEYS[k+3], exp, mine) end
    return ARGV[6 + i*4]
  end
end
local elig, total, best, bestw = {}, 0, nil, nil
for i = 0, n - 1 do
  local user, w = ARGV[6 + i*4], tonumber(ARGV[7 + i*4])
  local ccap, scap = tonumber(ARGV[8 + i*4]), tonumber(ARGV[9 + i*4])
  local k = 2 + i*4
  local ok = w > 0
  if ok and ccap > 0 and used(KEYS[k], KEYS[k+1]) >= ccap then ok = false end
  if ok and scap > 0 and used(KEYS[k+2], KEYS[k+3]) >= scap then ok = false end
  if ok then
    local cw = tonumber(redis.call("HGET", KEYS[1], user) or "0") + w
    elig[#elig + 1] = {user, cw, k, ccap, scap}
    total = total + w
    if bestw == nil or cw > bestw then best, bestw = #elig, cw end
  end
end
if best == nil then return false end
for i, e in ipairs(elig) do
  local cw = e[2]
  if i == best then cw = cw - total end
  redis.call("HSET", KEYS[1], e[1], cw)
end
local k = elig[best][3]
-- Reserve only where a cap can run out.
if elig[best][4] > 0 then
  redis.call("ZADD", KEYS[k+1], exp, visitor)
  redis.call("EXPIRE", KEYS[k+1], ttl)
end
if elig[best][5] > 0 then
  redis.call("ZADD", KEYS[k+3], exp, mine)
  redis.call("EXPIRE", KEYS[k+3], ttl)
end
return elig[best][1]`)

// consumeScript counts an add (a contact_sources id) for a staff member
// through a code and overall, and releases one reservation the code's visits
// made for them: the oldest of this code's, in both sets. The add itself
// cannot name its visitor (WeCom's state is fixed per QR), so the slot it
// fills is the one held longest. Only the first count of an add releases a
// slot: a retried delivery, or an add already in a count rebuilt from the
// database, counts once and releases nothing (a reservation then lapses by
// expiry: a cap is never overrun, at worst a slot idles for a few minutes).
// It changes nothing and names the missing count when one is (rebuild it,
// then run the script again): 0 the code's, 2 the staff member's overall.
// Only the missing one is rebuilt: a rebuild takes in adds committed but not
// yet counted, which then release nothing.
//
// KEYS: code count, code reservations, staff count, staff reservations.
// ARGV: source id, key TTL s, code id.
var consumeScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
if redis.call("EXISTS", KEYS[3]) == 0 then return 2 end
local ttl = tonumber(ARGV[2])
local first = redis.call("SADD", KEYS[1], ARGV[1])
redis.call("EXPIRE", KEYS[1], ttl)
redis.call("SADD", KEYS[3], ARGV[1])
redis.call("EXPIRE", KEYS[3], ttl)
if first == 0 then return 1 end
local oldest = redis.call("ZRANGE", KEYS[2], 0, 0)
if #oldest == 1 then
  redis.call("ZREM", KEYS[2], oldest[1])
  redis.call("ZREM", KEYS[4], ARGV[3] .. ":" .. oldest[1])
end
return 1`)

// candidate is a staff member the rotation may pick.
type candidate struct {
	UserID   string
	Weight   int
	CodeCap  int
	StaffCap int
}

// pick runs the rotation for one visit; it returns "" when every candidate is at its cap.
func (s *Service) pick(ctx context.Context, c *Code, day string, cands []candidate, visitor string, now time.Time) (string, error) {
	if len(cands) == 0 {
		return "", nil
	}
	keys := []string{s.rrKey(c.CorpID, c.ID)}
	args := []any{now.UnixMilli(), now.Add(s.ReservationTTL).UnixMilli(), visitor, int(dayKeyTTL.Seconds()), c.ID}
	for _, cd := range cands {
		keys = append(keys, s.cntKey(c.CorpID, day, c.ID, cd.UserID), s.rsvKey(c.CorpID, day, c.ID, cd.UserID),
			s.cntKey(c.CorpID, day, 0, cd.UserID), s.rsvKey(c.CorpID, day, 0, cd.UserID))
		args = append(args, cd.UserID, cd.Weight, cd.CodeCap, cd.StaffCap)
	}
	for attempt := 0; ; attempt++ {
		res, err := pickScript.Run(ctx, s.kv, keys, args...).Result()
		if errors.Is(err, redis.Nil) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		switch v := res.(type) {
		case string:
			return v, nil
		case []any:
			if attempt > 0 {
				return "", errors.New("cap counters vanished while being rebuilt")
			}
			for _, x := range v[1:] {
				i, _ := x.(int64)
				cd := cands[(i-2)/4]
				code := c.ID
				if (i-2)%4 == 2 {
					code = 0
				}
				if err := s.rebuildCount(ctx, c.CorpID, day, code, cd.UserID); err != nil {
					return "", err
				}
			}
		default:
			return "", fmt.Errorf("pick: unexpected answer %T", res)
		}
	}
}

// consume counts a recorded add (its contact_sources id) against the staff
// member's caps; counting the same add again changes nothing.
func (s *Service) consume(ctx context.Context, corp, day string, code int64, user string, sourceID int64) error {
	keys := []string{s.cntKey(corp, day, code, user), s.rsvKey(corp, day, code, user), s.cntKey(corp, day, 0, user), s.rsvKey(corp, day, 0, user)}
	for attempt := 0; attempt < 3; attempt++ {
		res, err := consumeScript.Run(ctx, s.kv, keys, sourceID, int(dayKeyTTL.Seconds()), code).Int()
		if err != nil || res == 1 {
			return err
		}
		// A lost (or never made) count: rebuilt from the database, which
		// already has this add.
		scope := code
		if res == 2 {
			scope = 0
		}
		if err := s.rebuildCount(ctx, corp, day, scope, user); err != nil {
			return err
		}
	}
	return errors.New("cap counters vanished while being rebuilt")
}

// rebuildCount re-creates a count from contact_sources (a union with
// whatever the set holds by then).
func (s *Service) rebuildCount(ctx context.Context, corp, day string, code int64, user string) error {
	srcIDs, err := s.store.countedAddIDs(ctx, corp, day, code, user)
	if err != nil {
		return err
	}
	members := make([]any, 0, len(srcIDs)+1)
	members = append(members, countMarker)
	for _, id := range srcIDs {
		members = append(members, id)
	}
	key := s.cntKey(corp, day, code, user)
	pipe := s.kv.TxPipeline()
	pipe.SAdd(ctx, key, members...)
	pipe.Expire(ctx, key, dayKeyTTL)
	_, err = pipe.Exec(ctx)
	return err
}

// counts returns today's adds per staff member through the code and overall.
func (s *Service) counts(ctx context.Context, corp, day string, code int64, users []string) (byCode, overall map[string]int, err error) {
	byCode, overall = map[string]int{}, map[string]int{}
	for _, scope := range []struct {
		code int64
		out  map[string]int
	}{{code, byCode}, {0, overall}} {
		pipe := s.kv.Pipeline()
		cmds := make([]*redis.IntCmd, len(users))
		for i, u := range users {
			cmds[i] = pipe.SCard(ctx, s.cntKey(corp, day, scope.code, u))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, nil, err
		}
		for i, u := range users {
			n := cmds[i].Val()
			if n == 0 { // lost: rebuild, then read it
				if err := s.rebuildCount(ctx, corp, day, scope.code, u); err != nil {
					return nil, nil, err
				}
				if n, err = s.kv.SCard(ctx, s.cntKey(corp, day, scope.code, u)).Result(); err != nil {
					return nil, nil, err
				}
			}
			scope.out[u] = int(n) - 1
		}
	}
	return byCode, overall, nil
}
