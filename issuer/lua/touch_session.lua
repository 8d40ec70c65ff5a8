-- Resolve a session and slide its idle timeout in one step.
-- KEYS[1] = session key (a hash with fields `user` and `idle`).
-- Returns the user JSON, or false when the session is gone.
local fields = redis.call('HMGET', KEYS[1], 'user', 'idle')
if not fields[1] then
  return false
end
redis.call('EXPIRE', KEYS[1], tonumber(fields[2]))
return fields[1]
