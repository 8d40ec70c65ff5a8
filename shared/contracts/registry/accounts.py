"""The registry's accounts: users (password and API-key logins), apps, and the audit log that other
services append to."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from shared.contracts.client import ServiceClient
from shared.contracts.endpoint import Empty, Endpoint, Message, Reply

Role = Literal["super_admin", "admin", "user", "guest"]
UserId = Annotated[int, Field(ge=0, le=2**63 - 1)]
# A client's address as the gateway saw it ("-" when it could not tell).
ClientAddr = Annotated[str, Field(max_length=64)]
Realm = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
EventName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class User(Reply):
    id: int
    username: str
    email: str | None
    role: Role
    parent_id: int | None
    status: str


class UserReply(Reply):
    user: User


class PasswordLogin(Message):
    password: str
    username: str | None = None
    email: str | None = None
    # Which login this is (the caller's session realm) and from where: for the audit log.
    realm: Realm | None = None
    client_addr: ClientAddr | None = None


class UserRef(Message):
    user_id: UserId


class ApiKeyLogin(Message):
    key: Annotated[str, Field(max_length=256)]


class AppRef(Message):
    app_id: Annotated[str, Field(min_length=1, max_length=100)]


class App(Reply):
    app_id: str
    name: str
    daily_quota: int
    access_ttl: int  # seconds
    refresh_ttl: int  # seconds


class AppReply(Reply):
    app: App


class AuditEvent(Message):
    """An event a service witnessed (a refresh token reused, a quota refused, a login blocked...)."""

    event: EventName
    actor_id: int | None = None
    subject_id: int | None = None
    token_id: int | None = None
    kind: Annotated[str, Field(max_length=32)] | None = None
    client_addr: ClientAddr | None = None
    details: dict[str, JsonValue] = Field(default_factory=dict)


# Errors: bad_credentials for an unknown account, a wrong password or a disabled account alike.
AUTHENTICATE = Endpoint("/v1/users/authenticate", PasswordLogin, UserReply)
# Errors: no_such_user.
GET_USER = Endpoint("/v1/users/get", UserRef, UserReply, idempotent=True)
# Errors: bad_credentials (unknown key), account_disabled.
AUTHENTICATE_API_KEY = Endpoint("/v1/api-keys/authenticate", ApiKeyLogin, UserReply, idempotent=True)
# Errors: not_found.
GET_APP = Endpoint("/v1/apps/get", AppRef, AppReply, idempotent=True)
APPEND_AUDIT = Endpoint("/v1/audit", AuditEvent, Empty, status=201)

ENDPOINTS = (AUTHENTICATE, GET_USER, AUTHENTICATE_API_KEY, GET_APP, APPEND_AUDIT)


class AccountsClient(ServiceClient):
    async def authenticate(self, req: PasswordLogin) -> User:
        """Checks the password and records login_succeeded or login_failed."""
        return (await self.transport.send(AUTHENTICATE, req)).user

    async def get_user(self, user_id: int) -> User:
        return (await self.transport.send(GET_USER, UserRef(user_id=user_id))).user

    async def authenticate_api_key(self, key: str) -> User:
        return (await self.transport.send(AUTHENTICATE_API_KEY, ApiKeyLogin(key=key))).user

    async def get_app(self, app_id: str) -> App:
        return (await self.transport.send(GET_APP, AppRef(app_id=app_id))).app

    async def append_audit(self, event: AuditEvent) -> None:
        await self.transport.send(APPEND_AUDIT, event)
