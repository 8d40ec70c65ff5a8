"""The registry's access to Postgres: named queries, and the one place driver errors become domain errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import asyncpg
from pydantic import BaseModel, JsonValue, TypeAdapter

from shared.audit import record_audit
from shared.contracts.registry.accounts import App, AuditEvent, Role, User
from shared.errors import (
    AccountDisabled,
    BadCredentials,
    Conflict,
    InvalidInput,
    NoSuchUser,
    NotFound,
    TokenHubError,
    Unavailable,
)
from shared.postgres import (
    CONNECTION_ERRORS,
    NO_PRIMARY,
    Connection,
    fetch_optional,
    fetch_value,
    ping,
    row_as,
    row_into,
    rows_as,
)
from shared.secrets import hash_password_async, lookup_hash, new_hex_secret, verify_password_async
from shared.sqlfile import load_queries

__all__ = [
    "EMAIL",
    "ROLES",
    "App",
    "AuditRecord",
    "RevokedCredentials",
    "Role",
    "Store",
    "User",
    "acting_user",
    "revoke_credentials_of",
    "translate",
]

Q = load_queries(Path(__file__).with_name("queries.sql"))

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

ROLES: tuple[Role, ...] = ("super_admin", "admin", "user", "guest")

# Unique constraints, by name, and what a clash on each means to a caller.
_UNIQUE_MEANING = {
    "users_username_key": "a user with this name already exists",
    "users_email_key": "a user with this e-mail already exists",
    "tokens_zabbix_owner_name_key": "this user already has a token with this name",
    "apps_pkey": "an app with this id already exists",
}


def translate(exc: BaseException) -> TokenHubError | None:
    """Map a driver error to the domain error a caller should see; None if it is a bug.

    A database that did not answer, or has no primary just now (a failover under way: the primary
    died and no standby is promoted yet, or the connection reached a standby), is Unavailable, which
    every dialect says as its "try again". Never retried here: a write whose connection died may
    have committed, and only the client can tell whether to send it again."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        name = exc.constraint_name or ""
        return Conflict(_UNIQUE_MEANING.get(name, "already exists"))
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound("a referenced object does not exist")
    if isinstance(exc, asyncpg.CheckViolationError | asyncpg.DataError):
        return InvalidInput("a value is out of range")
    if isinstance(exc, NO_PRIMARY):
        return Unavailable("the database has no primary just now (a failover under way?)")
    if isinstance(exc, CONNECTION_ERRORS):
        return Unavailable("the database did not answer")
    if isinstance(exc, asyncpg.QueryCanceledError):  # statement_timeout: the bound on every statement
        return Unavailable("the database did not answer in time")
    return None


class _PasswordHash(BaseModel):
    """The one column of a user row that never leaves the store."""

    password_hash: str | None


class _Id(BaseModel):
    id: int


@dataclass(frozen=True)
class AuditRecord:
    """One row of the audit log, as `tokenhub audit` prints it: a dataclass, so orjson writes it
    as the row's columns, in order."""

    id: int
    at: datetime
    event: str
    actor_id: int | None
    subject_id: int | None
    token_id: int | None
    kind: str | None
    client_addr: str | None
    details: dict[str, JsonValue]


_AUDIT_RECORD = TypeAdapter(AuditRecord)


@dataclass(frozen=True)
class RevokedCredentials:
    user: User
    zabbix_tokens: list[int]  # disabled
    wialon_tokens: list[int]  # deleted
    api_keys: int  # deleted


async def revoke_credentials_of(conn: Connection, user: User, event: AuditEvent) -> RevokedCredentials:
    """Inside the caller's transaction: disable the user's Zabbix API tokens, delete its Wialon
    tokens and API keys, and record `event` with what was ended added to its details. The one way
    `tokenhub users revoke` and the admin API revoke an account."""
    zabbix = [row.id for row in rows_as(_Id, await conn.fetch(Q["disable_zabbix_tokens_of"], user.id))]
    wialon = [row.id for row in rows_as(_Id, await conn.fetch(Q["delete_wialon_tokens_of"], user.id))]
    keys = len(await conn.fetch(Q["delete_api_keys_of"], user.id))
    details: dict[str, JsonValue] = {
        **event.details,
        "zabbix_tokens": list[JsonValue](zabbix),
        "wialon_tokens": list[JsonValue](wialon),
        "api_keys": keys,
    }
    await record_audit(conn, event.model_copy(update={"details": details}))
    return RevokedCredentials(user, zabbix, wialon, keys)


