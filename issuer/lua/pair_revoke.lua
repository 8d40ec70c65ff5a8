-- Revoke the family of an access token (DELETE /v1/tokens): deleting the family hash kills every
-- token descended from the same tokens.make at once; gateways hear of it on the channel.
-- KEYS[1] = family hash, KEYS[2] = access token key.
-- ARGV[1] = now (unix seconds), ARGV[2] = revocation channel, ARGV[3] = revocation message.
-- Returns {user_id, app_id}, or false when the token was not valid.
local ends = redis.call('GET', KEYS[2])
if not ends or tonumber(ends) <= tonumber(ARGV[1]) then
  return false
end
local owner = redis.call('HMGET', KEYS[1], 'user_id', 'app_id')
if not owner[1] then
  return false
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return owner
