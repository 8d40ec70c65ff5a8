"""The registry's internal API. It speaks TokenHub's own vocabulary, never a dialect's."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from registry import accounts_routes
from registry import zabbix_tokens as zt
from registry.keys import store_key, zabbix_tokens_key
from registry.voucher_routes import setup_voucher_routes
from registry.wialon_routes import setup_wialon_routes
from shared.errors import InvalidInput
from shared.internal import json_response, read_model


async def get_user(request: web.Request) -> web.Response:
    try:
        user_id = int(request.match_info["user_id"])
    except ValueError as exc:
        raise InvalidInput("user id must be a number") from exc
    user = await request.app[store_key].user(user_id)
    return json_response({"user": user.model_dump()})


async def get_app(request: web.Request) -> web.Response:
    return json_response(
        {"app": (await request.app[store_key].app(request.match_info["app_id"])).model_dump()}
    )


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
    return json_response({"user": user.model_dump(), "token_id": token_id, "expires_at": expires_at})


def setup_routes(app: web.Application) -> None:
    setup_voucher_routes(app)
    setup_wialon_routes(app)
    # TRANSITIONAL (issue 14): registered one by one until every area serves its contract; then
    # add_api_routes(app, REGISTRY_API, ...) checks the table and the routes agree.
    for accounts_route in accounts_routes.ROUTES:
        app.router.add_post(accounts_route.path, accounts_route.handle)
    app.router.add_get("/v1/users/{user_id}", get_user)
    # Any character but "/" (which the issuer sends as %2F): aiohttp's default segment pattern also
    # refuses braces, and an app id with one would meet a 404 for the route, not for the app.
    app.router.add_get("/v1/apps/{app_id:[^/]+}", get_app)
    app.router.add_post("/v1/zabbix-tokens/create", create_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/update", update_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/delete", delete_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/generate", generate_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/query", query_zabbix_tokens)
    app.router.add_post("/v1/zabbix-tokens/authenticate", authenticate_zabbix_token)
