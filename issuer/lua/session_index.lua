-- Index a session under the long-lived token that opened it (a set of session hashes), so that
-- deleting or changing the token ends it. The index outlives each of its sessions: its TTL is set if
-- it has none, and only ever pushed forward.
-- KEYS[1] = the token's index; ARGV[1] = session hash, ARGV[2] = the session's idle timeout (s).
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
redis.call('EXPIRE', KEYS[1], ARGV[2], 'GT')
return 1
