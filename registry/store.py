"""The registry's access to Postgres: named queries, and the one place driver errors become domain errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg

from shared.errors import (
    BadCredentials,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TokenHubError,
    Unavailable,
)
from shared.postgres import CONNECTION_ERRORS, ping
from shared.secrets import hash_password_async, lookup_hash, new_hex_secret, verify_password_async
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("queries.sql"))

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

Role = Literal["super_admin", "admin", "user", "guest"]
ROLES: tuple[Role, ...] = ("super_admin", "admin", "user", "guest")

# Unique constraints, by name, and what a clash on each means to a caller.
_UNIQUE_MEANING = {
    "users_username_key": "a user with this name already exists",
    "users_email_key": "a user with this e-mail already exists",
    "tokens_zabbix_owner_name_key": "this user already has a token with this name",
    "apps_pkey": "an app with this id already exists",
}


def translate(exc: BaseException) -> TokenHubError | None:
    """Map a driver error to the domain error a caller should see; None if it is a bug."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        name = exc.constraint_name or ""
        return Conflict(_UNIQUE_MEANING.get(name, "already exists"), constraint=name)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound("a referenced object does not exist", constraint=exc.constraint_name or "")
    if isinstance(exc, asyncpg.CheckViolationError | asyncpg.DataError):
        return InvalidInput("a value is out of range", constraint=getattr(exc, "constraint_name", "") or "")
    if isinstance(exc, CONNECTION_ERRORS):
        return Unavailable("the database did not answer")
    return None


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str | None
    role: Role
    parent_id: int | None
    status: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(row["id"], row["username"], row["email"], row["role"], row["parent_id"], row["status"])

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "role": self.role,
            "parent_id": self.parent_id,
            "status": self.status,
        }


@dataclass(frozen=True)
class AuditEvent:
    event: str
    actor_id: int | None = None
    subject_id: int | None = None
    token_id: int | None = None
    kind: str | None = None
    client_addr: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


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
            raise NotFound("no such user", user_id=user_id)
        return User.from_row(row)

    async def user_by_name(self, username: str) -> User:
        row = await self.pool.fetchrow(Q["user_by_username"], username)
        if row is None:
            raise NotFound("no such user", username=username)
        return User.from_row(row)

    async def authenticate(
        self, password: str, *, username: str | None = None, email: str | None = None
    ) -> User:
        """The user whose password this is. Unknown account and wrong password are the same error
        and cost the same time (a dummy hash is checked when there is no account)."""
        if username is not None:
            row = await self.pool.fetchrow(Q["user_by_username"], username)
        elif email is not None:
            row = await self.pool.fetchrow(Q["user_by_email"], email)
        else:
            raise InvalidInput("username or email is required")
        ok = await verify_password_async(password, row["password_hash"] if row else None)
        if row is None or not ok:
            raise BadCredentials("incorrect login or password")
        user = User.from_row(row)
        if user.status != "active":
            raise Forbidden("the account is disabled", user_id=user.id)
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
        if email is not None and not _EMAIL.fullmatch(email):
            raise InvalidInput(f"{email!r} is not an e-mail address")
        password_hash = await hash_password_async(password) if password is not None else None
        async with self.pool.acquire() as conn, conn.transaction():
            parent_id = None
            if parent is not None:
                parent_id = await conn.fetchval("SELECT id FROM users WHERE username = $1", parent)
                if parent_id is None:
                    raise NotFound(f"no user named {parent!r} to be the parent")
            user_id: int = await conn.fetchval(
                Q["insert_user"], username, email, password_hash, role, parent_id
            )
            await conn.execute(
                Q["insert_audit"], "user_created", None, user_id, None, None, None, {"role": role}
            )
        return user_id

    async def bootstrap_admin(self, password: str) -> int | None:
        """On an empty database, create the super admin `Admin` (id 1); None if users exist."""
        password_hash = await hash_password_async(password)
        async with self.pool.acquire() as conn, conn.transaction():
            # Serialise concurrent first migrations so exactly one creates the admin.
            await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            if await conn.fetchval(Q["count_users"]):
                return None
            user_id: int = await conn.fetchval(
                Q["insert_user"], "Admin", None, password_hash, "super_admin", None
            )
            await conn.execute(
                Q["insert_audit"],
                "user_created",
                None,
                user_id,
                None,
                None,
                None,
                {"role": "super_admin", "bootstrap": True},
            )
        return user_id

    async def new_api_key(self, username: str) -> str:
        user = await self.user_by_name(username)
        key = "thk_" + new_hex_secret(32)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["insert_api_key"], user.id, lookup_hash(key, self._pepper))
            await conn.execute(Q["insert_audit"], "api_key_created", None, user.id, None, None, None, {})
        return key

    async def user_by_api_key(self, key: str) -> User:
        row = await self.pool.fetchrow(Q["user_by_api_key"], lookup_hash(key, self._pepper))
        if row is None:
            raise BadCredentials("unknown API key")
        user = User.from_row(row)
        if user.status != "active":
            raise Forbidden("the account is disabled", user_id=user.id)
        return user

    # --- audit ---------------------------------------------------------------------------------

    async def audit(self, event: AuditEvent) -> None:
        await self.pool.execute(
            Q["insert_audit"],
            event.event,
            event.actor_id,
            event.subject_id,
            event.token_id,
            event.kind,
            event.client_addr,
            event.details,
        )

    async def audit_events(
        self, *, since: datetime | None, user_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return [dict(row) for row in await self.pool.fetch(Q["audit_events"], since, user_id, limit)]

    # --- apps ----------------------------------------------------------------------------------

    async def app(self, app_id: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(Q["app_by_id"], app_id)
        if row is None:
            raise NotFound("no such app", app_id=app_id)
        return dict(row)

    async def add_app(
        self, app_id: str, name: str, daily_quota: int, access_ttl: int, refresh_ttl: int
    ) -> None:
        await self.pool.execute(Q["insert_app"], app_id, name, daily_quota, access_ttl, refresh_ttl)
