"""The registry's accounts API (shared/contracts/registry/accounts.py): password and API-key logins,
and the audit log other services append to."""

from __future__ import annotations

from aiohttp import web

from registry.keys import store_key
from shared.contracts.endpoint import Empty
from shared.contracts.registry.accounts import (
    APPEND_AUDIT,
    AUTHENTICATE,
    AUTHENTICATE_API_KEY,
    ApiKeyLogin,
    AuditEvent,
    PasswordLogin,
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


async def append_audit(request: web.Request, body: AuditEvent) -> Empty:
    await request.app[store_key].audit(body)
    return Empty()


ROUTES = (
    route(AUTHENTICATE, authenticate),
    route(AUTHENTICATE_API_KEY, authenticate_api_key),
    route(APPEND_AUDIT, append_audit),
)