async def acting_user(conn: Connection, user_id: int) -> User | None:
    """The user a request acts as, read inside the caller's transaction; None if there is none."""
    row = await conn.fetchrow(Q["user_by_id"], user_id)
    return None if row is None else row_as(User, row)


class Store:
    def __init__(self, pool: asyncpg.Pool, pepper: str, timeout: float = 3.0) -> None:
        self.pool = pool
        self._pepper = pepper
        self._timeout = timeout

    async def ping(self) -> bool:
        return await ping(self.pool, self._timeout)

    # --- users ---------------------------------------------------------------------------------

    async def user(self, user_id: int) -> User:
        row = await self.pool.fetchrow(Q["user_by_id"], user_id)
        if row is None:
            raise NoSuchUser("no such user", user_id=user_id)
        return row_as(User, row)

    async def user_by_name(self, username: str) -> User:
        row = await self.pool.fetchrow(Q["user_by_username"], username)
        if row is None:
            raise NoSuchUser("no such user")
        return row_as(User, row)

    async def authenticate(
        self,
        password: str,
        *,
        username: str | None = None,
        email: str | None = None,
        realm: str | None = None,
        client_addr: str | None = None,
    ) -> User:
        """The active user whose password this is, recorded as login_succeeded. Unknown account,
        wrong password and disabled account are one error, recorded as login_failed with the reason
        (for the operator, never the caller), and cost the same time (a dummy hash is checked when
        there is no account): a disabled account's right password is not told apart from a wrong one."""
        if username is not None:
            row = await self.pool.fetchrow(Q["user_by_username"], username)
        elif email is not None:
            row = await self.pool.fetchrow(Q["user_by_email"], email)
        else:
            raise InvalidInput("username or email is required")
        ok = await verify_password_async(
            password, None if row is None else row_as(_PasswordHash, row).password_hash
        )
        user = None if row is None else row_as(User, row)
        if user is None or not ok or user.status != "active":
            reason = "unknown_account" if user is None else "wrong_password" if not ok else "disabled"
            login = username if username is not None else email
            failed: dict[str, JsonValue] = {"realm": realm, "login": (login or "")[:100], "reason": reason}
            await self.audit(
                AuditEvent(
                    event="login_failed",
                    subject_id=None if user is None else user.id,
                    kind=realm,
                    client_addr=client_addr,
                    details=failed,
                )
            )
            raise BadCredentials("incorrect login or password")
        succeeded: dict[str, JsonValue] = {"realm": realm}
        await self.audit(
            AuditEvent(
                event="login_succeeded",
                subject_id=user.id,
                kind=realm,
                client_addr=client_addr,
                details=succeeded,
            )
        )
        return user

    async def add_user(
        self,
        username: str,
        role: Role,
        *,
        password: str | None = None,
        email: str | None = None,
        parent: str | None = None,
    ) -> int:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if email is not None and not EMAIL.fullmatch(email):
            raise InvalidInput(f"{email!r} is not an e-mail address")
        password_hash = await hash_password_async(password) if password is not None else None
        async with self.pool.acquire() as conn, conn.transaction():
            parent_id = None
            if parent is not None:
                parent_id = await fetch_optional(conn, int, Q["user_id_by_username"], parent)
                if parent_id is None:
                    raise NotFound(f"no user named {parent!r} to be the parent")
            user_id = await fetch_value(
                conn, int, Q["insert_user"], username, email, password_hash, role, parent_id
            )
            details: dict[str, JsonValue] = {"role": role}
            await record_audit(conn, AuditEvent(event="user_created", subject_id=user_id, details=details))
        return user_id

    async def bootstrap_admin(self, password: str) -> int | None:
        """On an empty database, create the super admin `Admin` (id 1); None if users exist."""
        password_hash = await hash_password_async(password)
        async with self.pool.acquire() as conn, conn.transaction():
            # Serialise concurrent first migrations so exactly one creates the admin.
            await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            if await fetch_value(conn, int, Q["count_users"]):
                return None
            user_id = await fetch_value(
                conn, int, Q["insert_user"], "Admin", None, password_hash, "super_admin", None
            )
            details: dict[str, JsonValue] = {"role": "super_admin", "bootstrap": True}
            await record_audit(conn, AuditEvent(event="user_created", subject_id=user_id, details=details))
        return user_id

    async def new_api_key(self, username: str) -> str:
        user = await self.user_by_name(username)
        key = "thk_" + new_hex_secret(32)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["insert_api_key"], user.id, lookup_hash(key, self._pepper))
            await record_audit(conn, AuditEvent(event="api_key_created", subject_id=user.id))
        return key

    # --- account-wide actions (tokenhub users disable / enable / revoke / api-key --revoke) -------

    async def set_status(self, username: str, status: Literal["active", "disabled"]) -> User:
        """Disable or enable an account (idempotent), recorded as user_disabled / user_enabled. The
        registry refuses a disabled account's API tokens, Wialon tokens and API keys at once; its
        sessions and pairs live in Redis and end by the caller's revocations.end_account_credentials."""
        user = await self.user_by_name(username)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["set_user_status"], user.id, status)
            event = "user_disabled" if status == "disabled" else "user_enabled"
            details: dict[str, JsonValue] = {"was": user.status}
            await record_audit(conn, AuditEvent(event=event, subject_id=user.id, details=details))
        return user

    async def revoke_credentials(self, username: str) -> RevokedCredentials:
        """End every long-lived credential of an account in one transaction, recorded as
        user_revoked: its Zabbix API tokens are disabled, its Wialon tokens and API keys deleted.
        (Its sessions and pairs live in Redis: the caller ends them.)"""
        user = await self.user_by_name(username)
        async with self.pool.acquire() as conn, conn.transaction():
            return await revoke_credentials_of(
                conn, user, AuditEvent(event="user_revoked", subject_id=user.id)
            )

    async def revoke_api_keys(self, username: str) -> tuple[User, int]:
        """Delete every API key of an account, recorded as api_key_revoked; (user, how many)."""
        user = await self.user_by_name(username)
        async with self.pool.acquire() as conn, conn.transaction():
            count = len(await conn.fetch(Q["delete_api_keys_of"], user.id))
            details: dict[str, JsonValue] = {"count": count}
            await record_audit(conn, AuditEvent(event="api_key_revoked", subject_id=user.id, details=details))
        return user, count

    async def user_by_api_key(self, key: str) -> User:
        row = await self.pool.fetchrow(Q["user_by_api_key"], lookup_hash(key, self._pepper))
        if row is None:
            raise BadCredentials("unknown API key")
        user = row_as(User, row)
        if user.status != "active":
            raise AccountDisabled("the account is disabled", user_id=user.id)
        return user

    # --- audit ---------------------------------------------------------------------------------

    async def audit(self, event: AuditEvent) -> None:
        await record_audit(self.pool, event)

    async def audit_events(
        self, *, since: datetime | None, user_id: int | None, limit: int
    ) -> list[AuditRecord]:
        rows = await self.pool.fetch(Q["audit_events"], since, user_id, limit)
        return [row_into(_AUDIT_RECORD, row) for row in rows]

    # --- apps ----------------------------------------------------------------------------------

    async def app(self, app_id: str) -> App:
        row = await self.pool.fetchrow(Q["app_by_id"], app_id)
        if row is None:
            raise NotFound("no such app")
        return row_as(App, row)

    async def add_app(
        self, app_id: str, name: str, daily_quota: int, access_ttl: int, refresh_ttl: int
    ) -> None:
        await self.pool.execute(Q["insert_app"], app_id, name, daily_quota, access_ttl, refresh_ttl)
