-- Take one unit of a daily tokens.make quota, or refuse without taking it. Check and increment are
-- one atomic step, so concurrent makes can never pass the limit together.
-- KEYS[1] = the (user, app, day) counter hash {used, refused}.
-- ARGV[1] = daily limit, ARGV[2] = when the counter expires (unix seconds, after the day ends).
-- Returns {1, used} when taken (used counts this make), {0, used, refused} when refused
-- (refused counts this refusal; 1 means it is the day's first).
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
if used >= limit then
  local refused = redis.call('HINCRBY', KEYS[1], 'refused', 1)
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
  return {0, used, refused}
end
used = redis.call('HINCRBY', KEYS[1], 'used', 1)
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return {1, used}
