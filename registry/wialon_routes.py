"""The registry's internal API for Wialon tokens (issue 4), in TokenHub's vocabulary: secrets,
unix seconds, plain numbers and lists. Wialon's own names (`h`, `at`, `dur`, `fl`, `p`, `ll`,
`callMode`) are the gateway dialect's business.

    POST /v1/wialon-tokens               {actor_id, actor_flags, owner_id?, app, activates_at?,
                                          lifetime_s, flags, items, params}         201 {token}
    POST /v1/wialon-tokens/update        the same plus {secret}                         {token}
    POST /v1/wialon-tokens/delete        {actor_id, owner_id?, secret | all: true}      {tokens}
    POST /v1/wialon-tokens/list          {actor_id, owner_id?}                          {tokens}
    POST /v1/wialon-tokens/authenticate  {secret, operate_as?}                  {user, token}

A token is {id, owner_id, creator_id, secret, app, created_at, activates_at, lifetime_s,
expires_at, flags, items, params, last_used_at}: times in unix seconds (`expires_at` and
`last_used_at` null for "never"), `flags` -1 for every right. `activates_at` absent means now,
`lifetime_s` 0 no end. Every acting body may carry `client_addr` for the audit log.

Errors: forbidden (the actor may not act for that owner, or the flags are wider than
`actor_flags`, or a token that cannot log in now), not_found (no such token of that owner),
bad_credentials (no such secret), expired (the token has ended), invalid_input.
"""

from __future__ import annotations

from aiohttp import web

from registry import wialon_tokens as wt
from registry.keys import wialon_tokens_key
from shared.internal import json_response, read_model


async def create_token(request: web.Request) -> web.Response:
    token = await request.app[wialon_tokens_key].create(await read_model(request, wt.CreateRequest))
    return json_response({"token": token}, status=201)


async def update_token(request: web.Request) -> web.Response:
    token = await request.app[wialon_tokens_key].update(await read_model(request, wt.UpdateRequest))
    return json_response({"token": token})


async def delete_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[wialon_tokens_key].delete(await read_model(request, wt.DeleteRequest))
    return json_response({"tokens": tokens})


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[wialon_tokens_key].list_tokens(await read_model(request, wt.ListRequest))
    return json_response({"tokens": tokens})


async def authenticate_token(request: web.Request) -> web.Response:
    body = await read_model(request, wt.AuthenticateRequest)
    user, token = await request.app[wialon_tokens_key].authenticate(body)
    return json_response({"user": user.model_dump(), "token": token})


def setup_wialon_routes(app: web.Application) -> None:
    app.router.add_post("/v1/wialon-tokens", create_token)
    app.router.add_post("/v1/wialon-tokens/update", update_token)
    app.router.add_post("/v1/wialon-tokens/delete", delete_tokens)
    app.router.add_post("/v1/wialon-tokens/list", list_tokens)
    app.router.add_post("/v1/wialon-tokens/authenticate", authenticate_token)
