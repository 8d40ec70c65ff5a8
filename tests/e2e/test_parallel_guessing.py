"""Guesses sent in parallel cannot outrun the throttles (issue 13, item 2), through the real gateway.

Every password check the registry makes is a `login_failed` or `login_succeeded` row in the audit
log, so counting those rows counts the checks. Each test guesses from a loopback address of its own,
against accounts of its own, so its failures block nobody else.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp
import asyncpg
import orjson

from tests.conftest import run_cli
from tests.e2e.harness import Cluster
from tests.e2e.hotspot_client import hotspot_client, new_operator, random_loopback, random_mac
from tests.e2e.wialon_client import new_user, wialon_client

LOGIN_FAILED = "Incorrect user name or password or account is temporarily blocked."


def loopback_http(address: str, limit: int = 200) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=limit)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


async def events(
    database_url: str, event: str, *, subject_id: int | None = None, addr: str | None = None
) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event = $1"
            " AND ($2::bigint IS NULL OR subject_id = $2) AND ($3::text IS NULL OR client_addr = $3)",
            event,
            subject_id,
            addr,
        )
        return count
    finally:
        await conn.close()


def add_user(environment: dict[str, str], password: str, *extra: str) -> tuple[int, str]:
    name = f"guessed-{secrets.token_hex(4)}"
    result = run_cli(
        ["users", "add", name, "--role", "user", "--password-stdin", *extra], environment, password
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout), name


async def zabbix(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(
        url + "/api_jsonrpc.php", data=orjson.dumps(body), headers={"Content-Type": "application/json-rpc"}
    ) as r:
        assert r.status == 200
        return await r.json(content_type=None)


def login_call(name: str, password: str, call_id: int = 1) -> dict[str, Any]:
    params = {"username": name, "password": password}
    return {"jsonrpc": "2.0", "method": "user.login", "params": params, "id": call_id}


async def test_200_parallel_wrong_zabbix_passwords_cost_exactly_5_password_checks(
    cluster: Cluster, environment: dict[str, str], database_url: str
) -> None:
    user_id, name = add_user(environment, "Right-pass-123")
    async with loopback_http(random_loopback()) as http:
        replies = await asyncio.gather(
            *(zabbix(http, cluster.gateway_url, login_call(name, f"wrong-{i}")) for i in range(200))
        )
        # Every reply is Zabbix's one login error; nothing tells the blocked ones apart.
        assert {r["error"]["data"] for r in replies} == {LOGIN_FAILED}
        assert await events(database_url, "login_failed", subject_id=user_id) == 5
        # The right password, now: blocked for the rest of the window, and not even checked.
        right = await zabbix(http, cluster.gateway_url, login_call(name, "Right-pass-123"))
        assert right["error"]["data"] == LOGIN_FAILED
    assert await events(database_url, "login_failed", subject_id=user_id) == 5
    assert await events(database_url, "login_succeeded", subject_id=user_id) == 0


async def test_a_batch_of_100_logins_counts_against_the_same_throttle(
    cluster: Cluster, environment: dict[str, str], database_url: str
) -> None:
    user_id, name = add_user(environment, "Right-pass-123")
    batch = [login_call(name, f"wrong-{i}", i) for i in range(100)]
    async with loopback_http(random_loopback()) as http:
        replies = await zabbix(http, cluster.gateway_url, batch)
    assert len(replies) == 100
    assert {r["error"]["data"] for r in replies} == {LOGIN_FAILED}
    assert await events(database_url, "login_failed", subject_id=user_id) == 5
    assert await events(database_url, "login_blocked") >= 1


async def test_right_passwords_in_parallel_are_all_let_in(
    cluster: Cluster, environment: dict[str, str], database_url: str
) -> None:
    """The throttle queues parallel checks of one account; it never refuses a right password."""
    user_id, name = add_user(environment, "Right-pass-123")
    async with loopback_http(random_loopback()) as http:
        replies = await asyncio.gather(
            *(zabbix(http, cluster.gateway_url, login_call(name, "Right-pass-123")) for _ in range(30))
        )
    assert all(isinstance(r.get("result"), str) for r in replies), replies
    assert await events(database_url, "login_succeeded", subject_id=user_id) == 30


async def test_200_parallel_wrong_wialon_passwords_cost_exactly_5_password_checks(
    cluster: Cluster, environment: dict[str, str], database_url: str
) -> None:
    user = new_user(environment, "guessed")
    async with wialon_client(cluster.gateway_url) as wialon:
        codes = await asyncio.gather(
            *(wialon.error("core/login", {"user": user.name, "password": f"wrong-{i}"}) for i in range(200))
        )
    assert await events(database_url, "login_failed", subject_id=user.id) == 5
    # 8 for the five checked, 1003 (too many requests) for the rest.
    assert (codes.count(8), codes.count(1003)) == (5, 195)


async def test_200_parallel_wrong_chatapp_passwords_cost_exactly_5_password_checks(
    cluster: Cluster, environment: dict[str, str], database_url: str
) -> None:
    email = f"guessed-{secrets.token_hex(4)}@example.com"
    user_id, _ = add_user(environment, "Right-pass-123", "--email", email)
    app_id = f"guessed-{secrets.token_hex(3)}"
    assert run_cli(["apps", "add", app_id], environment).returncode == 0
    body = {"email": email, "appId": app_id}
    async with loopback_http(random_loopback()) as http:

        async def make(password: str) -> int:
            url = cluster.gateway_url + "/v1/tokens"
            async with http.post(url, json={**body, "password": password}) as r:
                return r.status

        statuses = await asyncio.gather(*(make(f"wrong-{i}") for i in range(200)))
    assert await events(database_url, "login_failed", subject_id=user_id) == 5
    assert sorted(statuses) == [401] * 5 + [429] * 195


async def test_parallel_unknown_wialon_tokens_cost_at_most_the_address_limit(
    cluster: Cluster, database_url: str
) -> None:
    address = random_loopback()
    guesses = [secrets.token_hex(36) for _ in range(100)]
    async with wialon_client(cluster.gateway_url, address) as wialon:
        codes = await asyncio.gather(*(wialon.error("token/login", {"token": g}) for g in guesses))
    assert await events(database_url, "login_failed", addr=address) == 30  # TOKENHUB_ADDRESS_FAILURES_MAX
    assert codes.count(7) == 30
    assert codes.count(1003) == 70
    assert await events(database_url, "login_blocked", addr=address) == 1


async def test_parallel_voucher_guesses_cost_at_most_the_address_limit(
    cluster: Cluster, environment: dict[str, str]
) -> None:
    """From one address, each guess from a device of its own: the address's 30 failures are the
    bound, however many arrive at once."""
    operator_key = new_operator(environment).api_token
    async with hotspot_client(cluster.gateway_url) as hotspot:
        guesses = [f"{secrets.randbelow(9 * 10**9) + 10**9}" for _ in range(60)]
        replies = await asyncio.gather(
            *(
                hotspot.call(operator_key, "usetoken", {"token": code, "mac": random_mac()})
                for code in guesses
            )
        )
    assert sorted(r.error_code or "" for r in replies) == ["not_found"] * 30 + ["too_many_attempts"] * 30
