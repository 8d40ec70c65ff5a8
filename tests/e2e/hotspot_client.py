"""A caller of the gateway's hotspot endpoint, as an operator's portal would be, plus the checks
every reply must pass (the success or the error envelope, with a matching HTTP status)."""

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

PATH = "/hotspot/api"
CODE = re.compile(r"[1-9][0-9]{9}")
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
VOUCHER_FIELDS = {
    "token",
    "created_at",
    "used_at",
    "expired_at",
    "multiple",
    "validity",
    "repaid_at",
    "mac",
    "u_id",
}
# The dialect's error codes and their HTTP statuses (docs/hotspot.md).
ERROR_STATUS = {
    "invalid_request": 400,
    "unknown_method": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "voucher_used": 409,
    "voucher_repaid": 410,
    "voucher_deleted": 410,
    "voucher_expired": 410,
    "payload_too_large": 413,
    "too_many_attempts": 429,
    "service_unavailable": 503,
    "internal_error": 503,
}


def random_loopback() -> str:
    """A loopback address of the test's own: throttles count per client address, and a test's
    failed guesses must not block another test."""
    return f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def random_mac() -> str:
    """A locally administered unicast MAC: throttles also count per MAC, so a test that expects
    unknown codes uses devices of its own."""
    return "02:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(5))


def loopback_session(address: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


@contextlib.asynccontextmanager
async def hotspot_client(gateway_url: str, address: str | None = None) -> AsyncIterator[Hotspot]:
    address = address or random_loopback()
    async with loopback_session(address) as http:
        yield Hotspot(http, gateway_url, address)


def check_envelope(status: int, body: Any) -> None:
    """Raise AssertionError unless `body` is exactly one of the two envelopes and fits `status`."""
    assert isinstance(body, dict), body
    if body.get("status") == "success":
        assert status == 200, (status, body)
        assert set(body) == {"status", "data"}, body
        data = body["data"]
        assert isinstance(data, dict), body
        assert list(data) == [str(i) for i in range(len(data))], list(data)[:10]
        assert all(isinstance(item, dict) for item in data.values()), body
    else:
        assert body.get("status") == "error", body
        assert set(body) == {"status", "error"}, body
        error = body["error"]
        assert isinstance(error, dict), body
        assert set(error) == {"code", "message"}, body
        assert isinstance(error["message"], str), body
        assert error["code"] in ERROR_STATUS, body
        assert status == ERROR_STATUS[error["code"]], (status, body)


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The success envelope's data, in position order."""
        assert self.body.get("status") == "success", (self.status, self.body)
        data: dict[str, dict[str, Any]] = self.body["data"]
        return [data[str(i)] for i in range(len(data))]

    @property
    def item(self) -> dict[str, Any]:
        items = self.items
        assert len(items) == 1, items
        return items[0]

    @property
    def tokens(self) -> list[str]:
        return [item["token"] for item in self.items]

    @property
    def error_code(self) -> str:
        assert self.body.get("status") == "error", (self.status, self.body)
        code: str = self.body["error"]["code"]
        return code


@dataclass
class Hotspot:
    http: aiohttp.ClientSession
    gateway_url: str
    address: str  # the loopback address it calls from

    async def send(self, **request: Any) -> Reply:
        """POST anything to the endpoint; the reply must be inside the envelope."""
        async with self.http.post(self.gateway_url + PATH, **request) as r:
            raw = await r.read()
            status, headers = r.status, dict(r.headers)
        assert headers.get("Content-Type", "").startswith("application/json"), (status, raw[:200])
        body = orjson.loads(raw)
        check_envelope(status, body)
        return Reply(status, body, headers)

    async def call(
        self, api_token: str | None, method: str, parameters: Any = None, *, form: bool = False
    ) -> Reply:
        envelope: dict[str, Any] = {"method": method}
        if api_token is not None:
            envelope["api_token"] = api_token
        if parameters is not None:
            envelope["parameters"] = orjson.dumps(parameters).decode() if form else parameters
        if form:
            return await self.send(data=envelope)
        return await self.send(json=envelope)

    async def ok(self, api_token: str, method: str, parameters: Any = None) -> Reply:
        reply = await self.call(api_token, method, parameters)
        assert reply.status == 200, (method, parameters, reply.body)
        return reply

    async def create(self, api_token: str, count: int = 1, **parameters: Any) -> list[str]:
        reply = await self.ok(api_token, "createtokens", {"count": count, **parameters})
        return reply.tokens

    async def voucher(self, api_token: str, code: str) -> dict[str, Any] | None:
        """The voucher as gettokens shows it, or None if it is not listed (unknown or deleted)."""
        items = (await self.ok(api_token, "gettokens", {"token": code})).items
        return items[0] if items else None


@dataclass(frozen=True)
class Operator:
    id: int
    name: str
    api_token: str


def new_operator(environment: dict[str, str], role: str = "admin") -> Operator:
    """A user with an API key, made with the real `tokenhub` command line."""
    name = f"hotspot-{secrets.token_hex(4)}"
    added = run_cli(["users", "add", name, "--role", role], environment)
    assert added.returncode == 0, added.stderr
    key = run_cli(["users", "api-key", name], environment)
    assert key.returncode == 0, key.stderr
    return Operator(int(added.stdout.strip()), name, key.stdout.strip())
