-- Take one attempt against every subject's failure budget, BEFORE the (slow) check it is for, in one
-- atomic step: so N parallel wrong guesses for one account cause at most its limit of password
-- checks, never N. A subject's budget is its limit minus its failures in the window; each attempt
-- in flight holds a share of it, as a lease, until attempt_finish.lua settles it. A lease lapses by
-- itself (an issuer killed mid-check never settles), so a crash holds a budget for seconds, not for
-- the window. When the whole budget is held the caller waits and tries again: right passwords sent
-- in parallel are only queued, never refused.
-- KEYS[2i-1] = subject i's failures, a hash {n = failures in the window, b = refusals in it};
-- KEYS[2i]   = subject i's leases, a sorted set of attempt ids scored by when they lapse (ms);
--              one call's keys share the realm's hash tag (one Redis Cluster slot).
-- ARGV[1] = this attempt's id, ARGV[2] = its lease (ms), ARGV[2 + i] = subject i's limit.
-- A lease of 0 only looks: refused as below, else {1}, nothing held and nothing waited for (a login
-- whose password was proved right a moment ago needs no check, so it holds no share of a budget).
-- Returns {1} when taken; {2} when busy (try again shortly); {0, seconds until the window ends,
-- first} when refused, first = 1 if this is the window's first refusal for a refusing subject.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[2])
local refused = false
local busy = false
local wait = 1
local first = 0
for i = 1, #KEYS / 2 do
  local failures, leases = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local failed = tonumber(redis.call('HGET', failures, 'n') or '0')
  local limit = tonumber(ARGV[2 + i])
  if failed >= limit then
    refused = true
    local ttl = redis.call('TTL', failures)
    if ttl > wait then
      wait = ttl
    end
    if redis.call('HINCRBY', failures, 'b', 1) == 1 then
      first = 1
    end
  elseif lease > 0 and failed + redis.call('ZCARD', leases) >= limit then
    busy = true
  end
end
if refused then
  return {0, wait, first}
end
if busy then
  return {2}
end
if lease == 0 then
  return {1}
end
for i = 1, #KEYS / 2 do
  local leases = KEYS[2 * i]
  redis.call('ZADD', leases, now + lease, ARGV[1])
  if redis.call('PTTL', leases) < lease then
    redis.call('PEXPIRE', leases, lease)
  end
end
return {1}
