"""The ChatApp REST endpoints and the admin API against their OpenAPI document, docs/openapi.yaml
(issue 9, "Bad input"; issue 17 for the admin part).

schemathesis generates requests from the document, valid ones and ones that break it on purpose,
and sends them to the real gateway, issuer and registry. Every answer must be one the document
describes (status, headers, body, content type), never a 5xx, never a traceback, and the services
must log nothing that betrays a surprise. The successes and the quota and throttle refusals, which
random input rarely reaches, are sent on purpose and checked against the document the same way.

Then, by hand, what a generator does not send: header lines an HTTP client refuses to write (a bare
CR or LF, NUL, folding, an 8 KiB line), odd but well-formed header values, huge and deeply nested
bodies. Each is refused, and refused without changing a pair, a quota counter or the audit log,
even when the refused request carries a valid token or valid credentials.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import redis.asyncio
import requests
import requests.adapters
import schemathesis
import yaml
from schemathesis import Case
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.conftest import run_cli
from tests.e2e.harness import Cluster, running_cluster
from tests.e2e.hotspot_client import random_loopback
from tests.e2e.raw_http import send_raw
from tests.e2e.test_chatapp import (
    INVALID_CREDENTIALS,
    INVALID_TOKEN,
    Account,
    add_account,
    add_app,
    cluster_env,
    failed,
    validation,
)

pytestmark = pytest.mark.e2e

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
DOCUMENT_PATHS: dict[str, dict[str, Any]] = yaml.safe_load(DOCUMENT.read_text())["paths"]
# Per operation, on top of the document's examples and schemathesis's coverage cases: enough to
# reach every branch of the handlers' validation, few enough that the file stays under a minute on
# two shared cores (a make with unknown credentials costs an Argon2id check).
MAX_EXAMPLES = 100
SCHEMATHESIS_CONFIG = f"""
[generation]
max-examples = {MAX_EXAMPLES}
deterministic = true
database = "none"

