"""The registry's accounts API (shared/contracts/registry/accounts.py): users (password and API-key
logins, lookups by id), apps, and the audit log other services append to."""

from __future__ import annotations

from aiohttp import web

from registry.keys import store_key
from shared.contracts.endpoint import Empty
from shared.contracts.registry.accounts import (
    APPEND_AUDIT,
    AUTHENTICATE,
    AUTHENTICATE_API_KEY,
    GET_APP,
    GET_USER,
    ApiKeyLogin,
    AppRef,
    AppReply,
    AuditEvent,
    PasswordLogin,
    UserRef,
    UserReply,
)
from shared.contracts.server import route


async def authenticate(request: web.Request, body: PasswordLogin) -> UserReply:
    """bad_credentials for an unknown account, a wrong password or a disabled account alike.
    Records login_succeeded or login_failed."""
    user = await request.app[store_key].authenticate(
        body.password,
        username=body.username,
        email=body.email,
        realm=body.realm,
        client_addr=body.client_addr,
    )
    return UserReply(user=user)


async def authenticate_api_key(request: web.Request, body: ApiKeyLogin) -> UserReply:
    return UserReply(user=await request.app[store_key].user_by_api_key(body.key))


async def get_user(request: web.Request, body: UserRef) -> UserReply:
    return UserReply(user=await request.app[store_key].user(body.user_id))


async def get_app(request: web.Request, body: AppRef) -> AppReply:
    return AppReply(app=await request.app[store_key].app(body.app_id))


async def append_audit(request: web.Request, body: AuditEvent) -> Empty:
    await request.app[store_key].audit(body)
    return Empty()


ROUTES = (
    route(AUTHENTICATE, authenticate),
    route(AUTHENTICATE_API_KEY, authenticate_api_key),
    route(GET_USER, get_user),
    route(GET_APP, get_app),
    route(APPEND_AUDIT, append_audit),
)
