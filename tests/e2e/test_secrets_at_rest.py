"""After a scenario that hands out every kind of secret, none of them is found in plaintext in
Postgres, in Redis or in any service's log (DESIGN §4)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio

from tests.conftest import FreshDatabases, base_environment, run_cli
from tests.e2e.harness import Cluster, running_cluster
from tests.e2e.zabbix_client import login, rpc

pytestmark = pytest.mark.e2e


async def database_text(dsn: str) -> str:
    """Every row of every table of the public schema, as JSON text."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        parts: list[str] = []
        for table in tables:
            # Table names come from the catalog, quoted as identifiers.
            rows = await conn.fetch(f'SELECT row_to_json(t)::text AS j FROM "{table}" t')  # noqa: S608
            parts.extend(r["j"] for r in rows)
        return "\n".join(parts)
    finally:
        await conn.close()


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def redis_text(url: str, prefix: str) -> str:
    client = redis.asyncio.Redis.from_url(url)
    parts: list[str] = []
    try:
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            parts.append(_text(key))
            kind = _text(await client.type(key))
            if kind == "string":
                value = await client.get(key)
                parts.append(_text(value or b""))
            elif kind == "hash":
                parts.extend(f"{k!r}={v!r}" for k, v in (await client.hgetall(key)).items())
            elif kind == "set":
                parts.extend(repr(m) for m in await client.smembers(key))
            elif kind == "zset":
                parts.extend(repr(m) for m in await client.zrange(key, 0, -1))
            elif kind == "list":
                parts.extend(repr(m) for m in await client.lrange(key, 0, -1))
    finally:
        await client.aclose()
    return "\n".join(parts)


@pytest.fixture
def scanned(
    fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str, tmp_path: Path
) -> Iterator[tuple[Cluster, dict[str, str], str]]:
    """A database and Redis prefix of the test's own, so the scan reads exactly this scenario."""
    dsn = fresh_databases.dsn(fresh_databases.name())
    env = base_environment(dsn, redis_server, f"{redis_prefix}scan-{secrets.token_hex(3)}:")
    assert run_cli(["migrate"], env).returncode == 0
    with running_cluster(env, tmp_path) as cluster:
        yield cluster, env, dsn


async def test_no_secret_is_stored_or_logged_in_plaintext(
    scanned: tuple[Cluster, dict[str, str], str], http: aiohttp.ClientSession
) -> None:
    cluster, environment, database_url = scanned
    handed_out: dict[str, str] = {}
    base = cluster.gateway_url

    # A user with a password and an e-mail, an app, an operator key.
    name, password = f"secret-{secrets.token_hex(4)}", f"Pw-{secrets.token_hex(10)}"
    email = f"{name}@example.com"
    add = run_cli(
        ["users", "add", name, "--role", "admin", "--email", email, "--password-stdin"], environment, password
    )
    assert add.returncode == 0, add.stderr
    handed_out["password"] = password
    app_id = f"app-{secrets.token_hex(4)}"
    assert run_cli(["apps", "add", app_id], environment).returncode == 0
    handed_out["api key"] = run_cli(["users", "api-key", name], environment).stdout.strip()

    # Zabbix: a session and an API token, used.
    session = await login(http, base, name, password)
    handed_out["zabbix session"] = session
    created = await rpc(http, base, "token.create", {"name": "scan"}, auth=session)
    token_id = created["result"]["tokenids"][0]
    api_token = (await rpc(http, base, "token.generate", [token_id], auth=session))["result"][0]["token"]
    handed_out["zabbix API token"] = api_token
    assert "result" in await rpc(http, base, "token.get", {"output": ["tokenid"]}, auth=api_token)

    # Hotspot: vouchers created, one used.
    body = {
        "api_token": handed_out["api key"],
        "method": "createtokens",
        "parameters": {"count": 3, "multiple": 0, "lifetime": 60},
    }
    async with http.post(base + "/hotspot/api", json=body) as r:
        vouchers = [v["token"] for v in (await r.json())["data"].values()]
    assert len(vouchers) == 3
    use = {
        "api_token": handed_out["api key"],
        "method": "usetoken",
        "parameters": {"token": vouchers[0], "mac": "02:00:00:00:00:01"},
    }
    async with http.post(base + "/hotspot/api", json=use) as r:
        assert r.status == 200, await r.text()
    handed_out.update({f"voucher {i}": code for i, code in enumerate(vouchers)})

    # ChatApp: a pair, checked and refreshed.
    async with http.post(
        base + "/v1/tokens", json={"email": email, "password": password, "appId": app_id}
    ) as r:
        pair = (await r.json())["data"]
    async with http.get(base + "/v1/tokens/check", headers={"Authorization": pair["accessToken"]}) as r:
        assert r.status == 200
    async with http.post(base + "/v1/tokens/refresh", headers={"Refresh": pair["refreshToken"]}) as r:
        newer = (await r.json())["data"]
    handed_out.update(
        access=pair["accessToken"],
        refresh=pair["refreshToken"],
        access2=newer["accessToken"],
        refresh2=newer["refreshToken"],
    )

    env = cluster["issuer"].env
    stored = "\n".join(
        [
            await database_text(database_url),
            await redis_text(env["REDIS_URL"], env["TOKENHUB_REDIS_PREFIX"]),
            cluster.logs(),
        ]
    )
    leaked = [what for what, secret in handed_out.items() if secret in stored]
    assert not leaked, f"found in plaintext: {leaked}"
    # The scan is not vacuous: the things that may be stored are there.
    assert name in stored
    assert app_id in stored