[phases]
examples.enabled = true
coverage.enabled = true
fuzzing.enabled = true
stateful.enabled = false
"""
# Not positive_data_acceptance: a request can match the document and still be refused — a refresh
# with neither the Refresh header nor the body member is one (the document can say "one of the two"
# only in words), and so is every make with credentials that do not exist.
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    missing_required_header,
    ignored_auth,
    unsupported_method,
    allow_header_conformance,
]


# --- the cluster, an account, and a client of its own ----------------------------------------------


@pytest.fixture(scope="module")
def api(environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Gateway, issuer and registry with a Redis prefix of their own, so the throttles the fuzzing
    fills and the state the tests compare meet no other test's. No sweeper: nothing here expires."""
    with running_cluster(
        cluster_env(environment),
        tmp_path_factory.mktemp("openapi-logs"),
        services=("registry", "issuer", "gateway"),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def account(environment: dict[str, str]) -> Account:
    return add_account(environment)


@pytest.fixture(scope="module")
def app_id(environment: dict[str, str]) -> str:
    return add_app(environment, "--daily-quota", "1000")


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Sends from one loopback address: failed logins are throttled per client address, and the
    fuzzing's must not block the other tests' logins."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def fuzz_http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(random_loopback()))
    yield session
    session.close()


class LogWatch:
    """What the services logged since the last look: a handler that met the unexpected logs it at
    warning or error level (and answers 503), which a well-formed envelope would hide."""

    def __init__(self, cluster: Cluster) -> None:
        self.paths = [cluster[name].log_path for name in ("gateway", "issuer", "registry")]
        self.offsets = {path: path.stat().st_size for path in self.paths}

    def surprises(self) -> list[str]:
        found = []
        for path in self.paths:
            with path.open("rb") as log:
                log.seek(self.offsets[path])
                # Up to the last whole line: a service may be writing the next one right now.
                text = log.read().rpartition(b"\n")[0]
            self.offsets[path] += len(text) + 1 if text else 0
            # Lines end at "\n" only: a logged value may hold U+2028 or U+0085, which JSON leaves as is.
            for line in text.split(b"\n") if text else []:
                entry = orjson.loads(line)
                if entry["level"] in ("warning", "error", "critical") or "exc" in entry:
                    found.append(line.decode())
        return found


def make_body(who: Account, app: str) -> dict[str, str]:
    return {"email": who.email, "password": who.password, "appId": app}


def documented_methods(path: str) -> set[str]:
    methods = {method.upper() for method in DOCUMENT_PATHS[path]}
    # aiohttp answers HEAD wherever GET is, as the document's description says.
    return methods | {"HEAD"} if "GET" in methods else methods


def assert_envelope(case: Case[Any], response: schemathesis.Response) -> None:
    """What every answer has, whatever the document says: JSON in the dialect's envelope, or the
    bodiless 204 of forward-auth; no 5xx, no traceback."""
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if case.method.upper() not in documented_methods(case.path):
        # Refused in the envelope (the document's description says so), naming exactly the
        # methods that do exist.
        assert response.status_code == 405
        allowed = {m.strip() for m in response.headers["allow"][0].split(",")}
        assert allowed == documented_methods(case.path)
        assert orjson.loads(response.content or b"") == {
            "success": False,
            "error": {"code": "ApiMethodNotAllowedError", "message": "Method not allowed"},
        }
        return
    if response.status_code == 204:
        assert response.content in (b"", None)
        return
    assert response.headers["content-type"][0].startswith("application/json")
    body = orjson.loads(response.content or b"")
    if response.status_code == 200:
        assert body["success"] is True
        assert set(body) == {"success", "data"}
    else:
        assert body["success"] is False
        assert set(body) == {"success", "error"}
        assert set(body["error"]) == {"code", "message"}


# --- schemathesis over the document ----------------------------------------------------------------

SCHEMA = schemathesis.openapi.from_path(
    DOCUMENT, config=schemathesis.Config.from_str(SCHEMATHESIS_CONFIG)
).exclude(path_regex="^/admin/")


@SCHEMA.parametrize()
def test_every_answer_is_one_the_document_describes(
    case: Case[Any], api: Cluster, fuzz_http: requests.Session
) -> None:
    watch = LogWatch(api)
    response = case.call_and_validate(base_url=api.gateway_url, session=fuzz_http, checks=CHECKS)
    assert_envelope(case, response)
    assert watch.surprises() == []


# --- the admin API ----------------------------------------------------------------------------------

# Few per operation: 24 operations, each also gets schemathesis's coverage cases, and the file must
# stay fast on two shared cores (issue 17: at most about 20 s for this part).
ADMIN_MAX_EXAMPLES = 4
ADMIN_SCHEMA = schemathesis.openapi.from_path(
    DOCUMENT,
    config=schemathesis.Config.from_str(
        SCHEMATHESIS_CONFIG.replace(f"max-examples = {MAX_EXAMPLES}", f"max-examples = {ADMIN_MAX_EXAMPLES}")
    ),
).include(path_regex="^/admin/")
ADMIN_PASSWORD_FOR_FUZZ = "fuzz-admin-password-1"


@dataclass
class AdminSession:
    """An `admin` of the fuzzing's own, with one user below it: what it reaches is its own small
    world, so random ids and bulk actions never touch another test's accounts (a super_admin's
    would). Signs in again when a generated call (a sign-out, a revocation of itself) ends its
    session, from an address of its own: the fuzzing's failed sign-ins fill its address's throttle."""

    base: str
    username: str
    http: requests.Session
    token: str = ""
    user_id: int = 0
    below_id: int = 0

    def alive(self) -> bool:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.http.get(self.base + "/admin/v1/summary", headers=headers).status_code != 401

    def refresh(self) -> None:
        reply = self.http.post(
            self.base + "/admin/v1/sessions",
            json={"username": self.username, "password": ADMIN_PASSWORD_FOR_FUZZ},
        )
        assert reply.status_code == 201, reply.text
        self.token = reply.json()["session"]
        self.user_id = reply.json()["user"]["id"]


@pytest.fixture(scope="module")
def admin_session(api: Cluster, environment: dict[str, str]) -> Iterator[AdminSession]:
    name = f"fuzz-admin-{secrets.token_hex(3)}"
    for args in (
        ["users", "add", name, "--role", "admin"],
        ["users", "add", f"{name}-u", "--role", "user", "--parent", name],
    ):
        result = run_cli([*args, "--password-stdin"], environment, ADMIN_PASSWORD_FOR_FUZZ)
        assert result.returncode == 0, result.stderr
    with requests.Session() as http:
        http.mount("http://", SourceAddressAdapter(random_loopback()))
        session = AdminSession(api.gateway_url, name, http)
        session.refresh()
        session.below_id = int(result.stdout.strip())
        yield session


def assert_admin_envelope(case: Case[Any], response: schemathesis.Response) -> None:
    """What every admin answer has: JSON, `{"error": {"code", "message"}}` for a refusal, the 204
    of sign-out without a body; no 5xx, no traceback."""
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code == 204:
        assert response.content in (b"", None)
        return
    assert response.headers["content-type"][0].startswith("application/json")
    body = orjson.loads(response.content or b"")
    if response.status_code >= 400:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message"}
    if response.status_code == 405:
        assert response.headers["allow"][0]


@ADMIN_SCHEMA.parametrize()
def test_every_admin_answer_is_one_the_document_describes(
    case: Case[Any], api: Cluster, fuzz_http: requests.Session, admin_session: AdminSession
) -> None:
    watch = LogWatch(api)
    if not admin_session.alive():
        admin_session.refresh()
    if case.path_parameters and str(case.path_parameters.get("user_id")) == str(admin_session.user_id):
        # Its own password would end the fuzzing's session for good: its user's instead.
        case.path_parameters["user_id"] = str(admin_session.below_id)
    headers = {"Authorization": f"Bearer {admin_session.token}"}
    response = case.call_and_validate(
        base_url=api.gateway_url, session=fuzz_http, checks=CHECKS, headers=headers
    )
    assert_admin_envelope(case, response)
    assert watch.surprises() == []


# --- what random input rarely reaches, checked against the document all the same ---------------------


def conform(operation: str, method: str, http: requests.Session, base: str, **data: Any) -> Any:
    """Send one request built by hand through schemathesis, which checks the answer as it checks the
    generated ones; return the decoded body (None for a 204)."""
    case = SCHEMA[operation][method].Case(**data)
    response = case.call_and_validate(base_url=base, session=http, checks=CHECKS)
    assert_envelope(case, response)
    return orjson.loads(response.content) if response.content else None


def test_successes_and_refusals_match_the_document(
    api: Cluster, environment: dict[str, str], account: Account, app_id: str
) -> None:
    base = api.gateway_url
    watch = LogWatch(api)
    with requests.Session() as http:
        http.mount("http://", SourceAddressAdapter(random_loopback()))
        json_body = {"media_type": "application/json"}
        made = conform("/v1/tokens", "POST", http, base, body=make_body(account, app_id), **json_body)
        pair = made["data"]
        access = {"Authorization": pair["accessToken"]}
        bearer = {"Authorization": "Bearer " + pair["accessToken"]}
        checked = conform("/v1/tokens/check", "GET", http, base, headers=access)
        assert checked["data"]["cabinetUserId"] == account.user_id
        assert conform("/v1/tokens/check", "GET", http, base, headers=bearer) == checked
        assert conform("/v1/auth", "GET", http, base, headers=bearer) is None

        by_header = conform(
            "/v1/tokens/refresh", "POST", http, base, headers={"Refresh": pair["refreshToken"]}
        )
        newest = by_header["data"]["refreshToken"]
        by_body = conform(
            "/v1/tokens/refresh", "POST", http, base, body={"refreshToken": newest}, **json_body
        )
        last = {"Authorization": by_body["data"]["accessToken"]}
        assert conform("/v1/tokens", "DELETE", http, base, headers=last) == {"success": True, "data": {}}
        assert conform("/v1/tokens/check", "GET", http, base, headers=last) == failed(INVALID_TOKEN)
        reused = conform("/v1/tokens/refresh", "POST", http, base, headers={"Refresh": newest})
        assert reused == failed(INVALID_TOKEN)

        # The quota's refusal, with its Retry-After and X-RateLimit-* headers.
        scarce = add_app(environment, "--daily-quota", "1")
        assert conform("/v1/tokens", "POST", http, base, body=make_body(account, scarce), **json_body)
        spent = conform("/v1/tokens", "POST", http, base, body=make_body(account, scarce), **json_body)
        assert spent["error"]["code"] == "ApiTokensLimitError"

        # The failed-login throttle's refusal, for an account of this test's own.
        blocked = add_account(environment)
        wrong = dict(make_body(blocked, app_id), password="Wrong-pass-1")
        for _ in range(5):
            refused = conform("/v1/tokens", "POST", http, base, body=wrong, **json_body)
            assert refused["error"]["code"] == "ApiInvalidCredentialsError"
        throttled = conform("/v1/tokens", "POST", http, base, body=make_body(blocked, app_id), **json_body)
        assert throttled["error"]["code"] == "ApiTooManyAttemptsError"
    assert watch.surprises() == []


# --- by hand: header lines, header values and bodies that must change nothing ------------------------


@dataclass(frozen=True)
class State:
    """Every pair and quota key in Redis with its serialized value, and the audit rows about the
    test's account (by it or about it: what a refused request would have written, had the gateway
    read past what is wrong with it — a login, a pair made, a quota spent, a reuse detected). Not
    the whole log's length: rows other work writes meanwhile (another cluster's sweeper, a
    blocked login elsewhere) once made this compare 7304 with 7303."""

    redis: dict[bytes, bytes | None]
    audit_rows: int


async def state(api: Cluster, database_url: str, pair: dict[str, Any]) -> State:
    env = api["issuer"].env
    prefix = env["TOKENHUB_REDIS_PREFIX"]
    client = redis.asyncio.Redis.from_url(env["REDIS_URL"])
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "cp:*")]
        keys += [k async for k in client.scan_iter(match=prefix + "cq:*")]
        values = {key: await client.dump(key) for key in keys}
    finally:
        await client.aclose()
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE actor_id = $1 OR subject_id = $1", pair["cabinetUserId"]
        )
    finally:
        await conn.close()
    families = [k for k in values if b":cp:" in k and k.endswith(b"}")]
    quotas = [k for k in values if b":cq:" in k]
    # Something to compare: the test made a pair first.
    assert families
    assert quotas
    return State(values, rows)


