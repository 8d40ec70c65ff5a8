-- Hotspot vouchers (issue 6): one named block per query, loaded once by registry/vouchers.py.
-- Listings always say kind = 'voucher' AND deleted_at IS NULL, the predicate of the partial
-- indexes of migration 0002. An owner of NULL means "every owner" (a super_admin); it only ever
-- narrows a lookup that an index already drives (a code or a u_id), never a listing.
-- Filters: NULL ignores; true keeps only vouchers with the attribute, false only those without.
-- Times leave as unix_seconds() (migration 0004): an integer decodes far faster than a
-- timestamptz, and the wire format wants seconds anyway.

-- name: insert_vouchers
-- A code that clashes with an existing secret is skipped, not an error: the store draws new codes
-- for the rows missing from RETURNING, inside the same transaction.
INSERT INTO tokens (kind, owner_id, creator_id, secret_hash, sealed_secret, multi_use, lifetime_s, external_ref,
                    external_ref_numeric)
SELECT 'voucher', $1, $1, v.secret_hash, v.sealed_secret, $4, $5, $6, $7
FROM unnest($2::bytea[], $3::bytea[]) AS v (secret_hash, sealed_secret)
ON CONFLICT (secret_hash) DO NOTHING
RETURNING id, owner_id, secret_hash,
       unix_seconds(created_at) AS created_at, unix_seconds(first_used_at) AS first_used_at,
       unix_seconds(expires_at) AS expires_at, unix_seconds(repaid_at) AS repaid_at,
       mac, multi_use, lifetime_s, external_ref, external_ref_numeric;

-- name: search_owner
-- The actor ($1), whose role and status decide what it may list, and its own page: one round trip.
-- The page's ids are picked on tokens_voucher_owner_idx alone (filters and offset included), then
-- only the page's rows are read. The condition on the actor is a one-time filter of the lateral
-- subquery: for a super_admin nothing is scanned here, and search_all answers instead.
SELECT a.role AS actor_role, a.status AS actor_status, v.*
FROM users a
LEFT JOIN LATERAL (
    SELECT t.id, t.owner_id, t.secret_hash, t.sealed_secret,
           unix_seconds(t.created_at) AS created_at, unix_seconds(t.first_used_at) AS first_used_at,
           unix_seconds(t.expires_at) AS expires_at, unix_seconds(t.repaid_at) AS repaid_at,
           t.mac, t.multi_use, t.lifetime_s, t.external_ref, t.external_ref_numeric
    FROM (
        SELECT id FROM tokens
        WHERE kind = 'voucher' AND deleted_at IS NULL AND owner_id = a.id
          AND ($2::boolean IS NULL OR (first_used_at IS NOT NULL) = $2)
          AND ($3::boolean IS NULL OR (repaid_at IS NOT NULL) = $3)
          AND ($4::boolean IS NULL OR multi_use = $4)
          AND ($5::boolean IS NULL OR (lifetime_s > 0) = $5)
        ORDER BY id
        LIMIT $6 OFFSET $7
    ) page
    JOIN tokens t ON t.id = page.id
    WHERE a.role <> 'super_admin' AND a.status = 'active'
    ORDER BY t.id
) v ON true
WHERE a.id = $1;

-- name: search_all
-- Every operator's page (super_admin), on tokens_voucher_all_idx the same way.
WITH page AS (
    SELECT id FROM tokens
    WHERE kind = 'voucher' AND deleted_at IS NULL
      AND ($1::boolean IS NULL OR (first_used_at IS NOT NULL) = $1)
      AND ($2::boolean IS NULL OR (repaid_at IS NOT NULL) = $2)
      AND ($3::boolean IS NULL OR multi_use = $3)
      AND ($4::boolean IS NULL OR (lifetime_s > 0) = $4)
    ORDER BY id
    LIMIT $5 OFFSET $6
)
SELECT t.id, t.owner_id, t.secret_hash, t.sealed_secret,
       unix_seconds(t.created_at) AS created_at, unix_seconds(t.first_used_at) AS first_used_at,
       unix_seconds(t.expires_at) AS expires_at, unix_seconds(t.repaid_at) AS repaid_at,
       t.mac, t.multi_use, t.lifetime_s, t.external_ref, t.external_ref_numeric
FROM page JOIN tokens t ON t.id = page.id
ORDER BY t.id;

-- name: search_by_code
-- At most one row, found through tokens_secret_hash_key; the other filters still apply.
SELECT id, owner_id, secret_hash, sealed_secret,
       unix_seconds(created_at) AS created_at, unix_seconds(first_used_at) AS first_used_at,
       unix_seconds(expires_at) AS expires_at, unix_seconds(repaid_at) AS repaid_at,
       mac, multi_use, lifetime_s, external_ref, external_ref_numeric
