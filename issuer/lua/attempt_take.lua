-- Take one attempt against every subject's failure budget, BEFORE the (slow) check it is for, in one
-- atomic step: so N parallel wrong guesses for one account cause at most its limit of password
-- checks, never N. A subject's budget is its limit minus its failures in the window; attempts in
-- flight hold a share of it until attempt_finish.lua says whether they failed. When the whole
-- budget is in flight the caller waits and tries again: right passwords sent in parallel are only
-- queued, never refused.
-- KEYS[i] = subject i's counter, a hash {n = failures in the window, f = attempts in flight,
--           b = refusals in the window}; one call's keys share the realm's hash tag (one slot).
-- ARGV[1] = the window (seconds, from the window's first attempt); ARGV[1 + i] = subject i's limit.
-- Returns {1} when taken; {2} when busy (try again shortly); {0, seconds until the window ends,
-- first} when refused, first = 1 if this is the window's first refusal for a refusing subject.
local window = tonumber(ARGV[1])
local refused = false
local busy = false
local wait = 1
local first = 0
for i, key in ipairs(KEYS) do
  local counts = redis.call('HMGET', key, 'n', 'f')
  local failed, flying = tonumber(counts[1] or '0'), tonumber(counts[2] or '0')
  local limit = tonumber(ARGV[i + 1])
  if failed >= limit then
    refused = true
    local ttl = redis.call('TTL', key)
    if ttl > wait then
      wait = ttl
    end
    if redis.call('HINCRBY', key, 'b', 1) == 1 then
      first = 1
    end
  elseif failed + flying >= limit then
    busy = true
  end
end
if refused then
  return {0, wait, first}
end
if busy then
  return {2}
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'f', 1)
  if redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, window)  -- the window starts at its first attempt
  end
end
return {1}
