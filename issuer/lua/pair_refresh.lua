-- tokens.refresh: consume a refresh token and write the next pair, in one atomic step, so that of
-- any number of concurrent refreshes with one token exactly one sees it live.
-- Presenting a refresh token that was already used revokes its whole family (reuse detection).
-- KEYS[1] = family hash, KEYS[2] = presented refresh token ("live:<end>" or "used:<end>"),
-- KEYS[3] = new access token, KEYS[4] = new refresh token (all four share the family's hash tag).
-- ARGV[1] = now (unix seconds), ARGV[2] = revocation channel, ARGV[3] = revocation message.
-- Returns {'ok', user_id, app_id, access_end, refresh_end, epoch (the account's, at make time)},
-- {'reused', user_id, app_id} or {'invalid'}.
local value = redis.call('GET', KEYS[2])
if not value then
  return {'invalid'}
end
local state, ends = string.match(value, '^(%a+):(%d+)$')
local now = tonumber(ARGV[1])
-- Past its end a token is dead, used or not, even before Redis has expired its key.
if not state or tonumber(ends) <= now then
  return {'invalid'}
end
local family = redis.call('HMGET', KEYS[1], 'user_id', 'app_id', 'access_ttl', 'refresh_ttl', 'epoch')
if not family[1] then
  return {'invalid'}  -- the family was revoked; its tokens are dead, nothing more to do
end
if state ~= 'live' then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return {'reused', family[1], family[2]}
end
local access_end = now + tonumber(family[3])
local refresh_end = now + tonumber(family[4])
-- Kept as used until its own end: a replay within that time is recognised as reuse.
redis.call('SET', KEYS[2], 'used:' .. ends, 'KEEPTTL')
redis.call('SET', KEYS[3], access_end, 'EXAT', access_end)
redis.call('SET', KEYS[4], 'live:' .. refresh_end, 'EXAT', refresh_end)
-- GT: the older access tokens of the family stay valid until their own end, so never shorten.
redis.call('EXPIREAT', KEYS[1], math.max(access_end, refresh_end), 'GT')
return {'ok', family[1], family[2], access_end, refresh_end, family[5] or '0'}
