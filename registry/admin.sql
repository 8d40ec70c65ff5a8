-- The admin API's queries (issue 17), loaded once by registry/admin.py. Every listing takes the
-- actor's reach first ($1: users_reached(actor), NULL for everyone), then optional filters, each
-- "$n IS NULL OR ..." (the pool plans every statement for its values: shared/postgres.py), then a
-- keyset position and a page size. A token's status is token_status(t), written once (0006).

-- name: reach
SELECT users_reached($1);

-- name: list_users
SELECT id, username, email, role, parent_id, status, created_at
FROM users
WHERE ($1::bigint[] IS NULL OR id = ANY($1))
  AND ($2::text IS NULL OR username ILIKE $2 OR email ILIKE $2)
  AND ($3::text IS NULL OR role = $3)
  AND ($4::text IS NULL OR status = $4)
  AND (NOT $5::boolean OR email IS NOT NULL)
  AND id > $6
  AND ($8::bigint IS NULL OR id = ANY(users_below($8)))
ORDER BY id
LIMIT $7;

-- name: user_in_reach
SELECT id, username, email, role, parent_id, status, created_at
FROM users
WHERE id = $2 AND ($1::bigint[] IS NULL OR id = ANY($1));

-- name: set_role
UPDATE users SET role = $2 WHERE id = $1;

-- name: set_password
UPDATE users SET password_hash = $2 WHERE id = $1;

-- name: list_tokens
SELECT t.id, t.kind, t.owner_id, u.username AS owner, t.name, t.secret_hash, t.sealed_secret,
       token_status(t) AS status, t.created_at, t.last_used_at, t.expires_at
FROM tokens t JOIN users u ON u.id = t.owner_id
WHERE ($1::bigint[] IS NULL OR t.owner_id = ANY($1))
  AND ($2::text IS NULL OR t.kind = $2)
  AND ($3::bigint IS NULL OR t.owner_id = $3)
  -- One trigram index per kind with names (0003, 0006); a voucher's code is sealed, never searched.
  AND ($4::text IS NULL OR (t.kind = 'zabbix' AND t.name ILIKE $4) OR (t.kind = 'wialon' AND t.name ILIKE $4))
  AND (CASE WHEN $5::text IS NULL THEN t.deleted_at IS NULL ELSE token_status(t) = $5 END)
  AND ($6::timestamptz IS NULL OR t.created_at >= $6)
  AND ($7::timestamptz IS NULL OR t.created_at < $7)
  AND ($8::timestamptz IS NULL OR t.expires_at >= $8)
  AND ($9::timestamptz IS NULL OR t.expires_at < $9)
  AND ($10::timestamptz IS NULL OR t.last_used_at >= $10)
  AND ($11::timestamptz IS NULL OR t.last_used_at < $11)
  AND ($12::timestamptz IS NULL OR (t.created_at, t.id) < ($12, $13::bigint))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $14;

-- name: tokens_in_reach
-- The tokens among $2 that the actor reaches, locked for the bulk action that follows.
SELECT id, kind FROM tokens
WHERE id = ANY($2::bigint[]) AND ($1::bigint[] IS NULL OR owner_id = ANY($1))
ORDER BY id
FOR UPDATE;

-- name: disable_zabbix
UPDATE tokens SET status = 'disabled'
WHERE id = ANY($1::bigint[]) AND kind = 'zabbix' AND status = 'active'
RETURNING id;

-- name: delete_wialon_or_zabbix
DELETE FROM tokens WHERE id = ANY($1::bigint[]) AND kind = ANY($2::text[])
RETURNING id;

-- name: repay_vouchers
UPDATE tokens SET repaid_at = now()
WHERE id = ANY($1::bigint[]) AND kind = 'voucher' AND repaid_at IS NULL AND deleted_at IS NULL
RETURNING id;

-- name: soft_delete_vouchers
-- Soft delete, as the hotspot dialect's deletetokens; the sweeper purges the rows later.
UPDATE tokens SET deleted_at = now()
WHERE id = ANY($1::bigint[]) AND kind = 'voucher' AND deleted_at IS NULL
RETURNING id;

-- name: list_apps
SELECT app_id, name, daily_quota, access_ttl, refresh_ttl FROM apps ORDER BY app_id LIMIT $1;

-- name: update_app
UPDATE apps SET name = coalesce($2, name), daily_quota = coalesce($3, daily_quota),
                access_ttl = coalesce($4, access_ttl), refresh_ttl = coalesce($5, refresh_ttl)
WHERE app_id = $1
RETURNING app_id, name, daily_quota, access_ttl, refresh_ttl;

-- name: list_audit
-- Someone other than a super_admin sees the events by or about the users it reaches. The page is
-- picked first, then its rows' actor and subject names are joined (two primary-key lookups a row,
-- one statement); a name is given only for a user the actor reaches (an id alone tells no more than
-- the row itself), and none for an account that no longer exists.
SELECT e.id, e.at, e.event, e.actor_id, e.subject_id, e.token_id, e.kind, e.client_addr, e.details,
       CASE WHEN $1::bigint[] IS NULL OR ua.id = ANY($1) THEN ua.username END AS actor_name,
       CASE WHEN $1::bigint[] IS NULL OR us.id = ANY($1) THEN us.username END AS subject_name
FROM (
    SELECT id, at, event, actor_id, subject_id, token_id, kind, client_addr, details
    FROM audit_log
    WHERE ($1::bigint[] IS NULL OR actor_id = ANY($1) OR subject_id = ANY($1))
      AND ($2::bigint IS NULL OR actor_id = $2 OR subject_id = $2)
      AND ($3::text IS NULL OR event = $3)
      AND ($4::timestamptz IS NULL OR at >= $4)
      AND ($5::timestamptz IS NULL OR at < $5)
      AND ($6::timestamptz IS NULL OR (at, id) < ($6, $7::bigint))
    ORDER BY at DESC, id DESC
    LIMIT $8
) e
LEFT JOIN users ua ON ua.id = e.actor_id
LEFT JOIN users us ON us.id = e.subject_id
ORDER BY e.at DESC, e.id DESC;

-- name: count_tokens
SELECT t.kind, token_status(t) AS status, count(*) AS count
FROM tokens t
WHERE ($1::bigint[] IS NULL OR t.owner_id = ANY($1))
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: summary_window
-- When the summary is taken, and the first hour of its last 24.
SELECT now() AS counted_at, date_trunc('hour', now()) - interval '23 hours' AS since;

-- name: hourly
-- Tokens created and logins failed in each hour since $2, for the users reached.
WITH issued AS (
    SELECT date_trunc('hour', created_at) AS hour, count(*) AS n FROM tokens
    WHERE created_at >= $2 AND ($1::bigint[] IS NULL OR owner_id = ANY($1))
    GROUP BY 1
), failed AS (
    SELECT date_trunc('hour', at) AS hour, count(*) AS n FROM audit_log
    WHERE event = 'login_failed' AND at >= $2 AND ($1::bigint[] IS NULL OR subject_id = ANY($1))
    GROUP BY 1
)
SELECT coalesce(i.hour, f.hour) AS hour, coalesce(i.n, 0) AS issued, coalesce(f.n, 0) AS failed_logins
FROM issued i FULL JOIN failed f ON f.hour = i.hour
ORDER BY 1;
