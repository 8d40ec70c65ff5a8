-- Settle an attempt taken by attempt_take.lua: its leases end, and ARGV[2 + i] says what it was for
-- subject i (KEYS[2i-1] its failures, KEYS[2i] its leases, as in attempt_take.lua):
--   'fail'  : a failure (a wrong password, an unknown code): it counts until the window ends, and
--             the window starts at the subject's first failure;
--   'clear' : a success that also forgives the subject's failures (an account whose owner has just
--             proved who they are);
--   'void'  : no failure (a success, for an address others may still be abusing behind; or a check
--             that never happened because a service did not answer).
-- ARGV[1] = the attempt's id, ARGV[2] = the failure window (seconds).
local window = tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local failures, leases = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZREM', leases, ARGV[1])
  local action = ARGV[2 + i]
  if action == 'fail' then
    redis.call('HINCRBY', failures, 'n', 1)
    if redis.call('TTL', failures) < 0 then
      redis.call('EXPIRE', failures, window)
    end
  elseif action == 'clear' then
    redis.call('DEL', failures)
  end
end
return 1
