"""Wialon tokens (kind 'wialon', DESIGN §2.2, issue 4) in TokenHub's own vocabulary.

A token's secret is 72 characters: 32 lowercase hex then 40 uppercase hex, from `secrets` (288 bits).
Like every secret it is kept twice (DESIGN §4): its peppered HMAC, by which it is found, and an
AES-GCM sealed copy, because listing shows it again. The sealed copy's associated data is the
secret's hash, so a sealed secret cannot be moved to another row.

Who may do what is decided here, from Postgres:
- the actor must be an active user, and not a guest;
- a token belongs to the actor or to a user below the actor in the parent chain (`manages`);
  anyone else's tokens are refused exactly like missing ones would be to a stranger (Forbidden);
- a token's flags never exceed the flags of whoever creates or changes it (`actor_flags`: -1, all,
  for a password session; a token session's own flags otherwise).

Flags are an opaque bit mask here, -1 meaning "everything"; which bits exist is the dialect's business.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from registry.store import User
from shared.audit import record_audit
from shared.contracts.registry.accounts import AuditEvent
from shared.errors import BadCredentials, Conflict, Expired, Forbidden, NotFound, Refused
from shared.limits import too_deep
from shared.postgres import Connection, row_as
from shared.secrets import Sealer, lookup_hash
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("wialon_tokens.sql"))

KIND = "wialon"
# Tokens one user may hold. token/list has no paging, so this bounds what one listing costs (each
# token may carry 10,000 items and 64 KiB of parameters); applications hold a token each.
MAX_TOKENS_PER_USER = 100
SECRET_LENGTH = 72
_SEAL_CONTEXT = b"tokenhub:wialon:"

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
# Unix seconds: Wialon's times are unsigned 32-bit.
UnixTime = Annotated[int, Field(ge=0, le=2**32 - 1)]
# lifetime_s is an integer column.
Lifetime = Annotated[int, Field(ge=0, le=2**31 - 1)]
# -1: every right there is; otherwise a bit mask that fits Wialon's unsigned 32 bits.
Flags = Annotated[int, Field(ge=-1, le=2**32 - 1)]
ItemId = Annotated[int, Field(ge=0, le=2**63 - 1)]
# Longer than any secret TokenHub issues, short enough that nobody posts megabytes to be hashed.
Secret = Annotated[str, Field(min_length=1, max_length=256)]
Params = dict[str, Any] | list[dict[str, Any]]
# Deeper than any JSON encoder on the way out writes (orjson: 255); the dialect allows 64.
MAX_PARAMS_DEPTH = 128


def new_secret() -> str:
    """Wialon's token shape: 32 lowercase then 40 uppercase hexadecimal characters."""
    return secrets.token_hex(16) + secrets.token_hex(20).upper()


def seal_context(secret_hash: bytes) -> bytes:
    return _SEAL_CONTEXT + secret_hash


def within(flags: int, limit: int) -> bool:
    """Whether `flags` grants nothing that `limit` does not."""
    if limit == -1:
        return True
    return flags != -1 and flags & ~limit == 0


# --- requests ------------------------------------------------------------------------------------


class _Body(BaseModel):
    # Strict: the gateway sends real JSON types; a string where a number belongs is a bug there.
    model_config = ConfigDict(extra="forbid", strict=True)


class _Acting(_Body):
    actor_id: Id
    # Whose tokens: the actor's own when absent, else a user below the actor.
    owner_id: Id | None = None
    client_addr: Annotated[str, Field(max_length=64)] | None = None

    @property
    def owner(self) -> int:
        return self.owner_id if self.owner_id is not None else self.actor_id


class TokenSpec(_Acting):
    # The flags of the session the actor acts in: the new flags may not exceed them.
    actor_flags: Flags
    app: Annotated[str, Field(min_length=1, max_length=255)]
    activates_at: UnixTime | None = None  # None: now
    lifetime_s: Lifetime = 0  # 0: no end
    flags: Flags
    items: Annotated[list[ItemId], Field(max_length=10_000)] = Field(default_factory=list)
    params: Params = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _not_too_deep(cls, value: Params) -> Params:
        if too_deep(value, MAX_PARAMS_DEPTH):
            raise ValueError(f"params nest deeper than {MAX_PARAMS_DEPTH} levels")
        return value


