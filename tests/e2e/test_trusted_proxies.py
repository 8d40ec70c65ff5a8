"""Behind a reverse proxy (issue 13, item 6): with TOKENHUB_TRUSTED_PROXIES naming it, the gateway
takes each client's address from X-Forwarded-For, so 30 bad logins of one client behind the proxy
block that client, not everyone behind it; a caller that is no trusted proxy cannot pick an address
by writing the header itself."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.e2e.harness import Cluster, running_cluster
from tests.e2e.zabbix_client import rpc

PROXY = "127.77.0.1"
LOGIN_FAILED = "Incorrect user name or password or account is temporarily blocked."


@pytest.fixture
def proxied(environment: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    env = dict(
        environment,
        TOKENHUB_TRUSTED_PROXIES=f"{PROXY}, 10.0.0.0/8",
        TOKENHUB_REDIS_PREFIX=f"{environment['TOKENHUB_REDIS_PREFIX']}{secrets.token_hex(3)}:",
    )
    with running_cluster(env, tmp_path) as cluster:
        yield cluster


@pytest.fixture
async def from_proxy() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=(PROXY, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def login(
    http: aiohttp.ClientSession, url: str, name: str, password: str, client: str
) -> dict[str, Any]:
    # As nginx writes it: what the client sent, then the address the proxy saw.
    headers = {"X-Forwarded-For": f"198.51.100.99, {client}"}
    return await rpc(http, url, "user.login", {"username": name, "password": password}, headers=headers)


async def audited_addresses(database_url: str, login_name: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT client_addr FROM audit_log"
            " WHERE event = 'login_failed' AND details->>'login' = $1",
            login_name,
        )
    finally:
        await conn.close()
    return {row["client_addr"] for row in rows}


async def test_each_client_behind_a_trusted_proxy_has_its_own_throttle_and_audit_address(
    proxied: Cluster, from_proxy: aiohttp.ClientSession, database_url: str
) -> None:
    url = proxied.gateway_url
    guesser, neighbour = "203.0.113.1", "203.0.113.2"
    name = f"nobody-{secrets.token_hex(4)}"
    for i in range(30):  # TOKENHUB_ADDRESS_FAILURES_MAX, each for another account
        reply = await login(from_proxy, url, f"{name}-{i}", "wrong", guesser)
        assert reply["error"]["data"] == LOGIN_FAILED
    # The guesser is blocked: even Admin's right password is refused from there.
    assert "error" in await login(from_proxy, url, "Admin", ADMIN_PASSWORD, guesser)
    # Its neighbour behind the same proxy is not.
    assert isinstance((await login(from_proxy, url, "Admin", ADMIN_PASSWORD, neighbour))["result"], str)
    assert await audited_addresses(database_url, f"{name}-0") == {guesser}


async def test_a_caller_that_is_no_trusted_proxy_cannot_choose_its_address(
    proxied: Cluster, database_url: str
) -> None:
    direct_address = "127.88.0.5"
    connector = aiohttp.TCPConnector(local_addr=(direct_address, 0))
    name = f"nobody-{secrets.token_hex(4)}"
    async with aiohttp.ClientSession(connector=connector) as direct:
        reply = await login(direct, proxied.gateway_url, name, "wrong", "203.0.113.50")
    assert reply["error"]["data"] == LOGIN_FAILED
    assert await audited_addresses(database_url, name) == {direct_address}
