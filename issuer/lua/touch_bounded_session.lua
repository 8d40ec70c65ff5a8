-- Resolve a session and slide its idle timeout in one step, never past the end of the long-lived
-- token it was opened with (if it was opened with one).
-- KEYS[1] = session key: a hash with `user`, `idle` and `epoch` (its account's, when it opened); a
--           token session also has `token_id`, `flags` and, when the token has an end, `ends_at`
--           (unix seconds).
-- ARGV[1] = now (unix seconds)
-- Returns {user JSON, new TTL, token_id or '', flags or '', epoch or ''}; false when the session is
-- gone or its token has ended (the session is then deleted).
local f = redis.call('HMGET', KEYS[1], 'user', 'idle', 'token_id', 'flags', 'ends_at', 'epoch')
if not f[1] then
  return false
end
local ttl = tonumber(f[2])
if f[5] then
  local left = tonumber(f[5]) - tonumber(ARGV[1])
  if left <= 0 then
    redis.call('DEL', KEYS[1])
    return false
  end
  if left < ttl then
    ttl = left
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
return {f[1], ttl, f[3] or '', f[4] or '', f[6] or ''}
