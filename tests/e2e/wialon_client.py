"""A hand-made Wialon Remote API caller (form POSTs and GETs, as a browser or curl would send them),
the users it logs in as, and the checks every reply must pass: HTTP 200, exactly
`application/json`, and either a result or `{"error": N}` with at most a `"reason"` beside it."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tests.conftest import run_cli
from tests.e2e.hotspot_client import loopback_session, random_loopback

PATH = "/wialon/ajax.html"
# 32 lowercase then 40 uppercase hexadecimal characters.
TOKEN = re.compile(r"[0-9a-f]{32}[0-9A-F]{40}")
SESSION_ID = re.compile(r"[0-9a-f]{32}")
TOKEN_FIELDS = {"h", "app", "at", "ct", "dur", "fl", "items", "p"}
ERROR_CODES = {1, 2, 4, 6, 7, 8, 10, 1003}


@dataclass(frozen=True)
class WialonUser:
    id: int
    name: str
    password: str


def new_user(env: dict[str, str], prefix: str = "wl", parent: str | None = None) -> WialonUser:
    """A user created with the real `tokenhub` command line."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    args = ["users", "add", name, "--role", "user", "--password-stdin"]
    if parent is not None:
        args += ["--parent", parent]
    result = run_cli(args, env, stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    return WialonUser(int(result.stdout.strip()), name, password)


def check_reply(status: int, content_type: str | None, raw: bytes) -> Any:
    """The body of a reply that keeps the dialect's promises; AssertionError otherwise."""
    assert status == 200, (status, raw[:300])
    assert content_type == "application/json", (content_type, raw[:300])
    assert b"Traceback" not in raw
    body = orjson.loads(raw)
    for one in body if isinstance(body, list) else [body]:
        if isinstance(one, dict) and "error" in one:
            assert set(one) <= {"error", "reason"}, one
            assert one["error"] in ERROR_CODES or one["error"] == 0, one
            assert isinstance(one.get("reason", ""), str), one
    return body


def error_of(body: Any) -> int | None:
    """N of `{"error": N}` (0 is core/logout's success), or None for a result."""
    if isinstance(body, dict) and set(body) <= {"error", "reason"} and "error" in body:
        code: int = body["error"]
        return code
    return None


@dataclass
class Wialon:
    http: aiohttp.ClientSession
    gateway_url: str
    address: str  # the loopback address it calls from

    async def send(
        self,
        method: str = "POST",
        query: dict[str, str] | list[tuple[str, str]] | None = None,
        **request: Any,
    ) -> Any:
        async with self.http.request(method, self.gateway_url + PATH, params=query, **request) as r:
            raw = await r.read()
            return check_reply(r.status, r.headers.get("Content-Type"), raw)

    async def call(self, svc: str, params: Any = None, sid: str | None = None, *, get: bool = False) -> Any:
        """One service call, form-encoded in the body (or in the query string with `get`)."""
        fields = {"svc": svc}
        if params is not None:
            fields["params"] = params if isinstance(params, str) else orjson.dumps(params).decode()
        if sid is not None:
            fields["sid"] = sid
        if get:
            return await self.send("GET", query=fields)
        return await self.send("POST", data=fields)

    async def ok(self, svc: str, params: Any = None, sid: str | None = None) -> Any:
        body = await self.call(svc, params, sid)
        assert error_of(body) is None, (svc, body)
        return body

    async def error(self, svc: str, params: Any = None, sid: str | None = None) -> int | None:
        return error_of(await self.call(svc, params, sid))

    async def login(self, user: WialonUser) -> str:
        body = await self.ok("core/login", {"user": user.name, "password": user.password})
        eid: str = body["eid"]
        return eid

    async def token_login(self, h: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = await self.ok("token/login", {"token": h, **extra})
        return body

    async def create(self, sid: str, **spec: Any) -> dict[str, Any]:
        params = {"callMode": "create", "app": "tests", "at": 0, "dur": 0, "fl": -1, "p": "{}", **spec}
        token: dict[str, Any] = await self.ok("token/update", params, sid)
        return token

    async def tokens(self, sid: str, **params: Any) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = await self.ok("token/list", params, sid)
        return listed


@contextlib.asynccontextmanager
async def wialon_client(gateway_url: str, address: str | None = None) -> AsyncIterator[Wialon]:
    """A caller from a loopback address of its own: failed logins count per address."""
    address = address or random_loopback()
    async with loopback_session(address) as http:
        yield Wialon(http, gateway_url, address)
