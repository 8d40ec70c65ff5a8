-- Issue 17: the admin API's listings. Every token of every kind in one keyset-paged listing, newest
-- first, for everyone (a super_admin), for a set of owners (an admin and its users), or for one kind;
-- the audit log newest first, by event or user. Each ordered walk has an index whose order is the
-- listing's, so a page costs its own rows, not the table's.

-- A token's status as people read it, written once here: the admin listing's column and filter, and
-- the summary's counts. STABLE: "expired" and "pending" depend on now(), even before the sweeper
-- has marked an expiry.
CREATE FUNCTION token_status(t tokens) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN t.deleted_at IS NOT NULL THEN 'deleted'
        WHEN t.repaid_at IS NOT NULL THEN 'annulled'
        WHEN t.status = 'disabled' THEN 'disabled'
        WHEN t.expired OR t.expires_at <= now() THEN 'expired'
        WHEN t.kind = 'voucher' AND t.first_used_at IS NOT NULL AND NOT t.multi_use THEN 'used'
        WHEN t.activates_at > now() THEN 'pending'
        ELSE 'active'
    END
$$;

-- A user and every user below it in the parent chain (Wialon's sub-users); {} for no such user.
-- CYCLE stops the walk should the chain ever loop.
CREATE FUNCTION users_below(root bigint) RETURNS bigint[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    WITH RECURSIVE below (id) AS (
        SELECT id FROM users WHERE id = root
        UNION ALL
        SELECT u.id FROM users u JOIN below b ON u.parent_id = b.id
    ) CYCLE id SET looped USING path
    SELECT coalesce(array_agg(DISTINCT id), '{}') FROM below WHERE NOT looped
$$;

-- The users an actor reaches: NULL for a super_admin (everyone), itself and every user below it in
-- the parent chain for an admin (Wialon's sub-users), itself alone for anyone else; {0} (nobody: ids
-- start at 1) for an unknown actor, never NULL.
CREATE FUNCTION users_reached(actor bigint) RETURNS bigint[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN a.role = 'super_admin' THEN NULL
        WHEN a.role = 'admin' THEN users_below(a.id)
        ELSE ARRAY[coalesce(a.id, 0)]
    END
    FROM (SELECT NULL::bigint AS id, NULL::text AS role) missing
    LEFT JOIN users a ON a.id = actor
$$;

CREATE INDEX tokens_created_idx ON tokens (created_at DESC, id DESC);
CREATE INDEX tokens_owner_created_idx ON tokens (owner_id, created_at DESC, id DESC);
CREATE INDEX tokens_kind_created_idx ON tokens (kind, created_at DESC, id DESC);
-- The listing's name search over every kind that has a name: Zabbix's trigram index (0003) and
-- this one for Wialon's app names, OR-ed (a voucher's name is its sealed code: never searched).
CREATE INDEX tokens_wialon_name_trgm_idx ON tokens USING gin (name gin_trgm_ops) WHERE kind = 'wialon';

-- Newest first with a tiebreak for keyset paging; by event (the failed logins of the last day).
DROP INDEX audit_log_at_idx;
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_event_idx ON audit_log (event, at DESC, id DESC);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, at DESC, id DESC) WHERE subject_id IS NOT NULL;
