"""Every request's cost is bounded (issue 13, item 1): for each dialect, the largest body of its most
expensive shape is answered — done or refused in the dialect's words — while the gateway keeps
answering /healthz within a second. The bounds themselves are listed in SECURITY.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import asyncpg
import orjson
import pytest

from tests.conftest import run_cli
from tests.e2e.harness import Cluster
from tests.e2e.hotspot_client import hotspot_client, random_loopback
from tests.e2e.wialon_client import new_user, wialon_client
from tests.e2e.zabbix_client import login

MAX_BODY = 1 << 20  # TOKENHUB_MAX_BODY_BYTES
HEALTHZ_BOUND_S = 1.0
ZABBIX = {"Content-Type": "application/json-rpc"}
TRY_AGAIN = "Service temporarily unavailable, try again later."
T = TypeVar("T")


@dataclass
class Watch:
    slowest: float = 0.0
    probes: int = 0


@contextlib.asynccontextmanager
async def healthz_watch(url: str) -> AsyncIterator[Watch]:
    """Probe the gateway's /healthz every 20 ms while the block runs; the slowest answer is kept."""
    watch = Watch()
    stop = asyncio.Event()

    async def probe() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            while not stop.is_set():
                started = time.monotonic()
                async with http.get(url + "/healthz") as r:
                    assert r.status == 200
                watch.slowest = max(watch.slowest, time.monotonic() - started)
                watch.probes += 1
                await asyncio.sleep(0.02)

    task = asyncio.create_task(probe())
    try:
        yield watch
    finally:
        stop.set()
        await task


async def watched(url: str, what: str, work: Awaitable[T]) -> T:
    async with healthz_watch(url) as watch:
        started = time.monotonic()
        result = await work
        took = time.monotonic() - started
    slowest_ms = watch.slowest * 1000
    print(f"{what}: answered in {took:.2f} s; /healthz slowest {slowest_ms:.0f} ms ({watch.probes} probes)")
    assert watch.probes > 0
    assert watch.slowest < HEALTHZ_BOUND_S, f"{what}: /healthz took {watch.slowest:.2f} s"
    return result


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    assert len(body) <= MAX_BODY, len(body)
    async with http.post(url, data=io.BytesIO(body), headers=headers) as r:
        return r.status, await r.json(content_type=None)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=(random_loopback(), 0))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as s:
        yield s


def fill(prefix: bytes, item: bytes, suffix: bytes, *, most: int = MAX_BODY) -> tuple[bytes, int]:
    """prefix + item, item, ... + suffix: as many items as fit in `most` bytes."""
    count = (most - len(prefix) - len(suffix)) // (len(item) + 1)
    return prefix + b",".join([item] * count) + suffix, count


# --- Zabbix --------------------------------------------------------------------------------------


async def test_zabbix_140000_ids_are_refused_at_once_and_the_gateway_stays_responsive(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """The shape of the report: token.delete with ~140,000 ids in ~870 KB. Refused before any id is
    looked at (Zabbix's own "value is too long"), in well under a second."""
    session = await login(http, cluster.gateway_url, "Admin", "zabbix")
    ids = list(range(1, 140_001))
    body = orjson.dumps({"jsonrpc": "2.0", "method": "token.delete", "params": ids, "auth": session, "id": 1})
    url = cluster.gateway_url + "/api_jsonrpc.php"
    started = time.monotonic()
    status, reply = await watched(cluster.gateway_url, "token.delete x140000", post(http, url, body, ZABBIX))
    assert time.monotonic() - started < 1.0
    assert status == 200
    assert reply["error"] == {
        "code": -32602,
        "message": "Invalid params.",
        "data": 'Invalid parameter "/": value is too long.',
    }


async def test_zabbix_a_full_body_of_token_creates_is_done_within_the_bounds(
    cluster: Cluster, http: aiohttp.ClientSession, environment: dict[str, str], database_url: str
) -> None:
    """The most expensive accepted Zabbix request: a batch of token.create calls of 10,000 tokens
    each, filling the largest body. Each call is done, or (on a machine too loaded to finish one
    within the backend timeout) answered "try again"; either way all of its tokens or none of them
    are written, and the gateway answers /healthz throughout."""
    name = f"bulk-{secrets.token_hex(4)}"
    added = run_cli(["users", "add", name, "--role", "user", "--password-stdin"], environment, "Bulk-pass-1")
    assert added.returncode == 0, added.stderr
    session = await login(http, cluster.gateway_url, name, "Bulk-pass-1")
    calls: list[dict[str, Any]] = []
    size = 0
    while True:
        tokens = [{"name": f"t{len(calls) * 10_000 + i}"} for i in range(10_000)]
        call = {
            "jsonrpc": "2.0",
            "method": "token.create",
            "params": tokens,
            "auth": session,
            "id": len(calls),
        }
        encoded = len(orjson.dumps(call)) + 1
        if size + encoded + 2 > MAX_BODY:
            break
        calls.append(call)
        size += encoded
    url = cluster.gateway_url + "/api_jsonrpc.php"
    status, replies = await watched(
        cluster.gateway_url,
        f"token.create {len(calls)} x 10,000",
        post(http, url, orjson.dumps(calls), ZABBIX),
    )
    assert status == 200
    assert len(calls) >= 3
    done = [r for r in replies if "result" in r]
    assert all(len(r["result"]["tokenids"]) == 10_000 for r in done)
    assert all(r["error"]["data"] == TRY_AGAIN for r in replies if "result" not in r), replies
    # A call the gateway stopped waiting for may still commit: wait until no insert of tokens runs
    # (a count that merely stays put for a while may be one still waiting on its commit).
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 60
        while await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state <> 'idle' AND query ILIKE '%INSERT INTO tokens%'"
        ):
            assert time.monotonic() < deadline, "an insert of tokens still runs after 60 s"
            await asyncio.sleep(0.2)
        count = await conn.fetchval(
            "SELECT count(*) FROM tokens t JOIN users u ON u.id = t.owner_id WHERE u.username = $1", name
        )
    finally:
        await conn.close()
    assert count % 10_000 == 0
    assert count >= 10_000 * len(done)


