"""ChatApp-style access/refresh pairs through the real gateway, issuer and registry (DESIGN §2.4,
issue 5): rotation and reuse detection, exact daily quotas under concurrency and across an issuer
restart, every error's envelope, forward-auth, logout, the credential throttle, and Redis outages.

Against one Redis and against a Redis Cluster (`redis_target`): every test on the module's shared
services (`chat`), the per-e-mail throttle and the revocation reaching every gateway. The rest (a
crash of the issuer or the registry, the per-address throttle, a Redis outage) runs against one
Redis only: what they test is not where the keys are (a cluster's own failover:
tests/e2e/test_redis_failover.py)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from issuer.quota import next_utc_midnight, utc_day
from shared.internal import KEY_REFUSED
from shared.redis import Subscriber
from tests.conftest import RedisTarget, next_message, redis_for, run_cli, subscribe
from tests.e2e.harness import Cluster, ServiceProcess, http_status, running_cluster
from tests.ports import free_port

pytestmark = pytest.mark.e2e

PASSWORD = "Chat-app-pass-1"
DAY = 86400

INVALID_TOKEN = {"code": "ApiInvalidTokenError", "message": "Invalid Token"}
INVALID_CREDENTIALS = {"code": "ApiInvalidCredentialsError", "message": "Invalid email, password or appId"}
TOKENS_LIMIT = {
    "code": "ApiTokensLimitError",
    "message": "Daily limit of tokens.make for this appId is reached",
}
TOO_MANY_ATTEMPTS = {
    "code": "ApiTooManyAttemptsError",
    "message": "Too many failed attempts, try again later",
}
UNAVAILABLE = {
    "code": "ApiServiceUnavailableError",
    "message": "Service temporarily unavailable, try again later",
}


def failed(error: dict[str, str]) -> dict[str, Any]:
    return {"success": False, "error": error}


def validation(message: str) -> dict[str, Any]:
    return failed({"code": "ApiValidationError", "message": message})


# --- fixtures: accounts, apps, clusters -------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    user_id: int


def add_account(environment: dict[str, str], password: str = PASSWORD) -> Account:
    name = f"chat-{secrets.token_hex(4)}"
    email = f"{name}@example.com"
    result = run_cli(
        ["users", "add", name, "--role", "user", "--email", email, "--password-stdin"], environment, password
    )
    assert result.returncode == 0, result.stderr
    return Account(email, password, int(result.stdout.strip()))


def add_app(environment: dict[str, str], *options: str) -> str:
    app_id = f"app-{secrets.token_hex(4)}"
    result = run_cli(["apps", "add", app_id, *options], environment)
    assert result.returncode == 0, result.stderr
    return app_id


def cluster_env(environment: dict[str, str], **extra: str) -> dict[str, str]:
    """The run's environment with a Redis prefix of its own (so this cluster's throttles and quotas
    meet no other test's) and a backend timeout far above a burst of password checks on 2 cores."""
    return dict(
        environment,
        TOKENHUB_REDIS_PREFIX=f"{environment['TOKENHUB_REDIS_PREFIX']}chat{secrets.token_hex(3)}:",
        TOKENHUB_BACKEND_TIMEOUT="20",
        **extra,
    )


