"""The registry's zabbix-tokens endpoints: each handler takes its contract's request model and
answers its reply model (shared/contracts/registry/zabbix_tokens.py)."""

from __future__ import annotations

from aiohttp import web

from registry.keys import zabbix_tokens_key
from shared.contracts.registry import zabbix_tokens as api
from shared.contracts.server import Route, route


async def create(request: web.Request, body: api.CreateRequest) -> api.TokenIds:
    return api.TokenIds(ids=await request.app[zabbix_tokens_key].create(body))


async def update(request: web.Request, body: api.UpdateRequest) -> api.TokenIds:
    return api.TokenIds(ids=await request.app[zabbix_tokens_key].update(body))


async def delete(request: web.Request, body: api.IdsRequest) -> api.TokenIds:
    return api.TokenIds(ids=await request.app[zabbix_tokens_key].delete(body))


async def generate(request: web.Request, body: api.IdsRequest) -> api.GeneratedTokens:
    return api.GeneratedTokens(tokens=await request.app[zabbix_tokens_key].generate(body))


async def query(request: web.Request, body: api.QueryRequest) -> api.ZabbixTokenPage:
    return await request.app[zabbix_tokens_key].query(body)


async def authenticate(request: web.Request, body: api.Secret) -> api.TokenAuthenticated:
    return await request.app[zabbix_tokens_key].authenticate(body.secret)


ROUTES: list[Route] = [
    route(api.CREATE, create),
    route(api.UPDATE, update),
    route(api.DELETE, delete),
    route(api.GENERATE, generate),
    route(api.QUERY, query),
    route(api.AUTHENTICATE, authenticate),
]