@pytest.fixture
async def pair(api: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str) -> dict[str, Any]:
    """A fresh pair of this account, so a test may show its tokens still work at the end."""
    async with http.post(api.gateway_url + "/v1/tokens", json=make_body(account, app_id)) as reply:
        assert reply.status == 200
        data: dict[str, Any] = (await reply.json())["data"]
        return data


# Where a token travels. Logout and refresh would change state, and forward-auth would let the
# bearer through, if the gateway honoured a token it should refuse.
TARGETS = {
    "logout": ("DELETE", "/v1/tokens", b"Authorization", "accessToken"),
    "forward-auth": ("GET", "/v1/auth", b"Authorization", "accessToken"),
    "refresh": ("POST", "/v1/tokens/refresh", b"Refresh", "refreshToken"),
}


async def still_valid(http: aiohttp.ClientSession, base: str, pair: dict[str, Any], kind: str) -> bool:
    """The positive control: the token the refused request carried works (a refresh uses it up)."""
    if kind == "accessToken":
        headers = {"Authorization": pair["accessToken"]}
        async with http.get(base + "/v1/tokens/check", headers=headers) as reply:
            return reply.status == 200
    async with http.post(base + "/v1/tokens/refresh", headers={"Refresh": pair["refreshToken"]}) as reply:
        return reply.status == 200


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    "line",
    [
        pytest.param(lambda name, token: name + b": " + token + b"\nX-Injected: 1", id="bare-LF"),
        pytest.param(lambda name, token: name + b": " + token + b"\rX-Injected: 1", id="bare-CR"),
        pytest.param(lambda name, token: name + b": " + token + b"\x00", id="NUL"),
        pytest.param(lambda name, token: name + b": Bearer\r\n " + token, id="obs-fold"),
        pytest.param(lambda name, token: name + b": " + token + b" " + b"x" * 9000, id="over-8190-bytes"),
    ],
)
async def test_malformed_header_lines_are_refused_by_the_parser_and_change_nothing(
    api: Cluster,
    http: aiohttp.ClientSession,
    database_url: str,
    pair: dict[str, Any],
    target: str,
    line: Callable[[bytes, bytes], bytes],
) -> None:
    """Not HTTP/1.1: the parser answers 400 before any endpoint sees the request (outside the
    envelope, as the document says). The valid token on the line is neither honoured nor logged."""
    method, path, header, kind = TARGETS[target]
    token = pair[kind].encode()
    before = await state(api, database_url, pair)
    watch = LogWatch(api)
    reply = await send_raw(api["gateway"].port, method, path, [line(header, token)])
    assert reply.status == 400
    assert reply.headers["content-type"].startswith("text/plain")
    assert b"Traceback" not in reply.body
    assert await state(api, database_url, pair) == before
    assert watch.surprises() == []
    assert pair[kind] not in api["gateway"].log()
    assert await still_valid(http, api.gateway_url, pair, kind)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lambda token: b"Bearer \xe2\x98\x83", id="utf8-only"),
        pytest.param(lambda token: token + "é".encode(), id="utf8-suffix"),
        pytest.param(lambda token: token + b"\xff", id="latin1-suffix"),
        pytest.param(lambda token: "т".encode() + token[2:], id="cyrillic-lookalike"),
        pytest.param(lambda token: b"Bearer\t" + token, id="tab-not-space"),
        pytest.param(lambda token: b"Bearer Bearer " + token, id="scheme-twice"),
        pytest.param(lambda token: token + b" " + token, id="token-twice"),
        pytest.param(lambda token: token + b"x" * 8000, id="8000-bytes"),
    ],
)
async def test_odd_header_values_get_invalid_token_and_change_nothing(
    api: Cluster,
    http: aiohttp.ClientSession,
    database_url: str,
    pair: dict[str, Any],
    target: str,
    value: Callable[[bytes], bytes],
) -> None:
    """Well-formed HTTP, so the endpoint answers, in its envelope: a header that is not exactly a
    token (bare or after `Bearer `) is no token, however close it comes to one."""
    method, path, header, kind = TARGETS[target]
    before = await state(api, database_url, pair)
    watch = LogWatch(api)
    reply = await send_raw(api["gateway"].port, method, path, [header + b": " + value(pair[kind].encode())])
    assert (reply.status, reply.json()) == (401, failed(INVALID_TOKEN))
    assert reply.headers["www-authenticate"] == "Bearer"
    assert await state(api, database_url, pair) == before
    assert watch.surprises() == []
    assert await still_valid(http, api.gateway_url, pair, kind)