@pytest.fixture(scope="module")
def chat(
    environment: dict[str, str], redis_target: RedisTarget, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The four services for the tests here that stop nothing, once against each Redis."""
    env = cluster_env(environment, **redis_target.env)
    with running_cluster(env, tmp_path_factory.mktemp("chatapp-logs")) as running:
        yield running


@pytest.fixture
def own_cluster(environment: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    """Four services of the test's own, for tests that stop one or fill a throttle."""
    with running_cluster(cluster_env(environment), tmp_path) as running:
        yield running


@pytest.fixture
def own_cluster_on_each_redis(
    environment: dict[str, str], redis_target: RedisTarget, tmp_path: Path
) -> Iterator[Cluster]:
    """`own_cluster`, once against each Redis."""
    with running_cluster(cluster_env(environment, **redis_target.env), tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def account(environment: dict[str, str]) -> Account:
    return add_account(environment)


@pytest.fixture(scope="module")
def app_id(environment: dict[str, str]) -> str:
    return add_app(environment, "--daily-quota", "1000")


# --- calling the gateway --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def data(self) -> dict[str, Any]:
        assert self.status == 200, (self.status, self.body)
        assert self.body["success"] is True
        data: dict[str, Any] = self.body["data"]
        return data


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    payload = None if data is None else io.BytesIO(data)  # large bodies without blocking the loop
    async with http.request(method, url, json=json, data=payload, headers=headers) as r:
        raw = await r.read()
        body = orjson.loads(raw) if raw else None
        return Reply(r.status, body, dict(r.headers))


async def make(
    http: aiohttp.ClientSession, base: str, who: Account, app: str, password: str | None = None
) -> Reply:
    body = {"email": who.email, "password": password or who.password, "appId": app}
    return await call(http, "POST", base + "/v1/tokens", json=body)


async def refresh(http: aiohttp.ClientSession, base: str, token: str) -> Reply:
    return await call(http, "POST", base + "/v1/tokens/refresh", headers={"Refresh": token})


async def check(http: aiohttp.ClientSession, base: str, token: str, scheme: str = "") -> Reply:
    return await call(http, "GET", base + "/v1/tokens/check", headers={"Authorization": scheme + token})


@contextlib.asynccontextmanager
async def load_session(limit: int) -> AsyncIterator[aiohttp.ClientSession]:
    """One client for a burst: `limit` connections carry all the concurrent requests."""
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as s:
        yield s


def is_pair(data: dict[str, Any], who: Account) -> bool:
    return (
        set(data)
        == {"cabinetUserId", "accessToken", "accessTokenEndTime", "refreshToken", "refreshTokenEndTime"}
        and data["cabinetUserId"] == who.user_id
        and data["accessToken"].startswith("th_at_")
        and data["refreshToken"].startswith("th_rt_")
        and isinstance(data["accessTokenEndTime"], int)
        and isinstance(data["refreshTokenEndTime"], int)
    )


async def audit_events(database_url: str, event: str, user_id: int) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT event, subject_id, kind, client_addr, details FROM audit_log"
            " WHERE event = $1 AND subject_id = $2 ORDER BY id",
            event,
            user_id,
        )
    finally:
        await conn.close()
    return [dict(row) for row in rows]


# --- Done when (1): make → check → refresh → reuse revokes the family ------------------------------


async def test_make_check_refresh_and_reuse_revokes_the_whole_family(
    chat: Cluster, http: aiohttp.ClientSession, environment: dict[str, str], database_url: str
) -> None:
    who = add_account(environment)
    app = add_app(environment, "--access-ttl", "3600", "--refresh-ttl", "7200")
    base = chat.gateway_url

    before = int(time.time())
    made = await make(http, base, who, app)
    after = int(time.time())
    first = made.data
    assert is_pair(first, who)
    # Unix seconds at the app's own lifetimes (ChatApp's documented convention).
    assert before + 3600 <= first["accessTokenEndTime"] <= after + 3600
    assert before + 7200 <= first["refreshTokenEndTime"] <= after + 7200

    checked = (await check(http, base, first["accessToken"])).data
    assert checked == {
        "cabinetUserId": who.user_id,
        "appId": app,
        "accessTokenEndTime": first["accessTokenEndTime"],
    }
    assert (await check(http, base, first["accessToken"], "Bearer ")).data == checked

    second = (await refresh(http, base, first["refreshToken"])).data
    assert is_pair(second, who)
    assert second["accessToken"] != first["accessToken"]
    assert second["refreshToken"] != first["refreshToken"]
    # The old access token is still valid until its own end; the new one too.
    assert (await check(http, base, first["accessToken"])).data["accessTokenEndTime"] == first[
        "accessTokenEndTime"
    ]
    assert (await check(http, base, second["accessToken"])).data["cabinetUserId"] == who.user_id

    # The old refresh token died when it was used: presenting it again is reuse...
    replay = await refresh(http, base, first["refreshToken"])
    assert (replay.status, replay.body) == (401, failed(INVALID_TOKEN))
    # ...which revoked every token of the family, the newest pair included.
    for token in (first["accessToken"], second["accessToken"]):
        dead = await check(http, base, token)
        assert (dead.status, dead.body) == (401, failed(INVALID_TOKEN))
    for token in (second["refreshToken"], first["refreshToken"]):
        dead = await refresh(http, base, token)
        assert (dead.status, dead.body) == (401, failed(INVALID_TOKEN))

    events = await audit_events(database_url, "refresh_reuse_detected", who.user_id)
    assert len(events) == 1
    assert events[0]["kind"] == "chatapp"
    assert events[0]["client_addr"] == "127.0.0.1"
    assert orjson.loads(events[0]["details"])["app_id"] == app

    # The account itself is fine: a new make starts a new family.
    assert is_pair((await make(http, base, who, app)).data, who)


async def test_tokens_are_opaque_and_redis_holds_only_their_hashes(
    chat: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str
) -> None:
    pair = (await make(http, chat.gateway_url, account, app_id)).data
    env = chat["issuer"].env
    client = redis_for(env)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=env["TOKENHUB_REDIS_PREFIX"] + "*")]
        values = [await client.dump(k) for k in keys]
    finally:
        await client.aclose()
    secret_parts = [pair["accessToken"][38:], pair["refreshToken"][38:]]  # after prefix and family id
    assert keys
    assert not any(part in key for part in secret_parts for key in keys)
    assert not any(part.encode() in (value or b"") for part in secret_parts for value in values)
    assert pair["accessToken"] not in chat.logs()
    assert pair["refreshToken"] not in chat.logs()


