-- The sweeper's SQL. Each job takes one batch per statement: rows are claimed with
-- FOR UPDATE SKIP LOCKED, so several sweepers share the work without waiting on each other or
-- touching a row twice, and API writes wait at most for one batch.

-- name: expire_batch
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

-- name: count_expirable
SELECT count(*) FROM tokens WHERE expires_at <= now() AND NOT expired;

-- name: delete_idle_batch
WITH batch AS (
    SELECT id FROM tokens
    WHERE coalesce(last_used_at, created_at) <= now() - make_interval(days => $2)
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM tokens t
USING batch WHERE t.id = batch.id
RETURNING t.id, t.kind;

-- name: count_idle
SELECT count(*) FROM tokens WHERE coalesce(last_used_at, created_at) <= now() - make_interval(days => $1);

-- name: purge_vouchers_batch
WITH batch AS (
    SELECT id FROM tokens
    WHERE kind = 'voucher' AND deleted_at <= now() - make_interval(days => $2)
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM tokens t
USING batch WHERE t.id = batch.id
RETURNING t.id, t.kind;

-- name: count_purgeable
SELECT count(*) FROM tokens WHERE kind = 'voucher' AND deleted_at <= now() - make_interval(days => $1);

-- name: insert_audit
INSERT INTO audit_log (event, kind, details) VALUES ($1, $2, $3);
