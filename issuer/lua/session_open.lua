-- Open a session: its fields and its TTL in one atomic step (a session never exists without its
-- end). KEYS[1] = session key.
-- ARGV[1] = TTL (seconds), ARGV[2..] = field, value, field, value... (user, idle, epoch, and for a
-- token session token_id, flags, ends_at: touch_bounded_session.lua reads them).
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
