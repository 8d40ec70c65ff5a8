-- Whether any subject has used up its failure budget, for a login that needs no check (a password
-- the registry has just confirmed, from the credential cache): such a login holds no attempt, so a
-- burst of right passwords never queues behind its own leases, but a blocked account stays blocked.
-- KEYS as attempt_take.lua's (failures, leases per subject; one hash tag); ARGV[i] = subject i's limit.
-- Returns {1} when none refuses; {0, seconds until the window ends, first} as attempt_take.lua.
local refused = false
local wait = 1
local first = 0
for i = 1, #KEYS / 2 do
  local failures = KEYS[2 * i - 1]
  local failed = tonumber(redis.call('HGET', failures, 'n') or '0')
  if failed >= tonumber(ARGV[i]) then
    refused = true
    local ttl = redis.call('TTL', failures)
    if ttl > wait then
      wait = ttl
    end
    if redis.call('HINCRBY', failures, 'b', 1) == 1 then
      first = 1
    end
  end
end
if refused then
  return {0, wait, first}
end
return {1}
