"""Accounts, apps and calls for the ChatApp in-process tests (tests/inprocess/test_chatapp_*.py):
accounts and apps are written straight into the registry's store, as `tokenhub users add` and
`apps add` would; every call goes through the in-process gateway."""

from __future__ import annotations

import io
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from pydantic import JsonValue

from registry.store import Store
from shared.postgres import create_pool
from tests.inprocess.conftest import Trio

PASSWORD = "Chat-app-pass-1"
INVALID_TOKEN: JsonValue = {
    "success": False,
    "error": {"code": "ApiInvalidTokenError", "message": "Invalid Token"},
}
INVALID_CREDENTIALS: JsonValue = {
    "success": False,
    "error": {"code": "ApiInvalidCredentialsError", "message": "Invalid email, password or appId"},
}


def validation(message: str) -> JsonValue:
    return {"success": False, "error": {"code": "ApiValidationError", "message": message}}


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    user_id: int


@dataclass(frozen=True)
class Reply:
    status: int
    body: JsonValue
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, JsonValue]:
        assert self.status == 200, (self.status, self.body)
        assert isinstance(self.body, dict)
        assert self.body["success"] is True
        data = self.body["data"]
        assert isinstance(data, dict)
        return data

    def text(self, name: str) -> str:
        value = self.data[name]
        assert isinstance(value, str)
        return value


@asynccontextmanager
async def registry_store(trio: Trio) -> AsyncIterator[Store]:
    pool = await create_pool(trio.settings.database_url, 1, 5.0)
    try:
        yield Store(pool, trio.settings.pepper)
    finally:
        await pool.close()


async def add_account(trio: Trio, password: str = PASSWORD) -> Account:
    name = f"chat-{secrets.token_hex(4)}"
    email = f"{name}@example.com"
    async with registry_store(trio) as store:
        user_id = await store.add_user(name, "user", password=password, email=email)
    return Account(email, password, user_id)


async def add_app(
    trio: Trio, daily_quota: int = 1000, access_ttl: int = 3600, refresh_ttl: int = 7200
) -> str:
    app_id = f"app-{secrets.token_hex(4)}"
    async with registry_store(trio) as store:
        await store.add_app(app_id, app_id, daily_quota, access_ttl, refresh_ttl)
    return app_id


async def call(
    trio: Trio,
    method: str,
    path: str,
    *,
    json: JsonValue = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    raw_body = data if json is None else orjson.dumps(json)
    payload = None if raw_body is None else io.BytesIO(raw_body)  # large bodies without blocking the loop
    async with trio.gateway.request(method, path, data=payload, headers=headers) as r:
        raw = await r.read()
        body: JsonValue = orjson.loads(raw) if raw else None
        return Reply(r.status, body, dict(r.headers))


async def make(trio: Trio, who: Account, app_id: str, password: str | None = None) -> Reply:
    body: JsonValue = {"email": who.email, "password": password or who.password, "appId": app_id}
    return await call(trio, "POST", "/v1/tokens", json=body)


async def check(trio: Trio, token: str) -> Reply:
    return await call(trio, "GET", "/v1/tokens/check", headers={"Authorization": token})


async def refresh(trio: Trio, token: str) -> Reply:
    return await call(trio, "POST", "/v1/tokens/refresh", headers={"Refresh": token})
