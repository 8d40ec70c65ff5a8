"""The registry's admin API (shared/contracts/registry/admin.py): one thin handler per endpoint over
registry/admin.py, which decides who may do what."""

from __future__ import annotations

from aiohttp import web

from registry.keys import admin_store_key
from shared.contracts.registry import admin as api
from shared.contracts.server import Route, route


async def list_users(request: web.Request, body: api.ListUsers) -> api.UserPage:
    return await request.app[admin_store_key].list_users(body)


async def get_user(request: web.Request, body: api.UserAction) -> api.AdminUserReply:
    return api.AdminUserReply(user=await request.app[admin_store_key].get_user(body))


async def create_user(request: web.Request, body: api.CreateUser) -> api.AdminUserReply:
    return api.AdminUserReply(user=await request.app[admin_store_key].create_user(body))


async def set_role(request: web.Request, body: api.SetRole) -> api.AdminUserReply:
    return api.AdminUserReply(user=await request.app[admin_store_key].set_role(body))


async def set_status(request: web.Request, body: api.SetStatus) -> api.AdminUserReply:
    return api.AdminUserReply(user=await request.app[admin_store_key].set_status(body))


async def set_password(request: web.Request, body: api.SetPassword) -> api.AdminUserReply:
    return api.AdminUserReply(user=await request.app[admin_store_key].set_password(body))


async def revoke_user(request: web.Request, body: api.UserAction) -> api.UserRevoked:
    return await request.app[admin_store_key].revoke_user(body)


async def list_tokens(request: web.Request, body: api.ListTokens) -> api.TokenPage:
    return await request.app[admin_store_key].list_tokens(body)


async def revoke_tokens(request: web.Request, body: api.TokenIds) -> api.TokensChanged:
    return await request.app[admin_store_key].revoke_tokens(body)


async def delete_tokens(request: web.Request, body: api.TokenIds) -> api.TokensChanged:
    return await request.app[admin_store_key].delete_tokens(body)


async def list_apps(request: web.Request, body: api.ListApps) -> api.AppList:
    return api.AppList(apps=await request.app[admin_store_key].list_apps(body))


async def create_app(request: web.Request, body: api.CreateApp) -> api.AppReplyOne:
    return api.AppReplyOne(app=await request.app[admin_store_key].create_app(body))


async def update_app(request: web.Request, body: api.UpdateApp) -> api.AppReplyOne:
    return api.AppReplyOne(app=await request.app[admin_store_key].update_app(body))


async def list_audit(request: web.Request, body: api.ListAudit) -> api.AuditPage:
    return await request.app[admin_store_key].list_audit(body)


async def summary(request: web.Request, body: api.Acting) -> api.Summary:
    return await request.app[admin_store_key].summary(body)


ROUTES: tuple[Route, ...] = (
    route(api.LIST_USERS, list_users),
    route(api.GET_USER, get_user),
    route(api.CREATE_USER, create_user),
    route(api.SET_ROLE, set_role),
    route(api.SET_STATUS, set_status),
    route(api.SET_PASSWORD, set_password),
    route(api.REVOKE_USER, revoke_user),
    route(api.LIST_TOKENS, list_tokens),
    route(api.REVOKE_TOKENS, revoke_tokens),
    route(api.DELETE_TOKENS, delete_tokens),
    route(api.LIST_APPS, list_apps),
    route(api.CREATE_APP, create_app),
    route(api.UPDATE_APP, update_app),
    route(api.LIST_AUDIT, list_audit),
    route(api.SUMMARY, summary),
)
