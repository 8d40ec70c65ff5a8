"""The registry's internal API for Wialon tokens (issue 4): the handlers of the endpoints that
shared/contracts/registry/wialon_tokens.py lists, where their paths, models and errors are."""

from __future__ import annotations

from aiohttp import web

from registry.keys import wialon_tokens_key
from shared.contracts.registry import wialon_tokens as contract
from shared.contracts.server import Route, route


async def create_token(request: web.Request, body: contract.CreateToken) -> contract.TokenReply:
    return contract.TokenReply(token=await request.app[wialon_tokens_key].create(body))


async def update_token(request: web.Request, body: contract.UpdateToken) -> contract.TokenReply:
    return contract.TokenReply(token=await request.app[wialon_tokens_key].update(body))


async def delete_tokens(request: web.Request, body: contract.DeleteTokens) -> contract.TokensDeleted:
    return contract.TokensDeleted(tokens=await request.app[wialon_tokens_key].delete(body))


async def list_tokens(request: web.Request, body: contract.ListTokens) -> contract.TokenList:
    return contract.TokenList(tokens=await request.app[wialon_tokens_key].list_tokens(body))


async def authenticate_token(request: web.Request, body: contract.TokenLogin) -> contract.TokenLoggedIn:
    return await request.app[wialon_tokens_key].authenticate(body)


ROUTES: list[Route] = [
    route(contract.CREATE, create_token),
    route(contract.UPDATE, update_token),
    route(contract.DELETE, delete_tokens),
    route(contract.LIST, list_tokens),
    route(contract.AUTHENTICATE, authenticate_token),
]