class CreateRequest(TokenSpec):
    pass


class UpdateRequest(TokenSpec):
    secret: Secret


class DeleteRequest(_Acting):
    secret: Secret | None = None
    all: bool = False  # every token of the owner

    @model_validator(mode="after")
    def _one_target(self) -> DeleteRequest:
        if (self.secret is None) == (not self.all):
            raise ValueError("give either secret or all=true")
        return self


class ListRequest(_Acting):
    pass


class AuthenticateRequest(_Body):
    secret: Secret
    # The name of a user below the token's owner to act as (Wialon's operateAs).
    operate_as: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    client_addr: Annotated[str, Field(max_length=64)] | None = None


# --- the store -----------------------------------------------------------------------------------


def _timestamp(unix: int | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


class WialonTokens:
    def __init__(self, pool: asyncpg.Pool, pepper: str, sealer: Sealer) -> None:
        self.pool = pool
        self._pepper = pepper
        self._sealer = sealer

    def _to_wire(self, row: asyncpg.Record, secret: str | None = None) -> dict[str, Any]:
        if secret is None:
            secret = self._sealer.unseal(row["sealed_secret"], seal_context(row["secret_hash"]))
        return {
            "id": row["id"],
            "owner_id": row["owner_id"],
            "creator_id": row["creator_id"],
            "secret": secret,
            "app": row["name"],
            "created_at": row["created_at"],
            "activates_at": row["activates_at"],
            "lifetime_s": row["lifetime_s"],
            "expires_at": row["expires_at"],
            "flags": row["flags"],
            "items": list(row["items"] or []),
            "params": row["params"],
            "last_used_at": row["last_used_at"],
        }

    async def _authorize(self, conn: Connection, req: _Acting) -> int:
        """The owner whose tokens the actor reaches with this request; refuse everything else."""
        actor = await conn.fetchrow(Q["actor"], req.actor_id)
        if actor is None or actor["status"] != "active":
            raise Refused("unknown or disabled actor", reason="actor")
        if actor["role"] == "guest":
            raise Refused("guests manage no tokens", reason="role")
        owner = req.owner
        if owner != req.actor_id and not await conn.fetchval(Q["manages"], req.actor_id, owner):
            # An unknown user and someone else's user look the same from here.
            raise Refused("the user is not below the actor", reason="owner")
        return owner

    @staticmethod
    def _check_flags(req: TokenSpec) -> None:
        if not within(req.flags, req.actor_flags):
            raise Refused("the token's flags exceed the actor's own", reason="flags")

    async def _audit(
        self,
        conn: Connection,
        event: str,
        req: _Acting,
        owner: int,
        token_ids: list[int],
        details: dict[str, Any],
    ) -> None:
        audited = AuditEvent(
            event=event,
            actor_id=req.actor_id,
            subject_id=owner,
            kind="wialon",
            client_addr=req.client_addr,
            details=details,
        )
        await record_audit(conn, audited, token_ids=token_ids)

    async def create(self, req: CreateRequest) -> dict[str, Any]:
        self._check_flags(req)
        secret = new_secret()
        secret_hash = lookup_hash(secret, self._pepper)
        sealed = self._sealer.seal(secret, seal_context(secret_hash))
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._authorize(conn, req)
            if await conn.fetchval(Q["count_owner_tokens"], owner) >= MAX_TOKENS_PER_USER:
                raise Conflict(
                    f"the user already has {MAX_TOKENS_PER_USER} tokens, the most allowed; delete one first"
                )
            row = await conn.fetchrow(
                Q["insert_token"],
                owner,
                req.actor_id,
                secret_hash,
                sealed,
                _timestamp(req.activates_at),
                req.app,
                req.lifetime_s,
                req.flags,
                req.items,
                req.params,
            )
            assert row is not None
            await self._audit(conn, "created", req, owner, [row["id"]], {"flags": req.flags})
        return self._to_wire(row, secret)

    async def update(self, req: UpdateRequest) -> dict[str, Any]:
        """Replace everything but the secret, the owner and the creation time."""
        self._check_flags(req)
        secret_hash = lookup_hash(req.secret, self._pepper)
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._authorize(conn, req)
            token_id = await conn.fetchval(Q["lock_token"], secret_hash, owner)
            if token_id is None:
                raise NotFound("no such token")
            row = await conn.fetchrow(
                Q["update_token"],
                token_id,
                req.app,
                _timestamp(req.activates_at),
                req.lifetime_s,
                req.flags,
                req.items,
                req.params,
            )
            assert row is not None
            await self._audit(conn, "updated", req, owner, [token_id], {"flags": req.flags})
        return self._to_wire(row, req.secret)

    async def delete(self, req: DeleteRequest) -> list[dict[str, Any]]:
        """The tokens deleted (none when `all` finds nothing; NotFound for an unknown secret)."""
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._authorize(conn, req)
            if req.secret is not None:
                rows = await conn.fetch(Q["delete_token"], lookup_hash(req.secret, self._pepper), owner)
                if not rows:
                    raise NotFound("no such token")
            else:
                rows = await conn.fetch(Q["delete_all_tokens"], owner)
            await self._audit(conn, "deleted", req, owner, [row["id"] for row in rows], {"all": req.all})
        return [self._to_wire(row) for row in rows]

    async def list_tokens(self, req: ListRequest) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            owner = await self._authorize(conn, req)
            rows = await conn.fetch(Q["list_tokens"], owner)
        return [self._to_wire(row) for row in rows]

    async def authenticate(self, req: AuthenticateRequest) -> tuple[User, dict[str, Any]]:
        """Who logs in with this secret (the owner, or the sub-user it operates as), and the token.
        Records the login (Wialon's `ll`, and login_succeeded or login_failed in the audit log).
        BadCredentials: no such token; Forbidden: disabled owner or token, not active yet, or an
        operate_as that is not below the owner; Expired: ended."""
        row = await self.pool.fetchrow(Q["token_for_login"], lookup_hash(req.secret, self._pepper))
        try:
            user, token = await self._login(req, row)
        except (BadCredentials, Forbidden, Expired) as exc:
            await self._audit_login(req, row, "login_failed", {"reason": exc.code, "why": exc.message})
            raise
        await self._audit_login(req, row, "login_succeeded", {"as": user.id})
        return user, token

    async def _login(
        self, req: AuthenticateRequest, row: asyncpg.Record | None
    ) -> tuple[User, dict[str, Any]]:
        if row is None:
            raise BadCredentials("unknown token")
        if row["status"] != "active" or row["user_status"] != "active":
            raise Refused("the token or its owner is disabled", reason="disabled")
        if row["not_yet_active"]:
            raise Refused("the token is not active yet", reason="not_active")
        if row["ended"]:
            raise Expired("the token has expired")
        user = User(
            id=row["user_id"],
            username=row["username"],
            email=row["email"],
            role=row["role"],
            parent_id=row["parent_id"],
            status=row["user_status"],
        )
        if req.operate_as is not None and req.operate_as != user.username:
            user = await self._sub_user(user, req.operate_as)
        last_used_at = await self.pool.fetchval(Q["record_login"], row["id"])
        if last_used_at is None:
            raise BadCredentials("unknown token")  # deleted between the two statements
        token = self._to_wire(row, req.secret)
        token["last_used_at"] = last_used_at
        return user, token

    async def _audit_login(
        self, req: AuthenticateRequest, row: asyncpg.Record | None, event: str, details: dict[str, Any]
    ) -> None:
        await record_audit(
            self.pool,
            AuditEvent(
                event=event,
                subject_id=None if row is None else row["user_id"],
                token_id=None if row is None else row["id"],
                kind=KIND,
                client_addr=req.client_addr,
                details={"realm": KIND, "method": "token", **details},
            ),
        )

    async def _sub_user(self, owner: User, name: str) -> User:
        row = await self.pool.fetchrow(Q["user_by_name"], name)
        if row is None or not await self.pool.fetchval(Q["manages"], owner.id, row["id"]):
            raise Refused("no such user below the token's owner", reason="operate_as")
        user = row_as(User, row)
        if user.status != "active":
            raise Refused("the account is disabled", reason="disabled")
        return user