FROM tokens
WHERE secret_hash = $1 AND kind = 'voucher' AND deleted_at IS NULL
  AND ($2::bigint IS NULL OR owner_id = $2)
  AND ($3::boolean IS NULL OR (first_used_at IS NOT NULL) = $3)
  AND ($4::boolean IS NULL OR (repaid_at IS NOT NULL) = $4)
  AND ($5::boolean IS NULL OR multi_use = $5)
  AND ($6::boolean IS NULL OR (lifetime_s > 0) = $6)
  AND ($7::text IS NULL OR external_ref = $7)
ORDER BY id
LIMIT $8 OFFSET $9;

-- name: search_by_ref
-- One u_id's vouchers, on tokens_voucher_ref_idx.
SELECT id, owner_id, secret_hash, sealed_secret,
       unix_seconds(created_at) AS created_at, unix_seconds(first_used_at) AS first_used_at,
       unix_seconds(expires_at) AS expires_at, unix_seconds(repaid_at) AS repaid_at,
       mac, multi_use, lifetime_s, external_ref, external_ref_numeric
FROM tokens
WHERE external_ref = $1 AND kind = 'voucher' AND deleted_at IS NULL
  AND ($2::bigint IS NULL OR owner_id = $2)
  AND ($3::boolean IS NULL OR (first_used_at IS NOT NULL) = $3)
  AND ($4::boolean IS NULL OR (repaid_at IS NOT NULL) = $4)
  AND ($5::boolean IS NULL OR multi_use = $5)
  AND ($6::boolean IS NULL OR (lifetime_s > 0) = $6)
ORDER BY id
LIMIT $7 OFFSET $8;

-- name: voucher_for_use
-- Locks the voucher for the rest of the transaction: of two concurrent first uses, the second
-- waits here and then sees the MAC the first one bound. Deleted rows are returned on purpose, so
-- that using one fails as "deleted", not as "unknown".
SELECT id, owner_id, secret_hash, sealed_secret,
       unix_seconds(created_at) AS created_at, unix_seconds(first_used_at) AS first_used_at,
       unix_seconds(expires_at) AS expires_at, unix_seconds(repaid_at) AS repaid_at,
       deleted_at, mac, multi_use, lifetime_s, external_ref, external_ref_numeric,
       (expires_at IS NOT NULL AND expires_at <= now()) AS is_expired
FROM tokens
WHERE secret_hash = $1 AND kind = 'voucher' AND ($2::bigint IS NULL OR owner_id = $2)
FOR UPDATE;

-- name: mark_voucher_used
-- The first use stamps used_at, binds the MAC and starts the validity period; later uses keep
-- all three (SET expressions read the row as it was before this UPDATE).
UPDATE tokens SET
    first_used_at = coalesce(first_used_at, now()),
    mac = coalesce(mac, $2::macaddr),
    expires_at = CASE WHEN first_used_at IS NULL AND lifetime_s > 0
                      THEN now() + lifetime_s * interval '1 second'
                      ELSE expires_at END,
    last_used_at = now()
WHERE id = $1
RETURNING id, owner_id, secret_hash, sealed_secret,
       unix_seconds(created_at) AS created_at, unix_seconds(first_used_at) AS first_used_at,
       unix_seconds(expires_at) AS expires_at, unix_seconds(repaid_at) AS repaid_at,
          mac, multi_use, lifetime_s, external_ref, external_ref_numeric;

-- name: repay_vouchers
-- Repaying twice is not an error and keeps the first repaid_at; `changed` tells which rows this
-- call repaid (for the audit count).
WITH found AS (
    SELECT id, secret_hash, repaid_at FROM tokens
    WHERE secret_hash = ANY($1::bytea[]) AND kind = 'voucher' AND deleted_at IS NULL
      AND ($2::bigint IS NULL OR owner_id = $2)
    FOR UPDATE
), repaid AS (
    UPDATE tokens t SET repaid_at = now()
    FROM found
    WHERE t.id = found.id AND found.repaid_at IS NULL
    RETURNING t.id
)
SELECT found.id, found.secret_hash, repaid.id IS NOT NULL AS changed
FROM found LEFT JOIN repaid ON repaid.id = found.id;

-- name: delete_vouchers
-- Soft delete; the sweeper purges the rows after TOKENHUB_VOUCHER_RETENTION_DAYS.
UPDATE tokens SET deleted_at = now()
WHERE secret_hash = ANY($1::bytea[]) AND kind = 'voucher' AND deleted_at IS NULL
  AND ($2::bigint IS NULL OR owner_id = $2)
RETURNING id, secret_hash;
