-- The sweeper's SQL. Each job takes one batch per statement: rows are claimed with
-- FOR UPDATE SKIP LOCKED, so several sweepers share the work without waiting on each other or
-- touching a row twice, and API writes wait at most for one batch.

-- name: expire_batch
-- $1 batch size.
WITH batch AS (
    SELECT id FROM tokens
    WHERE expires_at <= now() AND NOT expired
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE tokens t SET expired = true
FROM batch WHERE t.id = batch.id
RETURNING t.id, t.kind;

-- name: count_expire
SELECT count(*) FROM tokens WHERE expires_at <= now() AND NOT expired;

-- name: delete_idle_batch
-- $1 batch size; $2, $3, $4 idle days for zabbix, wialon and voucher tokens. Idle = since the last
-- use, or since creation if never used, whatever the token's own end (Wialon's dur 0 included).
-- The first condition (the shortest limit) is what tokens_idle_idx serves; the second is exact.
WITH batch AS (
    SELECT id FROM tokens
    WHERE coalesce(last_used_at, created_at) <= now() - make_interval(days => least($2::int, $3::int, $4::int))
      AND coalesce(last_used_at, created_at) <= now() - make_interval(
              days => CASE kind WHEN 'zabbix' THEN $2::int WHEN 'wialon' THEN $3::int ELSE $4::int END)
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM tokens t
USING batch WHERE t.id = batch.id
RETURNING t.id, t.kind;

-- name: count_delete_idle
SELECT count(*) FROM tokens
WHERE coalesce(last_used_at, created_at) <= now() - make_interval(
          days => CASE kind WHEN 'zabbix' THEN $1::int WHEN 'wialon' THEN $2::int ELSE $3::int END);

-- name: purge_vouchers_batch
-- $1 batch size; $2 days a soft-deleted voucher is kept.
WITH batch AS (
    SELECT id FROM tokens
    WHERE kind = 'voucher' AND deleted_at <= now() - make_interval(days => $2)
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM tokens t
USING batch WHERE t.id = batch.id
RETURNING t.id, t.kind;

-- name: count_purge_vouchers
SELECT count(*) FROM tokens WHERE kind = 'voucher' AND deleted_at <= now() - make_interval(days => $1);

