-- tokens.make: a new family and its first pair, in one atomic step, so that a family never exists
-- without its first pair (all three keys share the family's hash tag: one Redis Cluster slot).
-- KEYS[1] = family hash, KEYS[2] = access token, KEYS[3] = refresh token.
-- ARGV[1] = user_id, ARGV[2] = app_id, ARGV[3] = access_ttl, ARGV[4] = refresh_ttl,
-- ARGV[5] = created_at (unix seconds), ARGV[6] = the account's epoch, ARGV[7] = access end,
-- ARGV[8] = refresh end (unix seconds).
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'app_id', ARGV[2], 'access_ttl', ARGV[3],
  'refresh_ttl', ARGV[4], 'created_at', ARGV[5], 'epoch', ARGV[6])
redis.call('EXPIREAT', KEYS[1], math.max(tonumber(ARGV[7]), tonumber(ARGV[8])))
redis.call('SET', KEYS[2], ARGV[7], 'EXAT', ARGV[7])
redis.call('SET', KEYS[3], 'live:' .. ARGV[8], 'EXAT', ARGV[8])
return 1