# --- Done when (2): exact daily quota under concurrency, and across an issuer restart ---------------


async def test_1000_concurrent_makes_with_quota_100_give_exactly_100_pairs(
    chat: Cluster, environment: dict[str, str]
) -> None:
    who = add_account(environment)
    app = add_app(environment, "--daily-quota", "100")
    base = chat.gateway_url
    before_reset = next_utc_midnight(int(time.time())) - int(time.time())

    async with load_session(limit=16) as session:
        replies = await asyncio.gather(*(make(session, base, who, app) for _ in range(1000)))
        after_reset = next_utc_midnight(int(time.time())) - int(time.time())

        made = [r for r in replies if r.status == 200]
        refused = [r for r in replies if r.status == 429]
        assert (len(made), len(refused)) == (100, 900), {r.status for r in replies}
        assert all(is_pair(r.data, who) for r in made)
        assert len({r.data["accessToken"] for r in made}) == 100
        assert all(r.body == failed(TOKENS_LIMIT) for r in refused)

        # X-RateLimit-* on every make: each success saw a different remaining count, 99 down to 0.
        reset_at = str(next_utc_midnight(int(time.time())))
        assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in made) == list(range(100))
        for r in replies:
            assert r.headers["X-RateLimit-Limit"] == "100"
            assert r.headers["X-RateLimit-Reset"] == reset_at
        for r in refused:
            assert r.headers["X-RateLimit-Remaining"] == "0"
            assert after_reset <= int(r.headers["Retry-After"]) <= before_reset  # seconds to UTC midnight

        # Refresh does not count against the quota, and does not reopen it.
        fresh = (await refresh(session, base, made[0].data["refreshToken"])).data
        assert is_pair(fresh, who)
        again = await make(session, base, who, app)
        assert (again.status, again.body) == (429, failed(TOKENS_LIMIT))

        # The quota is per (account, app): the same account's other app is untouched.
        other_app = add_app(environment, "--daily-quota", "100")
        other = await make(session, base, who, other_app)
        assert other.data
        assert other.headers["X-RateLimit-Remaining"] == "99"


