package livecode

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counters and reservations live in Redis per corp-local day:
//
//	lc:cnt:{corp}:{day}:c{code}:{user}  adds through a code
//	lc:cnt:{corp}:{day}:s:{user}        adds across all codes
//	lc:rsv:…                            the same, for reservations: a sorted
//	                                    set of visit ids scored by expiry
//	lc:rr:{corp}:{code}                 smooth weighted round-robin state
//
// Counters are rebuilt from contact_sources when missing (Redis lost).

const dayKeyTTL = 48 * time.Hour

func (s *Service) cntKey(corp, day string, code int64, user string) string {
	if code == 0 {
		return s.kv.Key("lc", "cnt", corp, day, "s", user)
	}
	return s.kv.Key("lc", "cnt", corp, day, fmt.Sprintf("c%d", code), user)
}

func (s *Service) rsvKey(corp, day string, code int64, user string) string {
	if code == 0 {
		return s.kv.Key("lc", "rsv", corp, day, "s", user)
	}
	return s.kv.Key("lc", "rsv", corp, day, fmt.Sprintf("c%d", code), user)
}

// pickScript chooses the next staff member by smooth weighted round-robin
// among candidates still under their caps, and reserves a cap slot for the
// visit. It is one script, so every instance shares one rotation and two
// visits can never both take the last slot (no read-then-write, no lock).
//
// KEYS[1] the rotation hash; then per candidate 4 keys: code count, code
// reservations, staff count, staff reservations.
// ARGV: now ms, reservation expiry ms, visit id, key TTL s, then per
// candidate: userid, weight, code cap, staff cap (0 = no cap).
var pickScript = redis.NewScript(`
local now, exp, visit, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = (#ARGV - 4) / 4
local function used(count, rsv)
  redis.call("ZREMRANGEBYSCORE", rsv, "-inf", now)
  return tonumber(redis.call("GET", count) or "0") + redis.call("ZCARD", rsv)
end
local elig, total, best, bestw = {}, 0, nil, nil
for i = 0, n - 1 do
  local user, w = ARGV[5 + i*4], tonumber(ARGV[6 + i*4])
  local ccap, scap = tonumber(ARGV[7 + i*4]), tonumber(ARGV[8 + i*4])
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
  redis.call("ZADD", KEYS[k+1], exp, visit)
  redis.call("EXPIRE", KEYS[k+1], ttl)
end
if elig[best][5] > 0 then
  redis.call("ZADD", KEYS[k+3], exp, visit)
  redis.call("EXPIRE", KEYS[k+3], ttl)
end
return elig[best][1]`)

// consumeScript counts an add and releases the oldest reservation of the
// staff member (the visit that led to it, or one like it), in one step.
var consumeScript = redis.NewScript(`
local ttl = tonumber(ARGV[1])
for i = 0, 1 do
  redis.call("INCR", KEYS[1 + i*2])
  redis.call("EXPIRE", KEYS[1 + i*2], ttl)
  redis.call("ZPOPMIN", KEYS[2 + i*2])
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
func (s *Service) pick(ctx context.Context, c *Code, day string, cands []candidate, visit string, now time.Time) (string, error) {
	if len(cands) == 0 {
		return "", nil
	}
	if err := s.ensureCounters(ctx, c.CorpID, day, c.ID, cands); err != nil {
		return "", err
	}
	keys := []string{s.kv.Key("lc", "rr", c.CorpID, fmt.Sprint(c.ID))}
	args := []any{now.UnixMilli(), now.Add(s.ReservationTTL).UnixMilli(), visit, int(dayKeyTTL.Seconds())}
	for _, cd := range cands {
		keys = append(keys, s.cntKey(c.CorpID, day, c.ID, cd.UserID), s.rsvKey(c.CorpID, day, c.ID, cd.UserID),
			s.cntKey(c.CorpID, day, 0, cd.UserID), s.rsvKey(c.CorpID, day, 0, cd.UserID))
		args = append(args, cd.UserID, cd.Weight, cd.CodeCap, cd.StaffCap)
	}
	res, err := pickScript.Run(ctx, s.kv, keys, args...).Result()
	if err == redis.Nil {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	user, _ := res.(string)
	return user, nil
}

// consume counts an add for the staff member (through the code and overall).
func (s *Service) consume(ctx context.Context, corp, day string, code int64, user string) error {
	return consumeScript.Run(ctx, s.kv, []string{
		s.cntKey(corp, day, code, user), s.rsvKey(corp, day, code, user),
		s.cntKey(corp, day, 0, user), s.rsvKey(corp, day, 0, user),
	}, int(dayKeyTTL.Seconds())).Err()
}

// counts returns today's adds per staff member through the code and overall.
func (s *Service) counts(ctx context.Context, corp, day string, code int64, users []string) (byCode, overall map[string]int, err error) {
	cands := make([]candidate, len(users))
	for i, u := range users {
		cands[i] = candidate{UserID: u}
	}
	if err := s.ensureCounters(ctx, corp, day, code, cands); err != nil {
		return nil, nil, err
	}
	pipe := s.kv.Pipeline()
	cc := make([]*redis.StringCmd, len(users))
	sc := make([]*redis.StringCmd, len(users))
	for i, u := range users {
		cc[i] = pipe.Get(ctx, s.cntKey(corp, day, code, u))
		sc[i] = pipe.Get(ctx, s.cntKey(corp, day, 0, u))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, nil, err
	}
	byCode, overall = map[string]int{}, map[string]int{}
	for i, u := range users {
		byCode[u], _ = cc[i].Int()
		overall[u], _ = sc[i].Int()
	}
	return byCode, overall, nil
}

// ensureCounters recreates missing day counters from the database, so a lost
// Redis never lifts a cap.
func (s *Service) ensureCounters(ctx context.Context, corp, day string, code int64, cands []candidate) error {
	pipe := s.kv.Pipeline()
	ex := make([]*redis.IntCmd, 0, 2*len(cands))
	for _, cd := range cands {
		ex = append(ex, pipe.Exists(ctx, s.cntKey(corp, day, code, cd.UserID)), pipe.Exists(ctx, s.cntKey(corp, day, 0, cd.UserID)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i, cd := range cands {
		if ex[2*i].Val() == 0 {
			n, err := s.store.countAdds(ctx, corp, day, code, cd.UserID)
			if err != nil {
				return err
			}
			s.kv.SetNX(ctx, s.cntKey(corp, day, code, cd.UserID), n, dayKeyTTL)
		}
		if ex[2*i+1].Val() == 0 {
			n, err := s.store.countAdds(ctx, corp, day, 0, cd.UserID)
			if err != nil {
				return err
			}
			s.kv.SetNX(ctx, s.cntKey(corp, day, 0, cd.UserID), n, dayKeyTTL)
		}
	}
	return nil
}
