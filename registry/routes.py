"""The registry's internal API. It speaks TokenHub's own vocabulary, never a dialect's."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from registry import zabbix_routes
from registry.keys import store_key
from registry.voucher_routes import setup_voucher_routes
from registry.wialon_routes import setup_wialon_routes
from shared.contracts.registry.accounts import AuditEvent
from shared.errors import InvalidInput
from shared.internal import json_response, read_model


class PasswordLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str
    username: str | None = None
    email: str | None = None
    # Which login this is (the caller's session realm) and from where: for the audit log.
    realm: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    client_addr: str | None = Field(None, max_length=64)


async def authenticate(request: web.Request) -> web.Response:
    """{user}; bad_credentials for an unknown account, a wrong password or a disabled account alike.
    Records login_succeeded or login_failed."""
    body = await read_model(request, PasswordLogin)
    user = await request.app[store_key].authenticate(
        body.password,
        username=body.username,
        email=body.email,
        realm=body.realm,
        client_addr=body.client_addr,
    )
    return json_response({"user": user.to_wire()})


async def get_user(request: web.Request) -> web.Response:
    try:
        user_id = int(request.match_info["user_id"])
    except ValueError as exc:
        raise InvalidInput("user id must be a number") from exc
    user = await request.app[store_key].user(user_id)
    return json_response({"user": user.to_wire()})


class ApiKeyLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=256)


class AuditIn(BaseModel):
    """An event another service witnessed (a refresh token reused, a quota refused...)."""

    model_config = ConfigDict(extra="forbid")
    event: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    actor_id: int | None = None
    subject_id: int | None = None
    token_id: int | None = None
    kind: str | None = Field(None, max_length=32)
    client_addr: str | None = Field(None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict)


async def authenticate_api_key(request: web.Request) -> web.Response:
    body = await read_model(request, ApiKeyLogin)
    user = await request.app[store_key].user_by_api_key(body.key)
    return json_response({"user": user.to_wire()})


async def get_app(request: web.Request) -> web.Response:
    return json_response({"app": await request.app[store_key].app(request.match_info["app_id"])})


async def append_audit(request: web.Request) -> web.Response:
    body = await read_model(request, AuditIn)
    await request.app[store_key].audit(AuditEvent.model_validate(body.model_dump()))
    return json_response({"recorded": True}, status=201)


def setup_routes(app: web.Application) -> None:
    setup_voucher_routes(app)
    setup_wialon_routes(app)
    app.router.add_post("/v1/users/authenticate", authenticate)
    app.router.add_get("/v1/users/{user_id}", get_user)
    app.router.add_post("/v1/api-keys/authenticate", authenticate_api_key)
    # Any character but "/" (which the issuer sends as %2F): aiohttp's default segment pattern also
    # refuses braces, and an app id with one would meet a 404 for the route, not for the app.
    app.router.add_get("/v1/apps/{app_id:[^/]+}", get_app)
    app.router.add_post("/v1/audit", append_audit)
    for r in zabbix_routes.ROUTES:
        app.router.add_post(r.path, r.handle)
