"""The registry's internal API. It speaks TokenHub's own vocabulary, never a dialect's."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from registry import zabbix_tokens as zt
from registry.keys import store_key, zabbix_tokens_key
from registry.voucher_routes import setup_voucher_routes
from registry.wialon_routes import setup_wialon_routes
from shared.contracts.registry import accounts
from shared.contracts.registry.accounts import AuditEvent
from shared.contracts.server import route
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


async def get_user(request: web.Request, body: accounts.UserRef) -> accounts.UserReply:
    user = await request.app[store_key].user(body.user_id)
    return accounts.UserReply(user=accounts.User.model_validate(user, from_attributes=True))


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


async def get_app(request: web.Request, body: accounts.AppRef) -> accounts.AppReply:
    return accounts.AppReply(app=accounts.App.model_validate(await request.app[store_key].app(body.app_id)))


async def append_audit(request: web.Request) -> web.Response:
    body = await read_model(request, AuditIn)
    await request.app[store_key].audit(AuditEvent.model_validate(body.model_dump()))
    return json_response({"recorded": True}, status=201)


class Secret(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: Annotated[str, Field(min_length=1, max_length=256)]


async def create_zabbix_tokens(request: web.Request) -> web.Response:
    ids = await request.app[zabbix_tokens_key].create(await read_model(request, zt.CreateRequest))
    return json_response({"ids": ids}, status=201)


async def update_zabbix_tokens(request: web.Request) -> web.Response:
    return json_response(
        {"ids": await request.app[zabbix_tokens_key].update(await read_model(request, zt.UpdateRequest))}
    )


async def delete_zabbix_tokens(request: web.Request) -> web.Response:
    return json_response(
        {"ids": await request.app[zabbix_tokens_key].delete(await read_model(request, zt.IdsRequest))}
    )


async def generate_zabbix_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[zabbix_tokens_key].generate(await read_model(request, zt.IdsRequest))
    return json_response({"tokens": tokens})


async def query_zabbix_tokens(request: web.Request) -> web.Response:
    return json_response(
        await request.app[zabbix_tokens_key].query(await read_model(request, zt.QueryRequest))
    )


async def authenticate_zabbix_token(request: web.Request) -> web.Response:
    body = await read_model(request, Secret)
    user, token_id, expires_at = await request.app[zabbix_tokens_key].authenticate(body.secret)
    return json_response({"user": user.to_wire(), "token_id": token_id, "expires_at": expires_at})


def setup_routes(app: web.Application) -> None:
    setup_voucher_routes(app)
    setup_wialon_routes(app)
    app.router.add_post("/v1/users/authenticate", authenticate)
    app.router.add_post("/v1/api-keys/authenticate", authenticate_api_key)
    app.router.add_post("/v1/audit", append_audit)
    for r in (route(accounts.GET_USER, get_user), route(accounts.GET_APP, get_app)):
        app.router.add_post(r.path, r.handle)
    app.router.add_post("/v1/zabbix-tokens/create", create_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/update", update_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/delete", delete_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/generate", generate_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/query", query_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/authenticate", authenticate_zabbix_token)
