-- Wialon tokens (kind 'wialon', DESIGN §2.2): app, activation, lifetime, access flags, items, params,
-- last login. Loaded once by registry/wialon_tokens.py. Every parameter is a $n, nothing here is
-- ever assembled from request text.
--
-- A token is read whole (`t.*`), every time: which of its columns the registry shows, and as what
-- (times as unix seconds), is said once, by the row model in registry/wialon_tokens.py.

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

-- name: lock_owner
-- The owner's row locked (FOR NO KEY UPDATE: other creates of the same owner's Wialon tokens wait
-- here; foreign-key checks of other inserts do not), so that concurrent creates cannot pass the
-- per-user limit together. Its own statement: under READ COMMITTED the next one, the count, takes a
-- snapshot after the lock was granted and sees what the previous holder committed (counted in the
-- same statement it would not).
SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE;

-- name: count_owner_tokens
SELECT count(*) FROM tokens WHERE owner_id = $1 AND kind = 'wialon';

-- name: insert_token
-- $6 NULL: activate now (whole seconds, so `at` equals `ct`); $7 0: no end. $5 to $10 are in
-- update_token's order.
WITH v AS (SELECT coalesce($6::timestamptz, date_trunc('second', now())) AS activates_at)
INSERT INTO tokens AS t (kind, owner_id, creator_id, secret_hash, sealed_secret, name, activates_at,
                         expires_at, lifetime_s, flags, items, params)
SELECT 'wialon', $1::bigint, $2::bigint, $3::bytea, $4::bytea, $5::text, v.activates_at,
       CASE WHEN $7::int > 0 THEN v.activates_at + make_interval(secs => $7::int) END,
       $7::int, $8::bigint, $9::bigint[], $10::jsonb
FROM v
RETURNING t.*;

-- name: lock_token
-- The token to change, locked: a concurrent update or delete of it waits for this transaction.
SELECT id FROM tokens
WHERE kind = 'wialon' AND secret_hash = $1 AND owner_id = $2
FOR UPDATE;

-- name: update_token
-- $2 to $7: what the token is, in insert_token's order.
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
RETURNING t.*;

-- name: delete_tokens
-- The owner's token with secret hash $1, or every one of the owner's tokens when $1 is NULL.
DELETE FROM tokens t
WHERE t.kind = 'wialon' AND t.owner_id = $2 AND ($1::bytea IS NULL OR t.secret_hash = $1)
RETURNING t.*;

-- name: list_tokens
-- A user's tokens in creation order (tokens_owner_kind_idx).
SELECT t.* FROM tokens t
WHERE t.kind = 'wialon' AND t.owner_id = $1
ORDER BY t.id;

-- name: token_for_login
-- The token behind a secret, with its owner, and why it could not be used now (if it cannot).
SELECT t.*,
       t.activates_at > now() AS not_yet_active,
       coalesce(t.expired OR t.expires_at <= now(), false) AS ended,
       jsonb_build_object('id', u.id, 'username', u.username, 'email', u.email, 'role', u.role,
                          'parent_id', u.parent_id, 'status', u.status) AS owner
FROM tokens t JOIN users u ON u.id = t.owner_id
WHERE t.secret_hash = $1 AND t.kind = 'wialon';

-- name: record_login
-- Wialon's `ll`: the time of the last login with the token. Nothing if it was deleted meanwhile.
UPDATE tokens SET last_used_at = now()
WHERE id = $1
RETURNING last_used_at;
