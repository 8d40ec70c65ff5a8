"""The internal API between services, end to end over loopback: a tiny app built like the real
services (`base_app` + key and error middlewares) and the `InternalClient` that callers use.

Also the JSON log format, as written while such a request is served.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from pydantic import JsonValue

from shared.contracts.endpoint import Empty, Endpoint, Message, Reply
from shared.contracts.server import route
from shared.errors import InvalidInput, NameTaken, TokenHubError, Unavailable
from shared.internal import (
    INTERNAL_KEY_HEADER,
    KEY_REFUSED,
    InternalClient,
    domain_error_middleware,
    internal_key_middleware,
    json_response,
)
from shared.logging import REQUEST_ID_HEADER, JsonFormatter, request_id_var, setup_logging
from shared.settings import Settings
from shared.web import base_app

KEY = "unit-internal-key-0123456789abcdef"
TRACEBACK_SECRET = "secret-detail-only-for-the-log"
TARGET = "unit-backend"

unit_log = logging.getLogger("tokenhub.unit")


@dataclass
class State:
    ready: bool = True
    seen: list[dict[str, str]] = field(default_factory=list)


state_key = web.AppKey("unit_state", State)


async def readiness(app: web.Application) -> dict[str, bool]:
    return {"store": app[state_key].ready}


class Seen(Reply):
    """What the handler saw of the request id: in its context and in the header."""

    ok: bool
    request_id_var: str
    header: str


class Body(Message):
    name: str
    n: list[int]
    nested: dict[str, JsonValue]


class Got(Reply):
    got: Body


class WrongShape(Reply):
    """What /echo does not answer: a reply off the contract."""

    missing: int


# The app's contract: the same Endpoint objects the client sends with.
ECHO = Endpoint("/echo", Empty, Seen)
ECHO_BODY = Endpoint("/echo-body", Body, Got, status=201)
CONFLICT = Endpoint("/conflict", Empty, Empty)
BOOM = Endpoint("/boom", Empty, Empty)
SLOW = Endpoint("/slow", Empty, Empty)
NOT_OURS = Endpoint("/not-ours", Empty, Empty)
ODD_FIELDS = Endpoint("/odd-fields", Empty, Empty)
OFF_CONTRACT = Endpoint("/echo", Empty, WrongShape)
NO_ROUTE = Endpoint("/no-such-route", Empty, Empty)


async def echo(request: web.Request, body: Empty) -> Seen:
    seen = {"request_id_var": request_id_var.get(), "header": request.headers.get(REQUEST_ID_HEADER, "")}
    request.app[state_key].seen.append(seen)
    unit_log.info("handled %s", "echo", extra={"answer": 42})
    return Seen(ok=True, **seen)


async def echo_body(request: web.Request, body: Body) -> Got:
    return Got(got=body)


async def conflict(request: web.Request, body: Empty) -> Empty:
    raise NameTaken("x", owner_id=7, name="n")


async def boom(request: web.Request, body: Empty) -> Empty:
    raise RuntimeError(TRACEBACK_SECRET)


async def slow(request: web.Request, body: Empty) -> Empty:
    await asyncio.sleep(3)
    return Empty()


async def odd_fields(request: web.Request) -> web.Response:
    """A well-formed error reply whose fields happen to hold a key named `message`."""
    body: JsonValue = {
        "error": {"code": "conflict", "kind": "conflict", "message": "taken", "fields": {"message": "dup"}}
    }
    return json_response(body, status=409)


async def not_our_format(request: web.Request) -> web.Response:
    return web.Response(text="<html>bad gateway</html>", status=502, content_type="text/html")


def make_app(state: State) -> web.Application:
    app = base_app("registry", Settings(), readiness, internal_key_middleware(KEY), domain_error_middleware)
    app[state_key] = state
    for served in (
        route(ECHO, echo),
        route(ECHO_BODY, echo_body),
        route(CONFLICT, conflict),
        route(BOOM, boom),
        route(SLOW, slow),
    ):
        app.router.add_post(served.path, served.handle)
    app.router.add_post(NOT_OURS.path, not_our_format)
    app.router.add_post(ODD_FIELDS.path, odd_fields)
    return app


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
async def server(state: State) -> AsyncIterator[TestServer]:
    test_server = TestServer(make_app(state))
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("/"))


async def started_client(base_url: str, key: str = KEY, timeout: float = 5.0) -> InternalClient:
    client = InternalClient(TARGET, base_url, key, timeout)
    await client.start()
    return client


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[InternalClient]:
    internal = await started_client(base_url)
    yield internal
    await internal.close()


@pytest.fixture
async def wrong_key_client(base_url: str) -> AsyncIterator[InternalClient]:
    internal = await started_client(base_url, key="not-the-right-key-0123456789")
    yield internal
    await internal.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    yield session
    await session.close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """JSON log lines of the loggers a request writes to, captured in memory."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("registry"))
    loggers = [logging.getLogger(name) for name in ("tokenhub.unit", "tokenhub.access", "shared.internal")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def log_entries(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # one whole JSON object per line, nothing else
        assert isinstance(entry, dict)
        entries.append(entry)
    return entries


def backend_errors() -> float:
    value = REGISTRY.get_sample_value("tokenhub_backend_unavailable_total", {"target": TARGET})
    return float(value or 0.0)


# --- the key ----------------------------------------------------------------------------------


async def test_right_key_works(client: InternalClient) -> None:
    reply = await client.send(ECHO, Empty())
    assert reply.ok is True


async def test_json_body_goes_both_ways(client: InternalClient) -> None:
    body = Body(name="caf\u00e9", n=[1, 2, 3], nested={"ok": None})
    assert await client.send(ECHO_BODY, body) == Got(got=body)


@pytest.mark.parametrize("raw", [b"[1, 2, 3]", b"not json", b"", b'{"name": "x"}'])
async def test_body_not_of_the_model_is_invalid_input(
    http: aiohttp.ClientSession, server: TestServer, raw: bytes
) -> None:
    headers = {INTERNAL_KEY_HEADER: KEY, "Content-Type": "application/json"}
    async with http.post(server.make_url(ECHO_BODY.path), data=raw, headers=headers) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"]["code"] == InvalidInput.code
    assert body["error"]["fields"]["problems"]


async def test_wrong_key_is_unavailable_for_the_client(wrong_key_client: InternalClient) -> None:
    before = backend_errors()
    with pytest.raises(Unavailable, match="401"):
        await wrong_key_client.send(ECHO, Empty())
    assert backend_errors() == before + 1


async def test_wrong_key_does_not_reach_the_handler(wrong_key_client: InternalClient, state: State) -> None:
    with pytest.raises(Unavailable):
        await wrong_key_client.send(CONFLICT, Empty())  # would be NameTaken past the key check
    with pytest.raises(Unavailable):
        await wrong_key_client.send(ECHO, Empty())
    assert state.seen == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {INTERNAL_KEY_HEADER: "not-the-right-key"},
        {INTERNAL_KEY_HEADER: ""},
        {INTERNAL_KEY_HEADER: KEY + "x"},
    ],
)
async def test_wrong_or_missing_key_is_http_401(
    http: aiohttp.ClientSession, server: TestServer, headers: dict[str, str]
) -> None:
    async with http.post(server.make_url("/echo"), json={}, headers=headers) as response:
        assert response.status == 401
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["error"]["code"] == KEY_REFUSED


