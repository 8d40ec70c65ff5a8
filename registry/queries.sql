-- The registry's SQL, one named block per query (loaded once by registry/store.py).

-- name: user_by_username
SELECT id, username, email, role, parent_id, status, password_hash
FROM users WHERE username = $1;

-- name: user_by_email
SELECT id, username, email, role, parent_id, status, password_hash
FROM users WHERE lower(email) = lower($1);

-- name: user_by_id
SELECT id, username, email, role, parent_id, status, password_hash
FROM users WHERE id = $1;

-- name: count_users
SELECT count(*) FROM users;

-- name: insert_user
INSERT INTO users (username, email, password_hash, role, parent_id)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: insert_api_key
INSERT INTO api_keys (user_id, key_hash) VALUES ($1, $2) RETURNING id;

-- name: insert_app
INSERT INTO apps (app_id, name, daily_quota, access_ttl, refresh_ttl)
VALUES ($1, $2, $3, $4, $5);

-- name: app_by_id
SELECT app_id, name, daily_quota, access_ttl, refresh_ttl FROM apps WHERE app_id = $1;

-- name: user_by_api_key
-- The key's owner; the key's use is recorded at most once a minute, so a busy operator's calls do
-- not each write (and lock) the key's row.
WITH hit AS (
    SELECT k.id AS key_id, k.last_used_at, u.id, u.username, u.email, u.role, u.parent_id, u.status
    FROM api_keys k JOIN users u ON u.id = k.user_id
    WHERE k.key_hash = $1
), touched AS (
    UPDATE api_keys k SET last_used_at = now()
    FROM hit
    WHERE k.id = hit.key_id AND (hit.last_used_at IS NULL OR hit.last_used_at < now() - interval '1 minute')
)
SELECT id, username, email, role, parent_id, status FROM hit;

-- name: audit_events
-- The newest $3 events at or after $1 (NULL: any time) by or about user $2 (NULL: anyone),
-- returned oldest first.
SELECT * FROM (
    SELECT id, at, event, actor_id, subject_id, token_id, kind, client_addr, details
    FROM audit_log
    WHERE ($1::timestamptz IS NULL OR at >= $1)
      AND ($2::bigint IS NULL OR actor_id = $2 OR subject_id = $2)
    ORDER BY id DESC
    LIMIT $3
) newest
ORDER BY id;

-- name: set_user_status
UPDATE users SET status = $2 WHERE id = $1;

-- name: disable_zabbix_tokens_of
-- A revoked account's Zabbix API tokens: kept (token.get still shows them, disabled), never honoured
-- again until their owner's administrator enables them.
UPDATE tokens SET status = 'disabled'
WHERE owner_id = $1 AND kind = 'zabbix' AND status = 'active'
RETURNING id;

-- name: delete_wialon_tokens_of
-- Wialon tokens have no disabled state: revoking them is deleting them, as Wialon's deleteAll does.
DELETE FROM tokens WHERE owner_id = $1 AND kind = 'wialon'
RETURNING id;

-- name: delete_api_keys_of
DELETE FROM api_keys WHERE user_id = $1
RETURNING id;

-- name: user_id_by_username
SELECT id FROM users WHERE username = $1;