def nested(depth: int, inner: Any) -> bytes:
    """`inner` inside `depth` arrays, written out (orjson refuses to write past 255 levels)."""
    return b"[" * depth + orjson.dumps(inner) + b"]" * depth


def with_member(body: dict[str, Any], name: str, raw_value: bytes) -> bytes:
    return orjson.dumps(body)[:-1] + b',"' + name.encode() + b'":' + raw_value + b"}"


TOO_DEEP = 1025  # one level past orjson's limit
MIB = 1 << 20  # TOKENHUB_MAX_BODY_BYTES' default


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            lambda ok: with_member(ok, "pad", nested(TOO_DEEP, 0)),
            "Request body is not valid JSON",
            id="nested-past-the-parsers-limit",
        ),
        pytest.param(
            lambda ok: with_member(ok, "pad", b"1e400"),
            "Request body is not valid JSON",
            id="infinite-number",
        ),
        pytest.param(lambda ok: orjson.dumps(ok)[:-1], "Request body is not valid JSON", id="truncated"),
        pytest.param(
            lambda ok: with_member(ok, "pad", orjson.dumps("x" * MIB)),
            "Request body is too large",
            id="one-MiB-member",
        ),
        pytest.param(
            lambda ok: b" " * MIB + orjson.dumps(ok), "Request body is too large", id="one-MiB-of-spaces"
        ),
        pytest.param(
            lambda ok: orjson.dumps([ok]), "Request body must be a JSON object", id="inside-an-array"
        ),
        pytest.param(
            lambda ok: with_member(
                {k: v for k, v in ok.items() if k != "email"}, "email", nested(1000, ok["email"])
            ),
            "email must be a string",
            id="email-1000-arrays-deep",
        ),
    ],
)
async def test_huge_and_deeply_nested_make_bodies_spend_no_quota(
    api: Cluster,
    http: aiohttp.ClientSession,
    database_url: str,
    pair: dict[str, Any],
    account: Account,
    app_id: str,
    body: Callable[[dict[str, Any]], bytes],
    message: str,
) -> None:
    """Each body carries the account's real credentials: had the gateway read past what is wrong
    with it, a pair would be made and the quota spent."""
    before = await state(api, database_url, pair)
    reply = await send_raw(api["gateway"].port, "POST", "/v1/tokens", [], body(make_body(account, app_id)))
    assert (reply.status, reply.json()) == (400, validation(message))
    assert await state(api, database_url, pair) == before
    async with http.post(api.gateway_url + "/v1/tokens", json=make_body(account, app_id)) as control:
        assert control.status == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            lambda ok: with_member(ok, "pad", nested(TOO_DEEP, 0)),
            "Request body is not valid JSON",
            id="nested-past-the-parsers-limit",
        ),
        pytest.param(
            lambda ok: with_member(ok, "pad", orjson.dumps("x" * MIB)),
            "Request body is too large",
            id="one-MiB-member",
        ),
        pytest.param(
            lambda ok: orjson.dumps([ok]), "Request body must be a JSON object", id="inside-an-array"
        ),
        pytest.param(
            lambda ok: b'{"refreshToken":' + nested(1000, ok["refreshToken"]) + b"}",
            "refreshToken must be a string",
            id="token-1000-arrays-deep",
        ),
    ],
)
async def test_huge_and_deeply_nested_refresh_bodies_use_up_no_token(
    api: Cluster,
    http: aiohttp.ClientSession,
    database_url: str,
    pair: dict[str, Any],
    body: Callable[[dict[str, Any]], bytes],
    message: str,
) -> None:
    """Each body carries a live refresh token: had the gateway read past what is wrong with it,
    the token would be used up and a new pair written."""
    before = await state(api, database_url, pair)
    payload = body({"refreshToken": pair["refreshToken"]})
    reply = await send_raw(api["gateway"].port, "POST", "/v1/tokens/refresh", [], payload)
    assert (reply.status, reply.json()) == (400, validation(message))
    assert await state(api, database_url, pair) == before
    assert await still_valid(http, api.gateway_url, pair, "refreshToken")


