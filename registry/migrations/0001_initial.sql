-- TokenHub's first schema: users, apps, every long-lived token, and the audit log (DESIGN §3).
-- Migrations are forward-only; each runs once, in its own transaction (registry/migrate.py).

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL CONSTRAINT users_username_key UNIQUE,
    email         text,
    password_hash text,                       -- Argon2id, see shared/secrets.py; NULL: no password login
    role          text NOT NULL CONSTRAINT users_role_check
                  CHECK (role IN ('super_admin', 'admin', 'user', 'guest')),
    -- Wialon sub-users: a user manages the users below it in this chain.
    parent_id     bigint CONSTRAINT users_parent_fkey REFERENCES users (id) ON DELETE RESTRICT,
    status        text NOT NULL DEFAULT 'active' CONSTRAINT users_status_check
                  CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_check CHECK (length(username) BETWEEN 1 AND 100),
    CONSTRAINT users_not_own_parent CHECK (parent_id <> id)
);
-- ChatApp logs in by e-mail, which is case-insensitive.
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_parent_idx ON users (parent_id) WHERE parent_id IS NOT NULL;

-- Hotspot operators authenticate with API keys; only their HMAC is kept.
CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash     bytea NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- ChatApp applications: each has its own daily quota and token lifetimes.
CREATE TABLE apps (
    app_id      text PRIMARY KEY CONSTRAINT apps_app_id_check CHECK (length(app_id) BETWEEN 1 AND 100),
    name        text NOT NULL,
    daily_quota integer NOT NULL DEFAULT 100 CONSTRAINT apps_daily_quota_check CHECK (daily_quota >= 0),
    access_ttl  integer NOT NULL DEFAULT 86400 CONSTRAINT apps_access_ttl_check CHECK (access_ttl > 0),
    refresh_ttl integer NOT NULL DEFAULT 1209600 CONSTRAINT apps_refresh_ttl_check CHECK (refresh_ttl > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every long-lived token, whatever the dialect: one lifecycle, the kind's own attributes beside it.
CREATE TABLE tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CONSTRAINT tokens_kind_check CHECK (kind IN ('zabbix', 'wialon', 'voucher')),
    owner_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    creator_id    bigint REFERENCES users (id) ON DELETE SET NULL,
    -- HMAC-SHA256 of the secret under the server pepper; NULL until a secret exists
    -- (a Zabbix token has none between token.create and token.generate).
    secret_hash   bytea CONSTRAINT tokens_secret_hash_key UNIQUE,
    -- AES-GCM copy for dialects that show the secret again (Wialon h, vouchers); never for Zabbix.
    sealed_secret bytea,
    name          text,                        -- Zabbix name, Wialon app name
    description   text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'active' CONSTRAINT tokens_status_check
                  CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    activates_at  timestamptz,                 -- Wialon at: no login before it
    expires_at    timestamptz,                 -- NULL: never (Zabbix expires_at 0, Wialon dur 0)
    expired       boolean NOT NULL DEFAULT false,  -- set by the sweeper once expires_at has passed
    last_used_at  timestamptz,                 -- Zabbix lastaccess, Wialon ll
    first_used_at timestamptz,                 -- voucher used_at
    repaid_at     timestamptz,                 -- voucher annulled
    deleted_at    timestamptz,                 -- voucher soft delete (purged later by the sweeper)
    flags         bigint,                      -- Wialon fl
    items         bigint[],                    -- Wialon items
    params        jsonb,                       -- Wialon p
    mac           macaddr,                     -- voucher: bound at first use
    multi_use     boolean,                     -- voucher: multiple
    lifetime_s    integer CONSTRAINT tokens_lifetime_check CHECK (lifetime_s >= 0),  -- voucher validity, Wialon dur
    external_ref  text                         -- voucher u_id
);
-- Zabbix: a user's token names are unique ('API token "x" already exists for userid "n".').
CREATE UNIQUE INDEX tokens_zabbix_owner_name_key ON tokens (owner_id, name) WHERE kind = 'zabbix';
-- Every dialect lists a user's tokens of its own kind.
CREATE INDEX tokens_owner_kind_idx ON tokens (owner_id, kind, id);
-- The sweeper's work lists stay small: only rows that still have something to happen to them.
CREATE INDEX tokens_expiry_idx ON tokens (expires_at) WHERE expires_at IS NOT NULL AND NOT expired;
CREATE INDEX tokens_idle_idx ON tokens ((coalesce(last_used_at, created_at)));
CREATE INDEX tokens_deleted_idx ON tokens (deleted_at) WHERE deleted_at IS NOT NULL;

-- Security events, append-only: rows are added, never changed or removed.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL,                 -- created, updated, generated, deleted, login_failed, ...
    actor_id    bigint,                        -- no foreign keys: the record outlives the users
    subject_id  bigint,
    token_id    bigint,
    kind        text,
    client_addr text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
