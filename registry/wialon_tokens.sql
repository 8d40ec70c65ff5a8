-- Wialon tokens (kind 'wialon', DESIGN §2.2): app, activation, lifetime, access flags, items, params,
-- last login. Loaded once by registry/wialon_tokens.py. Times go out as unix seconds; every
-- parameter is a $n, nothing here is ever assembled from request text.

-- name: actor
SELECT id, role, status FROM users WHERE id = $1;

-- name: manages
-- Whether user $1 is user $2 or above it in the parent chain. Walks up from $2: one row per level,
-- however many users sit below $1. CYCLE stops the walk should the chain ever loop.
WITH RECURSIVE chain (id, parent_id) AS (
    SELECT id, parent_id FROM users WHERE id = $2
    UNION ALL
    SELECT u.id, u.parent_id FROM users u JOIN chain c ON u.id = c.parent_id
) CYCLE id SET looped USING path
SELECT EXISTS (SELECT 1 FROM chain WHERE id = $1 AND NOT looped);

-- name: user_by_name
SELECT id, username, email, role, parent_id, status FROM users WHERE username = $1;

-- name: count_owner_tokens
-- How many Wialon tokens the owner has, counted with the owner's row locked (FOR NO KEY UPDATE: other
-- writers of the same owner's Wialon tokens wait here; foreign-key checks of other inserts do not),
-- so that concurrent creates cannot pass the per-user limit together.
WITH owner AS (SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE)
SELECT count(*) FROM tokens t JOIN owner ON t.owner_id = owner.id
WHERE t.kind = 'wialon';

-- name: insert_token
-- $5 NULL: activate now (whole seconds, so `at` equals `ct`); $7 0: no end.
WITH v AS (SELECT coalesce($5::timestamptz, date_trunc('second', now())) AS activates_at)
INSERT INTO tokens (kind, owner_id, creator_id, secret_hash, sealed_secret, name, activates_at,
                    expires_at, lifetime_s, flags, items, params)
SELECT 'wialon', $1::bigint, $2::bigint, $3::bytea, $4::bytea, $6::text, v.activates_at,
       CASE WHEN $7::int > 0 THEN v.activates_at + make_interval(secs => $7::int) END,
       $7::int, $8::bigint, $9::bigint[], $10::jsonb
FROM v
RETURNING id, owner_id, creator_id, secret_hash, sealed_secret, name,
          unix_seconds(created_at) AS created_at,
          unix_seconds(activates_at) AS activates_at,
          lifetime_s,
          unix_seconds(expires_at) AS expires_at,
          flags, items, params,
          unix_seconds(last_used_at) AS last_used_at;

-- name: lock_token
-- The token to change, locked: a concurrent update or delete of it waits for this transaction.
SELECT id FROM tokens
WHERE kind = 'wialon' AND secret_hash = $1 AND owner_id = $2
FOR UPDATE;

-- name: update_token
WITH v AS (SELECT coalesce($3::timestamptz, date_trunc('second', now())) AS activates_at)
UPDATE tokens t SET
    name = $2,
    activates_at = v.activates_at,
    expires_at = CASE WHEN $4::int > 0 THEN v.activates_at + make_interval(secs => $4::int) END,
    -- A new end may lie in the future again; the sweeper sets the mark anew if it passes.
    expired = false,
    lifetime_s = $4::int,
    flags = $5::bigint,
    items = $6::bigint[],
    params = $7::jsonb
FROM v
WHERE t.id = $1
RETURNING t.id, t.owner_id, t.creator_id, t.secret_hash, t.sealed_secret, t.name,
          unix_seconds(t.created_at) AS created_at,
          unix_seconds(t.activates_at) AS activates_at,
          t.lifetime_s,
          unix_seconds(t.expires_at) AS expires_at,
          t.flags, t.items, t.params,
          unix_seconds(t.last_used_at) AS last_used_at;

-- name: delete_token
DELETE FROM tokens
WHERE kind = 'wialon' AND secret_hash = $1 AND owner_id = $2
RETURNING id, owner_id, creator_id, secret_hash, sealed_secret, name,
          unix_seconds(created_at) AS created_at,
          unix_seconds(activates_at) AS activates_at,
          lifetime_s,
          unix_seconds(expires_at) AS expires_at,
          flags, items, params,
          unix_seconds(last_used_at) AS last_used_at;

-- name: delete_all_tokens
DELETE FROM tokens
WHERE kind = 'wialon' AND owner_id = $1
RETURNING id, owner_id, creator_id, secret_hash, sealed_secret, name,
          unix_seconds(created_at) AS created_at,
          unix_seconds(activates_at) AS activates_at,
          lifetime_s,
          unix_seconds(expires_at) AS expires_at,
          flags, items, params,
          unix_seconds(last_used_at) AS last_used_at;

-- name: list_tokens
-- A user's tokens in creation order (tokens_owner_kind_idx).
SELECT id, owner_id, creator_id, secret_hash, sealed_secret, name,
       unix_seconds(created_at) AS created_at,
       unix_seconds(activates_at) AS activates_at,
       lifetime_s,
       unix_seconds(expires_at) AS expires_at,
       flags, items, params,
       unix_seconds(last_used_at) AS last_used_at
FROM tokens
WHERE kind = 'wialon' AND owner_id = $1
ORDER BY id;

-- name: token_for_login
-- The token behind a secret, with its owner, and why it could not be used now (if it cannot).
SELECT t.id, t.owner_id, t.creator_id, t.secret_hash, t.sealed_secret, t.name,
       unix_seconds(t.created_at) AS created_at,
       unix_seconds(t.activates_at) AS activates_at,
       t.lifetime_s,
       unix_seconds(t.expires_at) AS expires_at,
       t.flags, t.items, t.params,
       unix_seconds(t.last_used_at) AS last_used_at,
       t.status,
       t.activates_at > now() AS not_yet_active,
       (t.expired OR t.expires_at <= now()) AS ended,
       u.id AS user_id, u.username, u.email, u.role, u.parent_id, u.status AS user_status
FROM tokens t JOIN users u ON u.id = t.owner_id
WHERE t.secret_hash = $1 AND t.kind = 'wialon';

-- name: record_login
-- Wialon's `ll`: the time of the last login with the token. Nothing if it was deleted meanwhile.
UPDATE tokens SET last_used_at = now()
WHERE id = $1
RETURNING unix_seconds(last_used_at) AS last_used_at;

