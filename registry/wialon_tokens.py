"""Wialon tokens (kind 'wialon', DESIGN §2.2, issue 4) in TokenHub's own vocabulary; the requests and
replies are the contract's (shared/contracts/registry/wialon_tokens.py).

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
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, cast

import asyncpg
from pydantic import BaseModel, BeforeValidator, JsonValue

from registry.store import acting_user
from shared.audit import record_audit
from shared.contracts.registry.accounts import AuditEvent, User
from shared.contracts.registry.wialon_tokens import (
    Acting,
    CreateToken,
    DeleteTokens,
    ListTokens,
    Params,
    TokenLoggedIn,
    TokenLogin,
    TokenSpec,
    UpdateToken,
    WialonToken,
)
from shared.errors import BadCredentials, Conflict, Expired, Forbidden, NotFound, Refused
from shared.postgres import Connection, row_as, rows_as
from shared.secrets import Sealer, lookup_hash
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("wialon_tokens.sql"))

KIND = "wialon"
# Tokens one user may hold. token/list has no paging, so this bounds what one listing costs (each
# token may carry 10,000 items and 64 KiB of parameters); applications hold a token each.
MAX_TOKENS_PER_USER = 100
SECRET_LENGTH = 72
_SEAL_CONTEXT = b"tokenhub:wialon:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def unix_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down (as Wialon counts them)."""
    return (moment - _EPOCH) // timedelta(seconds=1)


def _as_unix_seconds(value: object) -> object:
    return unix_seconds(value) if isinstance(value, datetime) else value


def _none_as_empty(value: object) -> object:
    return [] if value is None else value


