"""The services connect as a role that owns nothing (issue 13, item 4): `tokenhub migrate` with
TOKENHUB_SERVICE_DB_USER creates it and grants it exactly what the services need; every dialect
works through it, and it can neither rewrite nor empty the audit log, nor change the schema."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from tests.conftest import FreshDatabases, base_environment, run_cli
from tests.e2e.harness import Cluster, running_cluster
from tests.e2e.hotspot_client import hotspot_client
from tests.e2e.zabbix_client import login, rpc

PASSWORD = "Service-pass-1"


def as_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture(scope="module")
async def world(
    fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str
) -> AsyncIterator[tuple[str, str, str]]:
    """(owner's DSN, service role's DSN, role name) of a database of this module's own."""
    owner_dsn = fresh_databases.dsn(fresh_databases.name())
    role = f"tokenhub_svc_{secrets.token_hex(4)}"
    env = base_environment(owner_dsn, redis_server, redis_prefix)
    env.update(TOKENHUB_SERVICE_DB_USER=role, TOKENHUB_SERVICE_DB_PASSWORD=PASSWORD)
    first = run_cli(["migrate"], env)
    assert first.returncode == 0, first.stderr
    assert f"created role {role}" in first.stderr
    again = run_cli(["migrate"], env)  # idempotent: the role is updated, not created twice
    assert again.returncode == 0, again.stderr
    assert f"updated role {role}" in again.stderr
    yield owner_dsn, as_user(owner_dsn, role, PASSWORD), role
    # Roles belong to the whole server: this one goes, with everything granted to it.
    conn = await asyncpg.connect(owner_dsn)
    try:
        drop = "SELECT format('DROP OWNED BY %I; DROP ROLE %I', $1::text, $1::text)"
        await conn.execute(await conn.fetchval(drop, role))
    finally:
        await conn.close()


async def test_the_service_role_may_append_to_the_audit_log_and_nothing_more(
    world: tuple[str, str, str],
) -> None:
    _, service_dsn, _ = world
    conn = await asyncpg.connect(service_dsn)
    try:
        await conn.execute("INSERT INTO audit_log (event) VALUES ('service_probe')")
        for statement in (
            "UPDATE audit_log SET event = 'x'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            "DROP TRIGGER audit_log_no_truncate ON audit_log",
            "DROP TABLE audit_log",
            "TRUNCATE tokens",
            "CREATE TABLE mine (id int)",
            "INSERT INTO schema_migrations (version) VALUES ('9999_mine')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE event = 'service_probe'") == 1
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def services(
    world: tuple[str, str, str],
    redis_server: str,
    redis_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    _, service_dsn, _ = world
    env = base_environment(service_dsn, redis_server, f"{redis_prefix}svc:")
    with running_cluster(env, tmp_path_factory.mktemp("service-role")) as cluster:
        yield cluster


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_every_dialect_works_through_the_service_role(
    services: Cluster,
    world: tuple[str, str, str],
    redis_server: str,
    redis_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    owner_dsn, service_dsn, _ = world
    url = services.gateway_url
    session = await login(http, url, "Admin", "zabbix")
    created = await rpc(http, url, "token.create", {"name": "through the role"}, auth=session)
    token_id = created["result"]["tokenids"][0]
    assert "result" in await rpc(http, url, "token.generate", [token_id], auth=session)
    assert "result" in await rpc(http, url, "token.delete", [token_id], auth=session)
    # The operator's commands work through it too.
    env = base_environment(service_dsn, redis_server, f"{redis_prefix}svc:")
    key = run_cli(["users", "api-key", "Admin"], env)
    assert key.returncode == 0, key.stderr
    async with hotspot_client(url) as hotspot:
        codes = await hotspot.create(key.stdout.strip(), 3)
        assert (await hotspot.call(key.stdout.strip(), "deletetokens", {"tokens": codes})).status == 200
    # And the sweeper's pass.
    sweeper = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sweeper", "--once", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(sweeper.communicate(), timeout=60)
    assert sweeper.returncode == 0, stderr.decode()
    conn = await asyncpg.connect(owner_dsn)
    try:
        events = {row["event"] for row in await conn.fetch("SELECT event FROM audit_log")}
    finally:
        await conn.close()
    assert {"login_succeeded", "created", "generated", "deleted", "api_key_created"} <= events


def test_the_migration_names_a_role_it_may_not_create(
    fresh_databases: FreshDatabases, redis_server: str, world: tuple[str, str, str]
) -> None:
    """Run by a user without CREATEROLE (here: the service role itself), migrate says what is wrong."""
    _, service_dsn, _ = world
    env = base_environment(service_dsn, redis_server, "unused:")
    env["TOKENHUB_SERVICE_DB_USER"] = f"another_{secrets.token_hex(3)}"
    result = run_cli(["migrate"], env)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "tokenhub: error:" in result.stderr
