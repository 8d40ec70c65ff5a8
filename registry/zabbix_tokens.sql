-- Named API tokens (kind 'zabbix'): owner, name, description, status, expiry, last access.
-- Loaded once by registry/zabbix_tokens.py. Times go out as unix seconds. Every block is a whole
-- statement; select_tokens and count_tokens may be narrowed by appending to them (see there).

-- name: existing_owners
SELECT id FROM users WHERE id = ANY($1::bigint[]);

-- name: name_clashes
-- The first (owner, name) pair, in input order, that another token of that owner already has.
SELECT v.owner_id, v.name
FROM unnest($1::bigint[], $2::text[], $3::bigint[]) WITH ORDINALITY AS v(owner_id, name, token_id, ord)
JOIN tokens t ON t.kind = 'zabbix' AND t.owner_id = v.owner_id AND t.name = v.name
WHERE v.token_id IS NULL OR t.id <> v.token_id
ORDER BY v.ord
LIMIT 1;

-- name: insert_tokens
-- The check of the names and the insert in one step: a row whose (owner, name) is taken, by a
-- committed token or by one a concurrent transaction commits meanwhile (the unique index makes this
-- one wait for it), is skipped, and the caller tells which pair is missing from what is returned.
-- (A skipped row has drawn its id all the same: the caller refuses the names it can see first.)
-- Identity values are drawn in the order rows are inserted, which follows ORDER BY ord: the
-- returned ids, sorted, correspond to the input positions.
INSERT INTO tokens (kind, owner_id, creator_id, name, description, status, expires_at)
SELECT 'zabbix', v.owner_id, $1, v.name, v.description, v.status, v.expires_at
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
     WITH ORDINALITY AS v(owner_id, name, description, status, expires_at, ord)
ORDER BY v.ord
ON CONFLICT (owner_id, name) WHERE kind = 'zabbix' DO NOTHING
RETURNING id, owner_id, name;

-- name: visible_tokens
-- The requested tokens the actor may manage: all for a super admin, else only the actor's own.
-- FOR UPDATE: a concurrent update or delete of the same tokens waits for this transaction.
SELECT id, owner_id FROM tokens
WHERE kind = 'zabbix' AND id = ANY($1::bigint[]) AND ($3 OR owner_id = $2)
FOR UPDATE;

-- name: update_tokens
-- NULL in an input column means "leave as is"; expires_at uses its own flag since NULL is a value.
UPDATE tokens t SET
    name = coalesce(v.name, t.name),
    description = coalesce(v.description, t.description),
    status = coalesce(v.status, t.status),
    expires_at = CASE WHEN v.set_expiry THEN v.expires_at ELSE t.expires_at END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[])
     AS v(id, name, description, status, set_expiry, expires_at)
WHERE t.id = v.id;

-- name: delete_tokens
DELETE FROM tokens WHERE id = ANY($1::bigint[]);

-- name: set_secrets
UPDATE tokens t SET secret_hash = v.secret_hash
FROM unnest($1::bigint[], $2::bytea[]) AS v(id, secret_hash)
WHERE t.id = v.id;

-- name: authenticate
-- A usable token and its owner. The use is recorded (Zabbix's lastaccess, whole seconds) at most
-- once a second per token, so a busy token does not turn every request into a row lock.
-- A guest's token authenticates nobody: Zabbix 6.0.14 answers it "Not authorized." (after "API
-- token expired." if it has ended) and records no lastaccess.
WITH hit AS (
    SELECT t.id AS token_id, t.last_used_at, unix_seconds(t.expires_at) AS expires_at,
           u.id, u.username, u.email, u.role, u.parent_id, u.status
    FROM tokens t JOIN users u ON u.id = t.owner_id
    WHERE t.secret_hash = $1 AND t.kind = 'zabbix' AND t.status = 'active'
      AND (t.expires_at IS NULL OR t.expires_at >= date_trunc('second', now()))
      AND u.status = 'active' AND u.role <> 'guest'
), touched AS (
    UPDATE tokens t SET last_used_at = now()
    FROM hit
    WHERE t.id = hit.token_id
      AND (hit.last_used_at IS NULL OR hit.last_used_at < date_trunc('second', now()))
)
SELECT token_id, expires_at, id, username, email, role, parent_id, status FROM hit;

-- name: why_not_authenticated
SELECT t.status, t.expires_at < date_trunc('second', now()) AS expired, u.status AS user_status
FROM tokens t JOIN users u ON u.id = t.owner_id
WHERE t.secret_hash = $1 AND t.kind = 'zabbix';

-- name: select_tokens
-- The tokens the actor ($1) may see: every one for a super admin, else its own; none for an actor
-- that may see none (unknown, disabled, a guest: the caller tells which when nothing comes back).
-- The actor is read by uncorrelated subqueries, which Postgres runs once, before the scan, and then
-- uses as constants (a refused actor's scan does not run at all).
-- The whole statement; registry/zabbix_tokens.py narrows it by appending "AND ..." conditions, then
-- ORDER BY and LIMIT, each built from a fixed column expression and $n parameters, never from text
-- of the request.
SELECT t.id, t.owner_id, t.creator_id, t.name, t.description, t.status,
       unix_seconds(t.created_at) AS created_at,
       unix_seconds(t.expires_at) AS expires_at,
       unix_seconds(t.last_used_at) AS last_used_at
FROM tokens t
WHERE t.kind = 'zabbix'
  AND (SELECT a.status = 'active' AND a.role <> 'guest' FROM users a WHERE a.id = $1)
  AND (t.owner_id = $1 OR (SELECT a.role = 'super_admin' FROM users a WHERE a.id = $1))

-- name: count_tokens
-- As select_tokens, counting; narrowed by appending "AND ..." conditions in the same way.
SELECT count(*)
FROM tokens t
WHERE t.kind = 'zabbix'
  AND (SELECT a.status = 'active' AND a.role <> 'guest' FROM users a WHERE a.id = $1)
  AND (t.owner_id = $1 OR (SELECT a.role = 'super_admin' FROM users a WHERE a.id = $1))