async def test_quota_holds_across_an_issuer_crash_and_restart_mid_run(
    own_cluster: Cluster, environment: dict[str, str]
) -> None:
    """The count lives in Redis: a restarted issuer continues it. Were it in the issuer's memory, the
    requests after the restart would get up to 100 more pairs."""
    who = add_account(environment)
    app = add_app(environment, "--daily-quota", "100")
    base = own_cluster.gateway_url
    issuer = own_cluster["issuer"]
    assert issuer.proc is not None
    first_pid = issuer.proc.pid
    made_before_restart = 0
    quarter_used = asyncio.Event()

    async def one(session: aiohttp.ClientSession) -> Reply:
        nonlocal made_before_restart
        reply = await make(session, base, who, app)
        if reply.status == 200 and issuer.proc is not None and issuer.proc.pid == first_pid:
            made_before_restart += 1
            if made_before_restart >= 25:
                quarter_used.set()
        return reply

    async def restart_when_a_quarter_is_used() -> None:
        await quarter_used.wait()
        await asyncio.to_thread(issuer.stop, signal.SIGKILL)  # a crash, mid-request for some
        await asyncio.to_thread(issuer.start)
        await asyncio.to_thread(issuer.wait_ready)

    replies: list[Reply] = []
    pending = iter(range(1000))

    async def one_client(session: aiohttp.ClientSession) -> None:
        """One of 16 clients sharing the 1,000 makes. Like a real client it pauses after a 503,
        so that the run outlasts the restart instead of spending its requests on a stopped issuer."""
        for _ in pending:
            replies.append(reply := await one(session))
            if reply.status == 503:
                await asyncio.sleep(0.2)

    async with load_session(limit=16) as session:
        restart = asyncio.create_task(restart_when_a_quarter_is_used())
        await asyncio.gather(*(one_client(session) for _ in range(16)))
        assert restart.done(), "the run ended before the issuer was restarted"
        await restart
        assert len(replies) == 1000
        assert issuer.proc.pid != first_pid

        kinds = {(r.status, orjson.dumps(r.body)) for r in replies if r.status != 200}
        assert kinds <= {
            (429, orjson.dumps(failed(TOKENS_LIMIT))),
            (503, orjson.dumps(failed(UNAVAILABLE))),  # while the issuer was down
        }
        made = sum(r.status == 200 for r in replies)
        assert made_before_restart >= 25
        assert made <= 100
        assert sum(r.status == 429 for r in replies) > 0  # the restarted issuer refused with the old count

        # Whatever is left of the day's 100 (a crash can lose a unit it had taken, never give one
        # back), then refusals: never more than 100 pairs that day.
        topped_up = 0
        while (reply := await make(session, base, who, app)).status == 200:
            topped_up += 1
            assert made + topped_up <= 100
        assert (reply.status, reply.body) == (429, failed(TOKENS_LIMIT))

    env = issuer.env
    client = redis_for(env)
    try:
        counters = [
            await client.hget(key, "used")
            async for key in client.scan_iter(
                match=f"{env['TOKENHUB_REDIS_PREFIX']}cq:*:{utc_day(int(time.time()))}"
            )
        ]
    finally:
        await client.aclose()
    assert counters == [b"100"]


# --- Done when (3): concurrent refreshes of one token --------------------------------------------


async def test_200_concurrent_refreshes_of_one_token_give_exactly_one_pair(
    chat: Cluster, account: Account, app_id: str, database_url: str
) -> None:
    base = chat.gateway_url
    async with load_session(limit=50) as session:
        pair = (await make(session, base, account, app_id)).data
        replies = await asyncio.gather(*(refresh(session, base, pair["refreshToken"]) for _ in range(200)))
        winners = [r for r in replies if r.status == 200]
        losers = [r for r in replies if r.status != 200]
        assert len(winners) == 1
        assert is_pair(winners[0].data, account)
        assert {(r.status, orjson.dumps(r.body)) for r in losers} == {
            (401, orjson.dumps(failed(INVALID_TOKEN)))
        }
        # Every loser presented a used token: the first of them revoked the family, the winner's new
        # pair included (strict reuse detection: a client must not refresh one token twice).
        dead = await check(session, base, winners[0].data["accessToken"])
        assert (dead.status, dead.body) == (401, failed(INVALID_TOKEN))
    events = await audit_events(database_url, "refresh_reuse_detected", account.user_id)
    families = [orjson.loads(e["details"])["family"] for e in events]
    assert families.count(pair["refreshToken"][6:38]) == 1  # one revocation, audited once


# --- the issuer's internal API ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/pairs", "/v1/pairs/refresh", "/v1/pairs/check", "/v1/pairs/revoke"])
async def test_the_issuers_pair_endpoints_refuse_requests_without_the_internal_key(
    chat: Cluster, http: aiohttp.ClientSession, path: str
) -> None:
    reply = await call(http, "POST", chat["issuer"].url + path, json={})
    assert reply.status == 401
    assert reply.body["error"]["code"] == KEY_REFUSED