def _timestamp(unix: int | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


def _definition(spec: TokenSpec) -> tuple[object, ...]:
    """What a token is, as insert_token and update_token both take it (their last six parameters)."""
    return (
        spec.app,
        _timestamp(spec.activates_at),
        spec.lifetime_s,
        spec.flags,
        spec.items,
        spec.params,
    )


# --- rows ----------------------------------------------------------------------------------------

# A timestamptz column, read as unix seconds.
UnixSeconds = Annotated[int, BeforeValidator(_as_unix_seconds)]


class _TokenRow(BaseModel):
    """The columns of a Wialon token the registry reads (every query reads the whole row)."""

    id: int
    owner_id: int
    creator_id: int | None
    secret_hash: bytes
    sealed_secret: bytes
    name: str
    created_at: UnixSeconds
    activates_at: UnixSeconds
    lifetime_s: int
    expires_at: UnixSeconds | None
    flags: int
    items: Annotated[list[int], BeforeValidator(_none_as_empty)]
    params: Params
    last_used_at: UnixSeconds | None


class _LoginRow(_TokenRow):
    """A token with its owner, and whether it can log in now."""

    status: str
    not_yet_active: bool
    ended: bool
    owner: User


# --- the store -----------------------------------------------------------------------------------


class WialonTokens:
    def __init__(self, pool: asyncpg.Pool, pepper: str, sealer: Sealer) -> None:
        self.pool = pool
        self._pepper = pepper
        self._sealer = sealer

    def _token(
        self, row: _TokenRow, secret: str | None = None, last_used_at: int | None = None
    ) -> WialonToken:
        """The token as the contract shows it: `secret` when the caller has it (else unsealed),
        `last_used_at` when it was just set (else the row's)."""
        if secret is None:
            secret = self._sealer.unseal(row.sealed_secret, seal_context(row.secret_hash))
        return WialonToken(
            id=row.id,
            owner_id=row.owner_id,
            creator_id=row.creator_id,
            secret=secret,
            app=row.name,
            created_at=row.created_at,
            activates_at=row.activates_at,
            lifetime_s=row.lifetime_s,
            expires_at=row.expires_at,
            flags=row.flags,
            items=row.items,
            params=row.params,
            last_used_at=row.last_used_at if last_used_at is None else last_used_at,
        )

    async def _authorize(self, conn: Connection, req: Acting) -> int:
        """The owner whose tokens the actor reaches with this request; refuse everything else."""
        actor = await acting_user(conn, req.actor_id)
        if actor is None or actor.status != "active":
            raise Refused("unknown or disabled actor", reason="actor")
        if actor.role == "guest":
            raise Refused("guests manage no tokens", reason="role")
        owner = req.owner
        if owner != req.actor_id and not await self._manages(conn, req.actor_id, owner):
            # An unknown user and someone else's user look the same from here.
            raise Refused("the user is not below the actor", reason="owner")
        return owner

    @staticmethod
    async def _manages(db: Connection | asyncpg.Pool, boss: int, user_id: int) -> bool:
        return await cast("Awaitable[bool]", db.fetchval(Q["manages"], boss, user_id))

    @staticmethod
    def _check_flags(req: TokenSpec) -> None:
        if not within(req.flags, req.actor_flags):
            raise Refused("the token's flags exceed the actor's own", reason="flags")

    @staticmethod
    async def _audit(
        conn: Connection,
        event: str,
        req: Acting,
        owner: int,
        token_ids: list[int],
        details: dict[str, JsonValue],
    ) -> None:
        audited = AuditEvent(
            event=event,
            actor_id=req.actor_id,
            subject_id=owner,
            kind=KIND,
            client_addr=req.client_addr,
            details=details,
        )
        await record_audit(conn, audited, token_ids=token_ids)

    async def create(self, req: CreateToken) -> WialonToken:
        self._check_flags(req)
        secret = new_secret()
        secret_hash = lookup_hash(secret, self._pepper)
        sealed = self._sealer.seal(secret, seal_context(secret_hash))
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._authorize(conn, req)
            await conn.execute(Q["lock_owner"], owner)
            held = await cast("Awaitable[int]", conn.fetchval(Q["count_owner_tokens"], owner))
            if held >= MAX_TOKENS_PER_USER:
                raise Conflict(
                    f"the user already has {MAX_TOKENS_PER_USER} tokens, the most allowed; delete one first"
                )
            inserted = await conn.fetchrow(
                Q["insert_token"], owner, req.actor_id, secret_hash, sealed, *_definition(req)
            )
            assert inserted is not None
            row = row_as(_TokenRow, inserted)
            await self._audit(conn, "created", req, owner, [row.id], {"flags": req.flags})
        return self._token(row, secret)

    async def update(self, req: UpdateToken) -> WialonToken:
        """Replace everything but the secret, the owner and the creation time."""
        self._check_flags(req)
        secret_hash = lookup_hash(req.secret, self._pepper)
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._authorize(conn, req)
            token_id = await cast("Awaitable[int | None]", conn.fetchval(Q["lock_token"], secret_hash, owner))
            if token_id is None:
                raise NotFound("no such token")
            updated = await conn.fetchrow(Q["update_token"], token_id, *_definition(req))
            assert updated is not None
            row = row_as(_TokenRow, updated)
            await self._audit(conn, "updated", req, owner, [token_id], {"flags": req.flags})
        return self._token(row, req.secret)

    async def delete(self, req: DeleteTokens) -> list[WialonToken]:
        """The tokens deleted (none when `all` finds nothing; NotFound for an unknown secret)."""
        secret_hash = None if req.secret is None else lookup_hash(req.secret, self._pepper)
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._authorize(conn, req)
            rows = rows_as(_TokenRow, await conn.fetch(Q["delete_tokens"], secret_hash, owner))
            if secret_hash is not None and not rows:
                raise NotFound("no such token")
            await self._audit(conn, "deleted", req, owner, [row.id for row in rows], {"all": req.all})
        return [self._token(row) for row in rows]

    async def list_tokens(self, req: ListTokens) -> list[WialonToken]:
        async with self.pool.acquire() as conn:
            owner = await self._authorize(conn, req)
            rows = rows_as(_TokenRow, await conn.fetch(Q["list_tokens"], owner))
        return [self._token(row) for row in rows]

    async def authenticate(self, req: TokenLogin) -> TokenLoggedIn:
        """Who logs in with this secret (the owner, or the sub-user it operates as), and the token.
        Records the login (Wialon's `ll`, and login_succeeded or login_failed in the audit log).
        BadCredentials: no such token; Forbidden: disabled owner or token, not active yet, or an
        operate_as that is not below the owner; Expired: ended."""
        found = await self.pool.fetchrow(Q["token_for_login"], lookup_hash(req.secret, self._pepper))
        row = None if found is None else row_as(_LoginRow, found)
        try:
            logged_in = await self._login(req, row)
        except (BadCredentials, Forbidden, Expired) as exc:
            await self._audit_login(req, row, "login_failed", {"reason": exc.code, "why": exc.message})
            raise
        await self._audit_login(req, row, "login_succeeded", {"as": logged_in.user.id})
        return logged_in

    async def _login(self, req: TokenLogin, row: _LoginRow | None) -> TokenLoggedIn:
        if row is None:
            raise BadCredentials("unknown token")
        if row.status != "active" or row.owner.status != "active":
            raise Refused("the token or its owner is disabled", reason="disabled")
        if row.not_yet_active:
            raise Refused("the token is not active yet", reason="not_active")
        if row.ended:
            raise Expired("the token has expired")
        user = row.owner
        if req.operate_as is not None and req.operate_as != user.username:
            user = await self._sub_user(user, req.operate_as)
        last_used_at = await cast("Awaitable[datetime | None]", self.pool.fetchval(Q["record_login"], row.id))
        if last_used_at is None:
            raise BadCredentials("unknown token")  # deleted between the two statements
        token = self._token(row, req.secret, last_used_at=unix_seconds(last_used_at))
        return TokenLoggedIn(user=user, token=token)

    async def _audit_login(
        self, req: TokenLogin, row: _LoginRow | None, event: str, details: dict[str, JsonValue]
    ) -> None:
        said: dict[str, JsonValue] = {"realm": KIND, "method": "token", **details}
        await record_audit(
            self.pool,
            AuditEvent(
                event=event,
                subject_id=None if row is None else row.owner.id,
                token_id=None if row is None else row.id,
                kind=KIND,
                client_addr=req.client_addr,
                details=said,
            ),
        )

    async def _sub_user(self, owner: User, name: str) -> User:
        found = await self.pool.fetchrow(Q["user_by_name"], name)
        user = None if found is None else row_as(User, found)
        if user is None or not await self._manages(self.pool, owner.id, user.id):
            raise Refused("no such user below the token's owner", reason="operate_as")
        if user.status != "active":
            raise Refused("the account is disabled", reason="disabled")
        return user