# --- what the fuzzing found, pinned -----------------------------------------------------------------


@pytest.mark.parametrize("odd", [".", "..", "%2e%2e", "{", "a}b", "{x}", "a/b", "../../v1/users/1"])
async def test_an_app_id_that_is_no_plain_path_segment_is_an_unknown_app(
    api: Cluster, http: aiohttp.ClientSession, account: Account, odd: str
) -> None:
    """Braces met aiohttp's default route pattern in the registry, and "." and ".." are resolved
    away by every HTTP client: each was a 503 ApiServiceUnavailableError for a mere unknown app."""
    watch = LogWatch(api)
    async with http.post(api.gateway_url + "/v1/tokens", json=make_body(account, odd)) as reply:
        assert (reply.status, await reply.json()) == (401, failed(INVALID_CREDENTIALS))
    assert watch.surprises() == []


async def test_an_app_id_with_braces_slash_and_percent_works(
    api: Cluster, http: aiohttp.ClientSession, environment: dict[str, str], account: Account
) -> None:
    odd = add_app(environment) + "/{a}%2F"
    assert run_cli(["apps", "add", odd], environment).returncode == 0
    async with http.post(api.gateway_url + "/v1/tokens", json=make_body(account, odd)) as reply:
        assert reply.status == 200
        access = (await reply.json())["data"]["accessToken"]
    async with http.get(api.gateway_url + "/v1/auth", headers={"Authorization": access}) as reply:
        assert reply.status == 204
        assert reply.headers["X-TokenHub-App-Id"] == odd


@pytest.mark.parametrize("field", ["email", "appId"])
async def test_nul_in_a_looked_up_field_is_a_validation_error_of_the_gateway(
    api: Cluster, http: aiohttp.ClientSession, account: Account, app_id: str, field: str
) -> None:
    """Postgres text holds no NUL: the registry refused such a value, and the gateway logged an
    error for a rule it did not know. Now the gateway says what is wrong, and nothing is logged."""
    watch = LogWatch(api)
    body = make_body(account, app_id)
    body[field] = body[field].replace("@", "\x00@") if field == "email" else body[field] + "\x00"
    async with http.post(api.gateway_url + "/v1/tokens", json=body) as reply:
        assert (reply.status, await reply.json()) == (400, validation(f"{field} must not contain NUL"))
    assert watch.surprises() == []