# --- tokens.make errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", validation("Request body is not valid JSON")),
        (b"[1, 2]", validation("Request body must be a JSON object")),
        (b"", validation("email is required")),
        (b'{"password": "x", "appId": "a"}', validation("email is required")),
        (b'{"email": "a@b.c", "appId": "a"}', validation("password is required")),
        (b'{"email": "a@b.c", "password": "x"}', validation("appId is required")),
        (b'{"email": 1, "password": "x", "appId": "a"}', validation("email must be a string")),
        (
            b'{"email": "nobody", "password": "x", "appId": "a"}',
            validation("email must be an e-mail address"),
        ),
        (b'{"email": "a@b.c", "password": "x", "appId": {}}', validation("appId must be a string")),
        (
            b'{"email": "a@b.c", "password": "x", "appId": "' + b"a" * 101 + b'"}',
            validation("appId is too long"),
        ),
        (
            b'{"email": "a@b.c", "password": "x", "appId": "a", "pad": "' + b"x" * (1 << 20) + b'"}',
            validation("Request body is too large"),
        ),
    ],
)
async def test_make_validation_errors(
    chat: Cluster, http: aiohttp.ClientSession, body: bytes, expected: dict[str, Any]
) -> None:
    reply = await call(
        http, "POST", chat.gateway_url + "/v1/tokens", data=body, headers={"Content-Type": "application/json"}
    )
    assert (reply.status, reply.body) == (400, expected)


async def test_wrong_password_unknown_email_and_unknown_app_answer_alike(
    chat: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str
) -> None:
    base = chat.gateway_url
    unknown = Account(f"nobody-{secrets.token_hex(4)}@example.com", PASSWORD, 0)
    replies = [
        await make(http, base, account, app_id, password="Wrong-pass-1"),
        await make(http, base, unknown, app_id),
        await make(http, base, account, f"no-such-app-{secrets.token_hex(3)}"),
        await make(http, base, account, "../../v1/users/1"),  # an app id is one path segment, always
        await make(http, base, Account("@", PASSWORD, 0), app_id),  # the shortest e-mail we let through
    ]
    for reply in replies:
        assert (reply.status, reply.body) == (401, failed(INVALID_CREDENTIALS))
        # No quota is shown to a caller whose credentials were not checked.
        assert "X-RateLimit-Remaining" not in reply.headers


async def test_a_remembered_success_never_lets_a_wrong_password_in(
    chat: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str
) -> None:
    base = chat.gateway_url
    assert is_pair((await make(http, base, account, app_id)).data, account)
    assert is_pair((await make(http, base, account, app_id)).data, account)
    wrong = await make(http, base, account, app_id, password=account.password + "x")
    assert (wrong.status, wrong.body) == (401, failed(INVALID_CREDENTIALS))
    upper = Account(account.email.upper(), account.password, account.user_id)  # e-mail is case-blind
    assert is_pair((await make(http, base, upper, app_id)).data, account)


async def test_a_wrong_password_spends_no_quota(
    chat: Cluster, http: aiohttp.ClientSession, environment: dict[str, str]
) -> None:
    who = add_account(environment)
    app = add_app(environment, "--daily-quota", "2")
    base = chat.gateway_url
    for _ in range(3):
        wrong = await make(http, base, who, app, password="Wrong-pass-1")
        assert wrong.status == 401
    assert (await make(http, base, who, app)).headers["X-RateLimit-Remaining"] == "1"
    assert (await make(http, base, who, app)).headers["X-RateLimit-Remaining"] == "0"
    assert (await make(http, base, who, app)).status == 429


async def test_a_numeric_app_id_is_the_same_app(
    chat: Cluster, http: aiohttp.ClientSession, environment: dict[str, str], account: Account
) -> None:
    numeric = str(secrets.randbelow(10**9) + 10**9)
    assert run_cli(["apps", "add", numeric], environment).returncode == 0
    body = {"email": account.email, "password": account.password, "appId": int(numeric)}
    assert is_pair((await call(http, "POST", chat.gateway_url + "/v1/tokens", json=body)).data, account)


