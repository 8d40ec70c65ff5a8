"""`tokenhub migrate` against fresh databases: creation, idempotence, concurrency, the schema."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import asyncpg
import pytest

from registry import migrate as migrations
from registry.store import _UNIQUE_MEANING
from shared.secrets import verify_password
from tests.conftest import ADMIN_PASSWORD, TOKENHUB, FreshDatabases, base_environment, run_cli

# What describes a schema: every column, constraint, index and trigger, as Postgres reports them.
CATALOG = """
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable
       || ' default=' || coalesce(column_default, '-')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass FROM pg_trigger WHERE NOT tgisinternal
ORDER BY 1
"""


async def catalog(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [row[0] for row in await conn.fetch(CATALOG)]
    finally:
        await conn.close()


async def fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def migrate(dsn: str, redis_server: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = base_environment(dsn, redis_server, "unused:")
    env.update(extra_env)
    return run_cli(["migrate"], env)


async def test_first_migrate_creates_database_schema_and_admin(
    fresh_databases: FreshDatabases, redis_server: str
) -> None:
    dsn = fresh_databases.dsn(fresh_databases.name())
    first = migrate(dsn, redis_server)
    assert first.returncode == 0, first.stderr
    assert "created database" in first.stderr
    assert "applied 0001_initial" in first.stderr

    rows = await fetch(dsn, "SELECT id, username, role, password_hash FROM users")
    assert [(r["id"], r["username"], r["role"]) for r in rows] == [(1, "Admin", "super_admin")]
    assert verify_password(ADMIN_PASSWORD, rows[0]["password_hash"])
    assert ADMIN_PASSWORD not in rows[0]["password_hash"]


async def test_second_migrate_is_a_no_op(fresh_databases: FreshDatabases, redis_server: str) -> None:
    dsn = fresh_databases.dsn(fresh_databases.name())
    assert migrate(dsn, redis_server).returncode == 0
    before = await catalog(dsn)
    applied_before = await fetch(dsn, "SELECT version, applied_at FROM schema_migrations")
    users_before = await fetch(dsn, "SELECT * FROM users")

    second = migrate(dsn, redis_server, TOKENHUB_ADMIN_PASSWORD="another-password")
    assert second.returncode == 0, second.stderr
    assert "schema is up to date" in second.stderr
    assert "created" not in second.stderr
    assert await catalog(dsn) == before
    assert await fetch(dsn, "SELECT version, applied_at FROM schema_migrations") == applied_before
    assert await fetch(dsn, "SELECT * FROM users") == users_before


async def test_every_migration_is_recorded(database_url: str) -> None:
    rows = await fetch(database_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == [m.version for m in migrations.available()]
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+", r["version"]) for r in rows)


@pytest.mark.parametrize("admin_password", [None, ""])
async def test_generated_admin_password_is_printed_once_and_works(
    fresh_databases: FreshDatabases, redis_server: str, admin_password: str | None
) -> None:
    dsn = fresh_databases.dsn(fresh_databases.name())
    env = base_environment(dsn, redis_server, "unused:")
    if admin_password is None:
        del env["TOKENHUB_ADMIN_PASSWORD"]
    else:
        env["TOKENHUB_ADMIN_PASSWORD"] = admin_password  # empty counts as unset
    first = run_cli(["migrate"], env)
    assert first.returncode == 0, first.stderr
    match = re.search(r"created super admin 'Admin' with password: (\S+)", first.stderr)
    assert match is not None, first.stderr
    rows = await fetch(dsn, "SELECT password_hash FROM users WHERE id = 1")
    assert verify_password(match.group(1), rows[0]["password_hash"])
    second = run_cli(["migrate"], env)
    assert "password" not in second.stderr


async def test_concurrent_migrations_apply_once_and_create_one_admin(
    fresh_databases: FreshDatabases, redis_server: str
) -> None:
    dsn = fresh_databases.dsn(fresh_databases.name())
    await migrations.ensure_database(dsn)  # racing CREATE DATABASE is the CLI's caller's business
    env = base_environment(dsn, redis_server, "unused:")
    procs = [
        await asyncio.create_subprocess_exec(TOKENHUB, "migrate", env=env, stderr=asyncio.subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [(await p.communicate())[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert sum("applied 0001_initial" in out for out in outputs) == 1
    assert (await fetch(dsn, "SELECT count(*) AS n FROM users"))[0]["n"] == 1


async def test_schema_has_what_the_code_relies_on(database_url: str) -> None:
    described = "\n".join(await catalog(database_url))
    for table, key in (
        ("users", "id"),
        ("api_keys", "id"),
        ("apps", "app_id"),
        ("tokens", "id"),
        ("audit_log", "id"),
    ):
        assert f"constraint {table} {table}_pkey PRIMARY KEY ({key})" in described
    # The error translation in registry/store.py names these constraints; a rename must fail here.
    for constraint in _UNIQUE_MEANING:
        assert re.search(rf"(constraint \S+|index) {constraint} ", described), constraint
    # Every long-lived kind shares the one tokens table.
    assert "CHECK ((kind = ANY (ARRAY['zabbix'::text, 'wialon'::text, 'voucher'::text])))" in described
    # Secrets are only stored hashed or sealed: no column could hold a plaintext token.
    token_columns = re.findall(r"column tokens\.(\w+) ", described)
    assert "secret_hash" in token_columns
    assert "sealed_secret" in token_columns
    assert not {"secret", "token", "h"} & set(token_columns)


async def test_audit_log_is_append_only(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO audit_log (event) VALUES ('test_event')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE audit_log SET event = 'changed' WHERE event = 'test_event'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM audit_log WHERE event = 'test_event'")
        # TRUNCATE fires no row trigger; a statement trigger refuses it, even to the owner.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("TRUNCATE audit_log")
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE event = 'test_event'") == 1
    finally:
        await conn.close()


def test_migration_files_are_forward_only_sql() -> None:
    files = sorted(Path(migrations.MIGRATIONS_DIR).glob("*.sql"))
    assert files, "no migrations found"
    for number, path in enumerate(files, start=1):
        assert path.name.startswith(f"{number:04d}_"), f"{path.name}: migrations are numbered without gaps"
        assert not re.search(r"\bDROP\s+TABLE\b", path.read_text(), re.IGNORECASE)


async def test_ensure_database_is_idempotent(fresh_databases: FreshDatabases) -> None:
    dsn = fresh_databases.dsn(fresh_databases.name())
    created = await asyncio.gather(migrations.ensure_database(dsn), migrations.ensure_database(dsn))
    assert sorted(created) == [False, True]
    assert await migrations.ensure_database(dsn) is False