async def test_right_key_over_raw_http(http: aiohttp.ClientSession, server: TestServer) -> None:
    async with http.post(server.make_url("/echo"), json={}, headers={INTERNAL_KEY_HEADER: KEY}) as response:
        assert response.status == 200
        assert (await response.json())["ok"] is True


# --- request ids ------------------------------------------------------------------------------


async def test_request_id_travels_to_the_handler(client: InternalClient, state: State) -> None:
    token = request_id_var.set("req-abc.123:x")
    try:
        reply = await client.send(ECHO, Empty())
    finally:
        request_id_var.reset(token)
    assert reply.header == "req-abc.123:x"
    assert reply.request_id_var == "req-abc.123:x"
    assert state.seen == [{"request_id_var": "req-abc.123:x", "header": "req-abc.123:x"}]


async def test_request_id_is_echoed_in_the_response(http: aiohttp.ClientSession, server: TestServer) -> None:
    headers = {INTERNAL_KEY_HEADER: KEY, REQUEST_ID_HEADER: "abc-123"}
    async with http.post(server.make_url("/echo"), json={}, headers=headers) as response:
        assert response.headers[REQUEST_ID_HEADER] == "abc-123"
        assert (await response.json())["request_id_var"] == "abc-123"


@pytest.mark.parametrize("incoming", [None, "has spaces", "x" * 65, "semi;colon", "new\u00e9"])
async def test_unacceptable_request_id_is_replaced(
    http: aiohttp.ClientSession, server: TestServer, incoming: str | None
) -> None:
    headers = {INTERNAL_KEY_HEADER: KEY}
    if incoming is not None:
        headers[REQUEST_ID_HEADER] = incoming
    async with http.post(server.make_url("/echo"), json={}, headers=headers) as response:
        assigned = response.headers[REQUEST_ID_HEADER]
        reply = await response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", assigned)
    assert reply["request_id_var"] == assigned