# --- refresh, check, forward-auth, logout errors --------------------------------------------------


async def test_refresh_takes_the_token_from_the_header_or_the_body(
    chat: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str
) -> None:
    base = chat.gateway_url
    pair = (await make(http, base, account, app_id)).data
    by_body = await call(
        http, "POST", base + "/v1/tokens/refresh", json={"refreshToken": pair["refreshToken"]}
    )
    assert is_pair(by_body.data, account)
    bearer = await call(
        http,
        "POST",
        base + "/v1/tokens/refresh",
        headers={"Refresh": "Bearer " + by_body.data["refreshToken"]},
    )
    assert is_pair(bearer.data, account)


@pytest.mark.parametrize(
    ("headers", "body", "status", "expected"),
    [
        ({}, None, 400, validation("refreshToken is required (Refresh header or body)")),
        ({}, b"{}", 400, validation("refreshToken is required (Refresh header or body)")),
        ({}, b'{"refreshToken": 5}', 400, validation("refreshToken must be a string")),
        ({}, b"{oops", 400, validation("Request body is not valid JSON")),
        ({"Refresh": "garbage"}, None, 401, failed(INVALID_TOKEN)),
        ({"Refresh": "th_rt_" + "0" * 32 + "a" * 43}, None, 401, failed(INVALID_TOKEN)),
        ({}, b'{"refreshToken": "th_rt_' + b"0" * 32 + b"a" * 43 + b'"}', 401, failed(INVALID_TOKEN)),
    ],
)
async def test_refresh_errors(
    chat: Cluster,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    expected: dict[str, Any],
) -> None:
    reply = await call(http, "POST", chat.gateway_url + "/v1/tokens/refresh", data=body, headers=headers)
    assert (reply.status, reply.body) == (status, expected)


