-- Verify an access token: its own key and its family must both exist (a revoked family is gone).
-- KEYS[1] = family hash, KEYS[2] = access token key (value: its end, unix seconds).
-- ARGV[1] = now (unix seconds): a token is dead from its end on, even before Redis expires the key.
-- Returns {user_id, app_id, end, epoch (the account's, at make time)}, or false.
local ends = redis.call('GET', KEYS[2])
if not ends or tonumber(ends) <= tonumber(ARGV[1]) then
  return false
end
local owner = redis.call('HMGET', KEYS[1], 'user_id', 'app_id', 'epoch')
if not owner[1] then
  return false
end
return {owner[1], owner[2], ends, owner[3] or '0'}
