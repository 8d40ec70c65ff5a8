-- Settle an attempt taken by attempt_take.lua. ARGV[1] = the window (seconds); ARGV[1 + i] says
-- what the attempt was, for KEYS[i]:
--   'fail'  : a failure (a wrong password, an unknown code): it counts until the window ends;
--   'clear' : a success that also forgives the subject's failures (an account whose owner has just
--             proved who they are);
--   'void'  : no failure (a success, for an address others may still be abusing behind; or a check
--             that never happened because a service did not answer).
-- A counter whose window ended meanwhile is not re-created without a TTL: a failure then starts a
-- new window, anything else leaves it gone.
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local action = ARGV[i + 1]
  if redis.call('EXISTS', key) == 1 then
    if tonumber(redis.call('HGET', key, 'f') or '0') > 0 then
      redis.call('HINCRBY', key, 'f', -1)
    end
    if action == 'fail' then
      redis.call('HINCRBY', key, 'n', 1)
    elseif action == 'clear' then
      redis.call('HSET', key, 'n', 0)
    end
  elseif action == 'fail' then
    redis.call('HSET', key, 'n', 1)
    redis.call('EXPIRE', key, window)
  end
end
return 1
