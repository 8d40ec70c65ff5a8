-- TokenHub's schema as the migrations leave it, in one place: what the database looks like now.
--
-- Nothing applies this file to a real database: `tokenhub migrate` runs registry/migrations/ in
-- order. tests/db/test_schema.py builds one database from the migrations and one from this file and
-- requires the two catalogs to be identical (tables, columns in order, types, defaults, constraints,
-- indexes, triggers, functions, extensions). So a migration and this file change in the same commit,
-- and this file is the schema to read. (Comments on why each thing exists live in the migrations.)

CREATE EXTENSION IF NOT EXISTS pg_trgm;  -- 0003: trigram indexes for Zabbix token.get `search`

-- The migrations' own record (registry/migrate.py creates it before the first migration).
CREATE TABLE schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Whole unix seconds of a moment (floor, as Python's int(datetime.timestamp())); inlined by the planner.
CREATE FUNCTION unix_seconds(moment timestamptz) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT floor(extract(epoch FROM moment))::bigint $$;

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL CONSTRAINT users_username_key UNIQUE,
    email         text,
    password_hash text,                       -- Argon2id; NULL: no password login
    role          text NOT NULL CONSTRAINT users_role_check
                  CHECK (role IN ('super_admin', 'admin', 'user', 'guest')),
    parent_id     bigint CONSTRAINT users_parent_fkey REFERENCES users (id) ON DELETE RESTRICT,
    status        text NOT NULL DEFAULT 'active' CONSTRAINT users_status_check
                  CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_check CHECK (length(username) BETWEEN 1 AND 100),
    CONSTRAINT users_not_own_parent CHECK (parent_id <> id)
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_parent_idx ON users (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash     bytea NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,  -- HMAC of the key
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

CREATE TABLE apps (
    app_id      text PRIMARY KEY CONSTRAINT apps_app_id_check CHECK (length(app_id) BETWEEN 1 AND 100),
    name        text NOT NULL,
    daily_quota integer NOT NULL DEFAULT 100 CONSTRAINT apps_daily_quota_check CHECK (daily_quota >= 0),
    access_ttl  integer NOT NULL DEFAULT 86400 CONSTRAINT apps_access_ttl_check CHECK (access_ttl > 0),
    refresh_ttl integer NOT NULL DEFAULT 1209600 CONSTRAINT apps_refresh_ttl_check CHECK (refresh_ttl > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every long-lived token, whatever the dialect.
CREATE TABLE tokens (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                 text NOT NULL CONSTRAINT tokens_kind_check
                         CHECK (kind IN ('zabbix', 'wialon', 'voucher')),
    owner_id             bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    creator_id           bigint REFERENCES users (id) ON DELETE SET NULL,
    secret_hash          bytea CONSTRAINT tokens_secret_hash_key UNIQUE,  -- HMAC of the secret
    sealed_secret        bytea,                 -- AES-GCM copy (Wialon h, vouchers); never Zabbix
    name                 text,
    description          text NOT NULL DEFAULT '',
    status               text NOT NULL DEFAULT 'active' CONSTRAINT tokens_status_check
                         CHECK (status IN ('active', 'disabled')),
    created_at           timestamptz NOT NULL DEFAULT now(),
    activates_at         timestamptz,
    expires_at           timestamptz,           -- NULL: never
    expired              boolean NOT NULL DEFAULT false,
    last_used_at         timestamptz,
    first_used_at        timestamptz,
    repaid_at            timestamptz,
    deleted_at           timestamptz,
    flags                bigint,
    items                bigint[],
    params               jsonb,
    mac                  macaddr,
    multi_use            boolean,
    lifetime_s           integer CONSTRAINT tokens_lifetime_check CHECK (lifetime_s >= 0),
    external_ref         text,
    external_ref_numeric boolean NOT NULL DEFAULT false,  -- 0005: a voucher u_id given as a number
    CONSTRAINT tokens_voucher_shape_check CHECK (
        kind <> 'voucher'
        OR (secret_hash IS NOT NULL AND sealed_secret IS NOT NULL AND multi_use IS NOT NULL
            AND lifetime_s IS NOT NULL)
    )
);
CREATE UNIQUE INDEX tokens_zabbix_owner_name_key ON tokens (owner_id, name) WHERE kind = 'zabbix';
CREATE INDEX tokens_owner_kind_idx ON tokens (owner_id, kind, id);
CREATE INDEX tokens_expiry_idx ON tokens (expires_at) WHERE expires_at IS NOT NULL AND NOT expired;
CREATE INDEX tokens_idle_idx ON tokens ((coalesce(last_used_at, created_at)));
CREATE INDEX tokens_deleted_idx ON tokens (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX tokens_voucher_owner_idx ON tokens (owner_id, id)
    INCLUDE (first_used_at, repaid_at, multi_use, lifetime_s)
    WHERE kind = 'voucher' AND deleted_at IS NULL;
CREATE INDEX tokens_voucher_all_idx ON tokens (id)
    INCLUDE (first_used_at, repaid_at, multi_use, lifetime_s)
    WHERE kind = 'voucher' AND deleted_at IS NULL;
CREATE INDEX tokens_voucher_ref_idx ON tokens (external_ref, owner_id, id)
    WHERE kind = 'voucher' AND deleted_at IS NULL AND external_ref IS NOT NULL;
CREATE INDEX tokens_zabbix_name_trgm_idx ON tokens USING gin (name gin_trgm_ops) WHERE kind = 'zabbix';
CREATE INDEX tokens_zabbix_description_trgm_idx ON tokens USING gin (description gin_trgm_ops)
    WHERE kind = 'zabbix';
-- 0006: the admin listing's keyset orders (everyone, some owners, one kind).
CREATE INDEX tokens_created_idx ON tokens (created_at DESC, id DESC);
CREATE INDEX tokens_owner_created_idx ON tokens (owner_id, created_at DESC, id DESC);
CREATE INDEX tokens_kind_created_idx ON tokens (kind, created_at DESC, id DESC);
CREATE INDEX tokens_wialon_name_trgm_idx ON tokens USING gin (name gin_trgm_ops) WHERE kind = 'wialon';

-- 0006: a token's status as people read it, written once.
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

-- 0006: a user and everyone below it; the users an actor reaches (NULL: everyone; {0}: nobody).
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

-- Security events, append-only: rows are added, never changed or removed (nor truncated).
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL,
    actor_id    bigint,                        -- no foreign keys: the record outlives the users
    subject_id  bigint,
    token_id    bigint,
    kind        text,
    client_addr text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);
CREATE INDEX audit_log_event_idx ON audit_log (event, at DESC, id DESC);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, at DESC, id DESC) WHERE subject_id IS NOT NULL;

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