async def test_zabbix_a_batch_of_logins_costs_at_most_the_address_limit_of_password_checks(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """100 user.login calls for 100 accounts in one batch: at most 30 (the address's limit) are
    checked; the rest are refused by the throttle."""
    calls = [
        {
            "jsonrpc": "2.0",
            "method": "user.login",
            "params": {"username": f"nobody-{secrets.token_hex(4)}", "password": "x" * 255},
            "id": i,
        }
        for i in range(100)
    ]
    url = cluster.gateway_url + "/api_jsonrpc.php"
    status, replies = await watched(
        cluster.gateway_url, "user.login x100 (batch)", post(http, url, orjson.dumps(calls), ZABBIX)
    )
    assert status == 200
    assert len(replies) == 100
    assert {r["error"]["data"] for r in replies} == {
        "Incorrect user name or password or account is temporarily blocked."
    }


async def test_zabbix_a_batch_over_100_calls_is_refused_before_any_runs(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    calls = [{"jsonrpc": "2.0", "method": "apiinfo.version", "params": [], "id": i} for i in range(101)]
    status, reply = await post(http, cluster.gateway_url + "/api_jsonrpc.php", orjson.dumps(calls), ZABBIX)
    assert status == 200
    assert reply == {
        "jsonrpc": "2.0",
        "error": {
            "code": -32600,
            "message": "Invalid request.",
            "data": "A batch may hold at most 100 requests.",
        },
        "id": None,
    }


async def test_zabbix_token_get_answers_at_most_10000_tokens(
    cluster: Cluster, http: aiohttp.ClientSession, environment: dict[str, str]
) -> None:
    """A query matching more than 10,000 tokens is refused, in Zabbix's words, rather than answered
    with a response of unbounded size; with a limit it is answered."""
    name = f"many-{secrets.token_hex(4)}"
    assert (
        run_cli(
            ["users", "add", name, "--role", "user", "--password-stdin"], environment, "Many-pass-1"
        ).returncode
        == 0
    )
    session = await login(http, cluster.gateway_url, name, "Many-pass-1")
    url = cluster.gateway_url + "/api_jsonrpc.php"
    for start in (0, 5_001):
        tokens = [{"name": f"t{start + i}"} for i in range(5_001)]
        call = {"jsonrpc": "2.0", "method": "token.create", "params": tokens, "auth": session, "id": 1}
        assert "result" in (await post(http, url, orjson.dumps(call), ZABBIX))[1]
    search = {"name": [f"t{i}" for i in range(100)], "description": [""] * 100}
    get = {
        "jsonrpc": "2.0",
        "method": "token.get",
        "params": {"output": "extend", "search": search, "searchByAny": True},
        "auth": session,
        "id": 2,
    }
    _, reply = await watched(
        cluster.gateway_url, "token.get of 10,002 tokens", post(http, url, orjson.dumps(get), ZABBIX)
    )
    assert reply["error"]["code"] == -32500
    assert reply["error"]["data"].startswith("More than 10000 API tokens match")
    get["params"] = {"output": ["tokenid"], "limit": 10_000}
    _status, reply = await post(http, url, orjson.dumps(get), ZABBIX)
    assert len(reply["result"]) == 10_000
    get["params"] = {"countOutput": True}
    assert (await post(http, url, orjson.dumps(get), ZABBIX))[1]["result"] == "10002"


# --- Wialon --------------------------------------------------------------------------------------


async def test_wialon_the_largest_token_list_stays_within_the_bounds(
    cluster: Cluster, environment: dict[str, str]
) -> None:
    """The most expensive Wialon answer: token/list of a user holding the most tokens allowed (100),
    each with 10,000 items; creating them in batches of the largest body on the way."""
    user = new_user(environment, "heavy")
    async with wialon_client(cluster.gateway_url) as wialon:
        sid = await wialon.login(user)
        items = list(range(1_000_000, 1_010_000))
        spec = {"callMode": "create", "app": "heavy", "at": 0, "dur": 0, "fl": -1, "p": "{}", "items": items}
        call = {"svc": "token/update", "params": spec}
        # As many creates as fit in the largest form body, percent-encoding and all.
        per_call = len(urlencode({"p": orjson.dumps(call)})) - 2 + len("%2C")
        per_batch = (MAX_BODY - 1024) // per_call
        created = 0
        while created < 100:
            count = min(per_batch, 100 - created)
            form = urlencode(
                {"svc": "core/batch", "sid": sid, "params": orjson.dumps({"params": [call] * count})}
            )
            assert len(form) <= MAX_BODY
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            results = await watched(
                cluster.gateway_url,
                f"core/batch of {count} token creates",
                wialon.send("POST", data=io.BytesIO(form.encode()), headers=headers),
            )
            assert all("h" in r for r in results), results[:1]
            created += count
        # The 101st is refused: the limit bounds every listing.
        assert await wialon.error("token/update", spec, sid) == 4
        listed = await watched(cluster.gateway_url, "token/list of 100 x 10,000 items", wialon.tokens(sid))
        assert len(listed) == 100
        assert all(len(t["items"]) == 10_000 for t in listed)


async def test_wialon_a_batch_of_100_logins_costs_at_most_the_address_limit(cluster: Cluster) -> None:
    calls = [
        {"svc": "core/login", "params": {"user": f"nobody-{secrets.token_hex(4)}", "password": "x" * 1024}}
        for _ in range(100)
    ]
    async with wialon_client(cluster.gateway_url) as wialon:
        results = await watched(
            cluster.gateway_url, "core/batch of 100 logins", wialon.call("core/batch", {"params": calls})
        )
    codes = [r["error"] for r in results]
    assert (codes.count(8), codes.count(1003)) == (30, 70), codes


async def test_wialon_p_nested_deeper_than_any_encoder_writes_is_error_4(
    cluster: Cluster, environment: dict[str, str]
) -> None:
    user = new_user(environment, "deep")
    async with wialon_client(cluster.gateway_url) as wialon:
        sid = await wialon.login(user)
        for depth in (65, 300, 1000):
            deep = "[" * (depth - 1) + "{}" + "]" * (depth - 1)
            params = {"callMode": "create", "app": "deep", "at": 0, "dur": 0, "fl": -1, "p": deep}
            reply = await wialon.call("token/update", params, sid)
            assert reply == {"error": 4, "reason": '"p" is nested deeper than 64 levels'}, reply
            # Given decoded rather than as a JSON string (written by hand: no encoder goes this deep).
            text = '{"callMode":"create","app":"deep","at":0,"dur":0,"fl":-1,"p":' + deep + "}"
            reply = await wialon.call("token/update", text, sid)
            assert reply == {"error": 4, "reason": '"p" is nested deeper than 64 levels'}, reply
        assert await wialon.tokens(sid) == []


# --- hotspot -------------------------------------------------------------------------------------


async def test_hotspot_the_largest_batches_stay_within_the_bounds(
    cluster: Cluster, environment: dict[str, str]
) -> None:
    name = f"hotspot-{secrets.token_hex(4)}"
    assert run_cli(["users", "add", name, "--role", "admin"], environment).returncode == 0
    key = run_cli(["users", "api-key", name], environment).stdout.strip()
    async with hotspot_client(cluster.gateway_url) as hotspot:
        created = await watched(
            cluster.gateway_url,
            "createtokens 10,000",
            hotspot.call(key, "createtokens", {"count": 10_000, "lifetime": 3600}),
        )
        assert created.status == 200
        assert len(created.items) == 10_000
        listed = await watched(
            cluster.gateway_url, "gettokens 10,000", hotspot.call(key, "gettokens", {"limit": 10_000})
        )
        assert len(listed.items) == 10_000
        codes = [v["token"] for v in created.items]
        deleted = await watched(
            cluster.gateway_url, "deletetokens 10,000", hotspot.call(key, "deletetokens", {"tokens": codes})
        )
        assert {v["result"] for v in deleted.items} == {"deleted"}
        too_many = await hotspot.call(key, "deletetokens", {"tokens": [*codes, codes[0]]})
        assert too_many.error_code == "invalid_request"


# --- ChatApp -------------------------------------------------------------------------------------


async def test_chatapp_a_full_body_is_refused_cheaply(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """ChatApp's requests each cost at most one password check (throttled); the largest body is a
    password of the longest accepted length padded with an unknown field, answered at once."""
    body = orjson.dumps(
        {"email": "a@example.com", "password": "x" * 1024, "appId": "nope", "pad": "y" * (MAX_BODY - 2000)}
    )
    status, reply = await watched(
        cluster.gateway_url,
        "tokens.make 1 MiB",
        post(http, cluster.gateway_url + "/v1/tokens", body, {"Content-Type": "application/json"}),
    )
    assert status == 401
    assert reply["error"]["code"] == "ApiInvalidCredentialsError"