async def test_an_access_token_does_not_refresh_and_a_refresh_token_does_not_authorize(
    chat: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str
) -> None:
    base = chat.gateway_url
    pair = (await make(http, base, account, app_id)).data
    wrong_kind = await refresh(http, base, pair["accessToken"])
    assert (wrong_kind.status, wrong_kind.body) == (401, failed(INVALID_TOKEN))
    wrong_kind = await check(http, base, pair["refreshToken"])
    assert (wrong_kind.status, wrong_kind.body) == (401, failed(INVALID_TOKEN))
    assert is_pair((await refresh(http, base, pair["refreshToken"])).data, account)  # still unused


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer nonsense", "th_at_" + "0" * 32 + "a" * 43, "Basic dXNlcjpwYXNz", "x" * 5000],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/tokens/check"), ("GET", "/v1/auth"), ("DELETE", "/v1/tokens")]
)
async def test_requests_without_a_valid_access_token_get_invalid_token(
    chat: Cluster, http: aiohttp.ClientSession, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = await call(http, method, chat.gateway_url + path, headers=headers)
    assert (reply.status, reply.body) == (401, failed(INVALID_TOKEN))
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert "X-TokenHub-User-Id" not in reply.headers


async def test_forward_auth_names_the_user_and_app_to_the_proxy(
    chat: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str
) -> None:
    base = chat.gateway_url
    pair = (await make(http, base, account, app_id)).data
    for authorization in (pair["accessToken"], "Bearer " + pair["accessToken"]):
        reply = await call(http, "GET", base + "/v1/auth", headers={"Authorization": authorization})
        assert reply.status == 204
        assert reply.body is None
        assert reply.headers["X-TokenHub-User-Id"] == str(account.user_id)
        assert reply.headers["X-TokenHub-App-Id"] == app_id


async def test_delete_revokes_the_callers_family_and_no_other(
    chat: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str
) -> None:
    base = chat.gateway_url
    first = (await make(http, base, account, app_id)).data
    rotated = (await refresh(http, base, first["refreshToken"])).data
    other = (await make(http, base, account, app_id)).data
    env = chat["issuer"].env
    client = redis_for(env)
    try:
        # As a gateway listens: in a cluster, on one node, whichever serves the family's slot.
        async with Subscriber(client, env["REDIS_URL"], 3.0).pubsub() as pubsub:
            await subscribe(pubsub, env["TOKENHUB_REDIS_PREFIX"] + "revocations")
            reply = await call(
                http, "DELETE", base + "/v1/tokens", headers={"Authorization": first["accessToken"]}
            )
            assert (reply.status, reply.body) == (200, {"success": True, "data": {}})
            # Announced to every gateway that caches verifications.
            message = await next_message(pubsub, 5)
    finally:
        await client.aclose()
    assert message is not None
    assert orjson.loads(message["data"]) == {"families": [first["accessToken"][6:38]]}

    for token in (first["accessToken"], rotated["accessToken"]):
        assert (await check(http, base, token)).body == failed(INVALID_TOKEN)
    assert (await refresh(http, base, rotated["refreshToken"])).body == failed(INVALID_TOKEN)
    assert (await check(http, base, other["accessToken"])).data["cabinetUserId"] == account.user_id
    again = await call(http, "DELETE", base + "/v1/tokens", headers={"Authorization": first["accessToken"]})
    assert (again.status, again.body) == (401, failed(INVALID_TOKEN))


# --- the credential throttle ----------------------------------------------------------------------


async def test_failed_credentials_are_throttled_per_email(
    own_cluster_on_each_redis: Cluster, http: aiohttp.ClientSession, environment: dict[str, str]
) -> None:
    """After TOKENHUB_LOGIN_FAILURES_MAX (5) failures even the right password is refused for a
    while, and only for that e-mail; no pair is made and no quota spent meanwhile."""
    own_cluster = own_cluster_on_each_redis
    who, bystander = add_account(environment), add_account(environment)
    app = add_app(environment)
    base = own_cluster.gateway_url
    # A success first, so that the right password is in the credential cache: a blocked account
    # must stay blocked even then.
    assert is_pair((await make(http, base, who, app)).data, who)
    for _ in range(5):
        reply = await make(http, base, who, app, password="Wrong-pass-1")
        assert (reply.status, reply.body) == (401, failed(INVALID_CREDENTIALS))
    blocked = await make(http, base, who, app)
    assert (blocked.status, blocked.body) == (429, failed(TOO_MANY_ATTEMPTS))
    assert 1 <= int(blocked.headers["Retry-After"]) <= 30
    assert "X-RateLimit-Remaining" not in blocked.headers
    # Another account from the same address still gets in, with its full quota.
    assert (await make(http, base, bystander, app)).headers["X-RateLimit-Remaining"] == "99"


async def test_failed_credentials_are_throttled_per_address(
    own_cluster: Cluster, http: aiohttp.ClientSession, environment: dict[str, str]
) -> None:
    """TOKENHUB_ADDRESS_FAILURES_MAX (30) failures from one address, spread over many e-mails,
    block that address for every e-mail."""
    who = add_account(environment)
    app = add_app(environment)
    base = own_cluster.gateway_url
    strangers = [Account(f"guess-{i}-{secrets.token_hex(3)}@example.com", "Guess-1", 0) for i in range(30)]
    async with load_session(limit=4) as session:
        replies = await asyncio.gather(*(make(session, base, s, app) for s in strangers))
    assert {r.status for r in replies} == {401}
    blocked = await make(http, base, who, app)
    assert (blocked.status, blocked.body) == (429, failed(TOO_MANY_ATTEMPTS))


# --- outages ---------------------------------------------------------------------------------------


async def test_a_stopped_registry_stops_make_only_and_a_stopped_issuer_everything(
    own_cluster: Cluster, http: aiohttp.ClientSession, environment: dict[str, str]
) -> None:
    who = add_account(environment)
    app = add_app(environment)
    base = own_cluster.gateway_url
    pair = (await make(http, base, who, app)).data

    own_cluster["registry"].stop(signal.SIGKILL)
    down = await make(http, base, who, app)
    assert (down.status, down.body) == (503, failed(UNAVAILABLE))
    # Pairs live in Redis: checking and refreshing need no registry.
    assert (await check(http, base, pair["accessToken"])).data["cabinetUserId"] == who.user_id
    assert is_pair((await refresh(http, base, pair["refreshToken"])).data, who)

    own_cluster["issuer"].stop(signal.SIGKILL)
    # The gateway may answer a check it verified within the last second (TOKENHUB_VERIFY_CACHE_TTL);
    # past that, everything needs the issuer.
    await asyncio.sleep(1.1)
    access = {"Authorization": pair["accessToken"]}
    replies = [
        await make(http, base, who, app),
        await check(http, base, pair["accessToken"]),
        await refresh(http, base, pair["refreshToken"]),
        await call(http, "GET", base + "/v1/auth", headers=access),
        await call(http, "DELETE", base + "/v1/tokens", headers=access),
    ]
    for reply in replies:
        assert (reply.status, reply.body) == (503, failed(UNAVAILABLE))


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port: this one can be killed."""
    port = free_port()
    proc = start_redis(port)
    try:
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        probe = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
        )
        if probe.stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise TimeoutError(f"redis-server on port {port} did not start")


async def test_redis_down_gives_service_unavailable_fast_then_recovers(
    environment: dict[str, str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with private_redis() as (port, redis_proc):
        env = cluster_env(environment, REDIS_URL=f"redis://127.0.0.1:{port}/0")
        with running_cluster(env, tmp_path) as cluster:
            who = add_account(environment)
            app = add_app(environment)
            base = cluster.gateway_url
            pair = (await make(http, base, who, app)).data

            redis_proc.terminate()  # only the redis-server this test started
            redis_proc.wait(timeout=10)
            access = {"Authorization": pair["accessToken"]}
            replies = await asyncio.gather(
                make(http, base, who, app),
                refresh(http, base, pair["refreshToken"]),
                check(http, base, pair["accessToken"]),
                call(http, "GET", base + "/v1/auth", headers=access),
                call(http, "DELETE", base + "/v1/tokens", headers=access),
            )
            for reply in replies:
                assert (reply.status, reply.body) == (503, failed(UNAVAILABLE))
            # The registry does not need Redis and keeps answering.
            assert http_status(cluster["registry"].url + "/readyz") == 200

            restarted = start_redis(port)  # empty: the pairs were lost with the data, not the service
            try:
                cluster["issuer"].wait_ready()
                assert is_pair((await make(http, base, who, app)).data, who)
                gone = await check(http, base, pair["accessToken"])
                assert (gone.status, gone.body) == (401, failed(INVALID_TOKEN))
            finally:
                restarted.terminate()
                restarted.wait(timeout=10)


async def test_a_revocation_reaches_every_gateway_within_a_second(
    own_cluster_on_each_redis: Cluster,
    http: aiohttp.ClientSession,
    environment: dict[str, str],
    account: Account,
    tmp_path: Path,
) -> None:
    """Gateway A caches its verifications; the family is revoked through gateway B; A must stop
    honouring the token within 1 s (DESIGN §2.4), in practice as soon as the pub/sub message lands."""
    own_cluster = own_cluster_on_each_redis  # in a cluster, A and B may listen on different nodes
    app = add_app(environment)
    port = free_port()
    second = ServiceProcess(
        "gateway",
        port,
        dict(own_cluster["gateway"].env, GATEWAY_PORT=str(port), GATEWAY_METRICS_PORT=str(free_port())),
        tmp_path / "b.log",
    )
    second.start()
    try:
        second.wait_ready()
        a, b = own_cluster.gateway_url, second.url
        pair = (await make(http, a, account, app)).data
        bearer = {"Authorization": pair["accessToken"]}
        for _ in range(3):  # the first fills A's cache, the others are answered from it
            assert (await call(http, "GET", a + "/v1/tokens/check", headers=bearer)).status == 200
        async with http.get(own_cluster["gateway"].metrics_url) as r:
            assert 'tokenhub_gateway_verify_cache_total{outcome="hit"}' in await r.text()

        assert (await call(http, "DELETE", b + "/v1/tokens", headers=bearer)).status == 200
        revoked_at = time.monotonic()
        while (status := (await call(http, "GET", a + "/v1/tokens/check", headers=bearer)).status) == 200:
            assert time.monotonic() - revoked_at < 1.0, "gateway A still honours a revoked token after 1 s"
            await asyncio.sleep(0.01)
        assert status == 401
    finally:
        second.stop()