async def test_request_id_on_401_and_error_replies(http: aiohttp.ClientSession, server: TestServer) -> None:
    async with http.post(
        server.make_url("/echo"), json={}, headers={REQUEST_ID_HEADER: "rid-401"}
    ) as response:
        assert response.status == 401
        assert response.headers[REQUEST_ID_HEADER] == "rid-401"
    headers = {INTERNAL_KEY_HEADER: KEY, REQUEST_ID_HEADER: "rid-409"}
    async with http.post(server.make_url("/conflict"), json={}, headers=headers) as response:
        assert response.status == 409
        assert response.headers[REQUEST_ID_HEADER] == "rid-409"


# --- domain errors and bugs -------------------------------------------------------------------


async def test_domain_error_comes_back_as_the_same_class(client: InternalClient) -> None:
    with pytest.raises(NameTaken) as excinfo:
        await client.send(CONFLICT, Empty())
    assert type(excinfo.value) is NameTaken
    assert excinfo.value.message == "x"
    assert (excinfo.value.owner_id, excinfo.value.name, excinfo.value.position) == (7, "n", None)


async def test_domain_error_over_raw_http(http: aiohttp.ClientSession, server: TestServer) -> None:
    async with http.post(
        server.make_url("/conflict"), json={}, headers={INTERNAL_KEY_HEADER: KEY}
    ) as response:
        assert response.status == 409
        body = await response.json()
    assert body == {
        "error": {
            "code": "conflict",
            "kind": "name_taken",
            "message": "x",
            "fields": {"owner_id": 7, "name": "n", "position": None},
        }
    }


async def test_unhandled_exception_is_an_internal_error(client: InternalClient) -> None:
    before = backend_errors()
    with pytest.raises(TokenHubError) as excinfo:
        await client.send(BOOM, Empty())
    assert type(excinfo.value) is TokenHubError
    assert excinfo.value.code == "internal"
    assert TRACEBACK_SECRET not in excinfo.value.message
    assert backend_errors() == before  # the target answered: not "unavailable"


async def test_unhandled_exception_gives_json_500_without_traceback(
    http: aiohttp.ClientSession, server: TestServer
) -> None:
    async with http.post(server.make_url("/boom"), json={}, headers={INTERNAL_KEY_HEADER: KEY}) as response:
        assert response.status == 500
        assert response.content_type == "application/json"
        text = await response.text()
    assert json.loads(text) == {
        "error": {"code": "internal", "kind": "internal", "message": "internal error", "fields": {}}
    }
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert TRACEBACK_SECRET not in text


async def test_error_reply_with_any_fields_is_a_domain_error(client: InternalClient) -> None:
    """`send` returns the reply or raises a TokenHubError; a `message` key among the fields of a
    reply must not make it raise a TypeError instead."""
    with pytest.raises(TokenHubError) as excinfo:
        await client.send(ODD_FIELDS, Empty())
    assert excinfo.value.message == "taken"


async def test_reply_not_in_our_format_is_unavailable(client: InternalClient) -> None:
    with pytest.raises(Unavailable, match="502"):
        await client.send(NOT_OURS, Empty())


async def test_reply_off_the_contract_is_an_internal_error(client: InternalClient) -> None:
    """A 2xx reply that does not fit the endpoint's reply model: the two sides disagree (a bug, a
    half-done upgrade), which is counted against the target and never handed on half-read."""
    before = backend_errors()
    with pytest.raises(TokenHubError, match="off contract") as excinfo:
        await client.send(OFF_CONTRACT, Empty())
    assert type(excinfo.value) is TokenHubError
    assert backend_errors() == before + 1


# --- a target that does not answer ------------------------------------------------------------


async def test_closed_port_is_unavailable_quickly(closed_port: int) -> None:
    internal = await started_client(f"http://127.0.0.1:{closed_port}", timeout=5.0)
    try:
        before = backend_errors()
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await internal.send(ECHO, Empty())
        assert time.monotonic() - started < 2.0
        assert backend_errors() == before + 1
        assert await internal.ready() is False
    finally:
        await internal.close()


