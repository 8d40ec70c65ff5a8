"""The registry's admin API (issue 17): what the gateway's admin API (`/admin/v1/`) asks of
Postgres. Every request names the signed-in actor (`actor_id`); the registry decides from the
actor's role, read per call, what it reaches (`users_reached()` in registry/migrations/0006): a
super_admin everyone, an admin itself and the users below it in the parent chain, anyone else
itself. What is out of reach is "not found" (or left out of a listing), never told apart.

Keyset pages: a listing returns `next_at`/`next_id` (None at the end), which the caller passes back
as `after_at`/`after_id`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, JsonValue

from shared.contracts.client import ServiceClient
from shared.contracts.endpoint import Endpoint, Message, Reply
from shared.contracts.registry.accounts import ClientAddr, EventName, Role

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Kind = Literal["zabbix", "wialon", "voucher"]
TokenStatus = Literal["active", "pending", "disabled", "expired", "used", "annulled", "deleted"]
UserStatus = Literal["active", "disabled"]
PageSize = Annotated[int, Field(ge=1, le=1000)]
Text = Annotated[str, Field(min_length=1, max_length=255)]
MAX_BULK = 100


class Acting(Message):
    actor_id: Id
    client_addr: ClientAddr | None = None


class AdminUser(Reply):
    id: int
    username: str
    email: str | None
    role: Role
    parent_id: int | None
    status: UserStatus
    created_at: datetime


class AdminUserReply(Reply):
    user: AdminUser


class UserPage(Reply):
    users: list[AdminUser]
    next_id: int | None  # users are paged by id, ascending


class ListUsers(Acting):
    q: Text | None = None
    role: Role | None = None
    status: UserStatus | None = None
    with_email: bool = False
    under: Id | None = None  # only this user and those below it (a Wialon parent tree's root)
    after_id: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    limit: PageSize = 50


class CreateUser(Acting):
    username: Annotated[str, Field(min_length=1, max_length=100)]
    role: Role
    email: Annotated[str, Field(max_length=254)] | None = None
    password: Annotated[str, Field(min_length=1, max_length=255)]
    parent_id: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None  # None: the actor; 0: none


class UserAction(Acting):
    user_id: Id


class SetRole(UserAction):
    role: Role


class SetStatus(UserAction):
    status: UserStatus


class SetPassword(UserAction):
    password: Annotated[str, Field(min_length=1, max_length=255)]


class UserRevoked(Reply):
    user: AdminUser
    zabbix_tokens: list[int]
    wialon_tokens: list[int]
    api_keys: int


class ListTokens(Acting):
    kind: Kind | None = None
    owner_id: Id | None = None
    q: Text | None = None
    status: TokenStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    expires_after: datetime | None = None
    expires_before: datetime | None = None
    used_after: datetime | None = None
    used_before: datetime | None = None
    after_at: datetime | None = None
    after_id: Id | None = None
    limit: PageSize = 50


class AdminToken(Reply):
    id: int
    kind: Kind
    owner_id: int
    owner: str
    name: str | None  # a voucher's code
    status: TokenStatus
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class TokenPage(Reply):
    tokens: list[AdminToken]
    next_at: datetime | None
    next_id: int | None


class TokenIds(Acting):
    ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BULK)]


class TokensChanged(Reply):
    """Of the ids given: those acted on (by kind), and those out of reach or already in that state."""

    zabbix: list[int]
    wialon: list[int]
    voucher: list[int]
    not_found: list[int]


class AdminApp(Reply):
    app_id: str
    name: str
    daily_quota: int
    access_ttl: int
    refresh_ttl: int


class AppList(Reply):
    apps: list[AdminApp]


class AppReplyOne(Reply):
    app: AdminApp


class ListApps(Acting):
    limit: PageSize = 1000


class CreateApp(Acting):
    app_id: Annotated[str, Field(min_length=1, max_length=100)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    daily_quota: Annotated[int, Field(ge=0, le=2**31 - 1)]
    access_ttl: Annotated[int, Field(ge=1, le=2**31 - 1)]
    refresh_ttl: Annotated[int, Field(ge=1, le=2**31 - 1)]


class UpdateApp(Acting):
    app_id: Annotated[str, Field(min_length=1, max_length=100)]
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    daily_quota: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    access_ttl: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    refresh_ttl: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


class ListAudit(Acting):
    user_id: Id | None = None
    event: EventName | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_at: datetime | None = None
    after_id: Id | None = None
    limit: PageSize = 50


class AuditEntry(Reply):
    id: int
    at: datetime
    event: str
    actor_id: int | None
    subject_id: int | None
    token_id: int | None
    kind: str | None
    client_addr: str | None
    details: dict[str, JsonValue]
    # The accounts' names, where the caller reaches them (None: out of reach, none, or gone).
    actor_name: str | None = None
    subject_name: str | None = None


class AuditPage(Reply):
    events: list[AuditEntry]
    next_at: datetime | None
    next_id: int | None


class StatusCount(Reply):
    kind: Kind
    status: TokenStatus
    count: int


class Hour(Reply):
    hour: datetime
    issued: int
    failed_logins: int


class Summary(Reply):
    counts: list[StatusCount]
    hourly: list[Hour]  # the last 24 hours' buckets that have anything, oldest first
    counted_at: datetime  # when the counts were taken (a summary is reused for a few seconds)


# Errors (every one): forbidden (the actor is not an active admin-capable user), not_found.
LIST_USERS = Endpoint("/v1/admin/users/list", ListUsers, UserPage, idempotent=True)
GET_USER = Endpoint("/v1/admin/users/get", UserAction, AdminUserReply, idempotent=True)
# Errors: conflict (name or e-mail taken), invalid_input.
CREATE_USER = Endpoint("/v1/admin/users/create", CreateUser, AdminUserReply, status=201)
SET_ROLE = Endpoint("/v1/admin/users/role", SetRole, AdminUserReply)
SET_STATUS = Endpoint("/v1/admin/users/status", SetStatus, AdminUserReply)
SET_PASSWORD = Endpoint("/v1/admin/users/password", SetPassword, AdminUserReply)
REVOKE_USER = Endpoint("/v1/admin/users/revoke", UserAction, UserRevoked)
LIST_TOKENS = Endpoint("/v1/admin/tokens/list", ListTokens, TokenPage, idempotent=True)
REVOKE_TOKENS = Endpoint("/v1/admin/tokens/revoke", TokenIds, TokensChanged)
DELETE_TOKENS = Endpoint("/v1/admin/tokens/delete", TokenIds, TokensChanged)
LIST_APPS = Endpoint("/v1/admin/apps/list", ListApps, AppList, idempotent=True)
CREATE_APP = Endpoint("/v1/admin/apps/create", CreateApp, AppReplyOne, status=201)
UPDATE_APP = Endpoint("/v1/admin/apps/update", UpdateApp, AppReplyOne)
LIST_AUDIT = Endpoint("/v1/admin/audit/list", ListAudit, AuditPage, idempotent=True)
SUMMARY = Endpoint("/v1/admin/summary", Acting, Summary, idempotent=True)

ENDPOINTS = (
    LIST_USERS,
    GET_USER,
    CREATE_USER,
    SET_ROLE,
    SET_STATUS,
    SET_PASSWORD,
    REVOKE_USER,
    LIST_TOKENS,
    REVOKE_TOKENS,
    DELETE_TOKENS,
    LIST_APPS,
    CREATE_APP,
    UPDATE_APP,
    LIST_AUDIT,
    SUMMARY,
)


class AdminClient(ServiceClient):
    async def admin_list_users(self, req: ListUsers) -> UserPage:
        return await self.transport.send(LIST_USERS, req)

    async def admin_get_user(self, req: UserAction) -> AdminUser:
        return (await self.transport.send(GET_USER, req)).user

    async def admin_create_user(self, req: CreateUser) -> AdminUser:
        return (await self.transport.send(CREATE_USER, req)).user

    async def admin_set_role(self, req: SetRole) -> AdminUser:
        return (await self.transport.send(SET_ROLE, req)).user

    async def admin_set_status(self, req: SetStatus) -> AdminUser:
        return (await self.transport.send(SET_STATUS, req)).user

    async def admin_set_password(self, req: SetPassword) -> AdminUser:
        return (await self.transport.send(SET_PASSWORD, req)).user

    async def admin_revoke_user(self, req: UserAction) -> UserRevoked:
        return await self.transport.send(REVOKE_USER, req)

    async def admin_list_tokens(self, req: ListTokens) -> TokenPage:
        return await self.transport.send(LIST_TOKENS, req)

    async def admin_revoke_tokens(self, req: TokenIds) -> TokensChanged:
        return await self.transport.send(REVOKE_TOKENS, req)

    async def admin_delete_tokens(self, req: TokenIds) -> TokensChanged:
        return await self.transport.send(DELETE_TOKENS, req)

    async def admin_list_apps(self, req: ListApps) -> list[AdminApp]:
        return (await self.transport.send(LIST_APPS, req)).apps

    async def admin_create_app(self, req: CreateApp) -> AdminApp:
        return (await self.transport.send(CREATE_APP, req)).app

    async def admin_update_app(self, req: UpdateApp) -> AdminApp:
        return (await self.transport.send(UPDATE_APP, req)).app

    async def admin_list_audit(self, req: ListAudit) -> AuditPage:
        return await self.transport.send(LIST_AUDIT, req)

    async def admin_summary(self, req: Acting) -> Summary:
        return await self.transport.send(SUMMARY, req)