async def test_slow_handler_is_unavailable_after_the_timeout(base_url: str) -> None:
    internal = await started_client(base_url, timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await internal.send(SLOW, Empty())
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 2.0
    finally:
        await internal.close()


# --- probes and metrics -----------------------------------------------------------------------


async def test_healthz_without_key(http: aiohttp.ClientSession, server: TestServer) -> None:
    async with http.get(server.make_url("/healthz")) as response:
        assert response.status == 200
        assert await response.json() == {"status": "alive", "service": "registry", "checks": {}}


async def test_metrics_without_key(
    http: aiohttp.ClientSession, server: TestServer, client: InternalClient
) -> None:
    await client.send(ECHO, Empty())
    async with http.get(server.make_url("/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert "tokenhub_http_requests_total{" in text
    assert 'service="registry"' in text
    assert 'route="/echo"' in text
    assert "tokenhub_http_request_duration_seconds_bucket{" in text


async def test_readyz_follows_the_readiness_callback(
    http: aiohttp.ClientSession, server: TestServer, client: InternalClient, state: State
) -> None:
    state.ready = False
    async with http.get(server.make_url("/readyz")) as response:
        assert response.status == 503
        assert await response.json() == {"status": "not ready", "checks": {"store": False}}
    assert await client.ready() is False

    state.ready = True
    async with http.get(server.make_url("/readyz")) as response:
        assert response.status == 200
        assert await response.json() == {"status": "ready", "checks": {"store": True}}
    assert await client.ready() is True


# --- JSON logs --------------------------------------------------------------------------------


async def test_log_lines_inside_a_request_carry_its_request_id(
    client: InternalClient, json_log: io.StringIO
) -> None:
    token = request_id_var.set("log-req-1")
    try:
        await client.send(ECHO, Empty())
    finally:
        request_id_var.reset(token)
    unit_log.info("after the request")

    entries = log_entries(json_log)
    handled = [e for e in entries if e["msg"] == "handled echo"]
    assert len(handled) == 1
    assert handled[0]["request_id"] == "log-req-1"
    assert handled[0]["service"] == "registry"
    assert handled[0]["level"] == "info"
    assert handled[0]["logger"] == "tokenhub.unit"
    assert handled[0]["answer"] == 42
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", handled[0]["ts"])

    # At INFO an answered request is only counted; a refused one is logged, with its request id.
    assert [e for e in entries if e["logger"] == "tokenhub.access"] == []
    token = request_id_var.set("log-req-2")
    try:
        with pytest.raises(TokenHubError):
            await client.send(NO_ROUTE, Empty())
    finally:
        request_id_var.reset(token)
    access = [e for e in log_entries(json_log) if e["logger"] == "tokenhub.access"]
    assert len(access) == 1
    assert access[0]["msg"] == "POST /no-such-route 404"
    assert access[0]["status"] == 404
    assert access[0]["level"] == "info"
    assert access[0]["request_id"] == "log-req-2"
    assert isinstance(access[0]["duration_ms"], float | int)

    after = [e for e in entries if e["msg"] == "after the request"]
    assert after[0]["request_id"] == "-"


async def test_traceback_goes_to_one_log_line(client: InternalClient, json_log: io.StringIO) -> None:
    token = request_id_var.set("log-req-boom")
    try:
        with pytest.raises(TokenHubError):
            await client.send(BOOM, Empty())
    finally:
        request_id_var.reset(token)
    entries = log_entries(json_log)
    failures = [e for e in entries if e["logger"] == "shared.internal"]
    assert len(failures) == 1
    assert failures[0]["level"] == "error"
    assert failures[0]["request_id"] == "log-req-boom"
    assert failures[0]["msg"] == "unhandled error in POST /boom"
    assert "Traceback" in failures[0]["exc"]
    assert TRACEBACK_SECRET in failures[0]["exc"]


def test_formatter_keeps_one_object_per_line() -> None:
    formatter = JsonFormatter("svc")
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "tokenhub.x", logging.WARNING, __file__, 1, "two\nlines %s", ("\u00e9",), exc_info
    )
    record.custom = {"k": object()}  # not JSON-serialisable: written as its str()
    record.count = 3
    token = request_id_var.set("fmt-1")
    try:
        line = formatter.format(record)
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "two\nlines \u00e9"
    assert entry["level"] == "warning"
    assert entry["service"] == "svc"
    assert entry["request_id"] == "fmt-1"
    assert "second line" in entry["exc"]
    assert entry["custom"]["k"].startswith("<object object")
    assert entry["count"] == 3
    assert "args" not in entry
    assert "exc_info" not in entry


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_setup_logging_installs_one_json_handler() -> None:
    setup_logging("issuer", "debug")
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert len(root.handlers) == 1
    formatter = root.handlers[0].formatter
    assert isinstance(formatter, JsonFormatter)
    assert formatter.service == "issuer"
