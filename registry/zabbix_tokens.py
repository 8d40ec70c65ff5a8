"""Named API tokens (kind 'zabbix'): the store behind the endpoints of
shared/contracts/registry/zabbix_tokens.py, whose models it takes and answers.

Who may do what is decided here, from the actor's role in Postgres: a super admin manages every
user's tokens, admins and users only their own, guests none. Tokens or owners the actor may not
touch are reported exactly like missing ones. A name is unique per owner by the unique index
`tokens_zabbix_owner_name_key`, which decides every race: a clash, however it arises, is told as
NameTaken with the name and the owner.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from pydantic import BaseModel, JsonValue

from registry.store import User, acting_user
from shared.audit import record_audit
from shared.contracts.registry.accounts import AuditEvent
from shared.contracts.registry.accounts import User as UserReply
from shared.contracts.registry.zabbix_tokens import (
    MAX_ROWS,
    CreateRequest,
    FilterField,
    GeneratedToken,
    IdsRequest,
    QueryRequest,
    SearchField,
    SortField,
    TokenAuthenticated,
    UpdateRequest,
    ZabbixToken,
    ZabbixTokenPage,
)
from shared.errors import (
    BadCredentials,
    Expired,
    NameTaken,
    NoSuchUser,
    NotFound,
    Refused,
    TooManyRows,
)
from shared.postgres import Connection, plan_for_values, row_as, rows_as
from shared.secrets import lookup_hash, new_hex_secret
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("zabbix_tokens.sql"))

NAME_INDEX = "tokens_zabbix_owner_name_key"

# Column expressions by field. Statements are grown only from these fixed texts, the blocks of
# zabbix_tokens.sql and $n parameters.
_SORT_EXPRESSION: dict[SortField, str] = {
    "id": "t.id",
    "name": "t.name",
    "last_used_at": "coalesce(t.last_used_at, 'epoch')",
    "status": "(t.status = 'disabled')",
    "expires_at": "coalesce(t.expires_at, 'epoch')",
    "created_at": "t.created_at",
}
_EPOCH = "coalesce(unix_seconds({}), 0)"
_FILTER_EXPRESSION: dict[FilterField, tuple[str, str]] = {
    "id": ("t.id", "bigint"),
    "owner_id": ("t.owner_id", "bigint"),
    "creator_id": ("t.creator_id", "bigint"),
    "name": ("t.name", "text"),
    "status": ("t.status", "text"),
    "last_used_at": (_EPOCH.format("t.last_used_at"), "bigint"),
    "expires_at": (_EPOCH.format("t.expires_at"), "bigint"),
    "created_at": (_EPOCH.format("t.created_at"), "bigint"),
}
_SEARCH_EXPRESSION: dict[SearchField, str] = {"name": "t.name", "description": "t.description"}
_INTEGER = re.compile(r"-?[0-9]{1,18}")


# --- rows -----------------------------------------------------------------------------------------


class _Id(BaseModel):
    id: int


class _Owned(BaseModel):
    id: int
    owner_id: int


class _Named(BaseModel):
    owner_id: int
    name: str


class _Count(BaseModel):
    count: int


class _Authenticated(BaseModel):
    token_id: int
    expires_at: int | None


class _WhyNot(BaseModel):
    status: str
    expired: bool | None  # None: the token never ends
    user_status: str


# --- token.get's statement ------------------------------------------------------------------------


def like_pattern(text: str, *, prefix: bool, wildcards: bool) -> str:
    """A LIKE pattern matching `text` literally (`%`, `_` and `\\` escaped), as the query asks."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if wildcards:
        return escaped.replace("*", "%")
    return escaped + "%" if prefix else "%" + escaped + "%"


def _integers(values: list[int | str]) -> list[int]:
    return [int(v) for v in values if isinstance(v, int) or _INTEGER.fullmatch(v)]


def _timestamp(unix: int | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


@dataclass
class Statement:
    """A statement grown from a whole named block by appending fixed fragments; every value is a
    $n parameter. Appending keeps each block a statement of its own (nothing is spliced into it)."""

    sql: str
    args: list[object] = field(default_factory=list)

    def param(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def where(self, condition: str) -> None:
        self.sql += f"\n  AND {condition}"

    def append(self, clause: str) -> None:
        self.sql += f"\n{clause}"


def _one_of(column: str, values: list[int], q: Statement) -> str:
    """`column = $n` for one value, `= ANY($n)` for several. The common single-id lookup then gets
    the cached generic plan: Postgres cannot cost `= ANY` of an unknown array, keeps planning it
    afresh on every execution, and planning was two thirds of that statement's server time."""
    if len(values) == 1:
        return f"{column} = {q.param(values[0])}::bigint"
    return f"{column} = ANY({q.param(values)}::bigint[])"


def build_query(req: QueryRequest, pepper: str) -> Statement:
    """token.get's statement: select_tokens (or count_tokens) narrowed by the request's conditions,
    then its ORDER BY and LIMIT. $1 is the actor, whose role the SQL itself turns into the scope."""
    q = Statement(Q["count_tokens"] if req.count else Q["select_tokens"])
    q.param(req.actor_id)
    if req.ids is not None:
        q.where(_one_of("t.id", req.ids, q))
    if req.owner_ids is not None:
        q.where(_one_of("t.owner_id", req.owner_ids, q))
    if req.secret is not None:
        q.where(f"t.secret_hash = {q.param(lookup_hash(req.secret, pepper))}")
    if req.valid_at is not None:
        q.where(f"(t.expires_at IS NULL OR t.expires_at > {q.param(_timestamp(req.valid_at))})")
    if req.expired_at is not None:
        q.where(f"t.expires_at <= {q.param(_timestamp(req.expired_at))}")
    for name, values in req.filter.items():
        expression, sql_type = _FILTER_EXPRESSION[name]
        typed = _integers(values) if sql_type == "bigint" else [str(v) for v in values]
        # Values of the wrong type can match nothing; a filter left with none matches no row.
        q.where(f"{expression} = ANY({q.param(typed)}::{sql_type}[])" if typed else "false")
    matches: list[str] = []
    operator = "NOT ILIKE" if req.search_exclude else "ILIKE"
    for searched, patterns in req.search.items():
        alternatives = [
            f"{_SEARCH_EXPRESSION[searched]} {operator} "
            + q.param(like_pattern(p, prefix=req.search_prefix, wildcards=req.search_wildcards))
            for p in patterns
            if p != ""
        ]
        if alternatives:
            matches.append("(" + " OR ".join(alternatives) + ")")
    if matches:
        q.where("(" + (" OR " if req.search_any else " AND ").join(matches) + ")")
    if not req.count:
        order = "".join(f"{_SORT_EXPRESSION[f]} {d.upper()}, " for f, d in req.sort)
        # One row past the most a query answers, to tell "exactly MAX_ROWS" from "more".
        q.append(f"ORDER BY {order}t.id LIMIT {q.param(min(req.limit or MAX_ROWS + 1, MAX_ROWS + 1))}")
    return q


# --- the store ------------------------------------------------------------------------------------


def _check_actor(actor: User | None) -> bool:
    """Whether the actor is a super admin; refuses unknown and disabled actors, and guests (who
    manage no tokens)."""
    if actor is None or actor.status != "active":
        raise BadCredentials("unknown or disabled actor")
    if actor.role == "guest":
        raise Refused("guests manage no tokens", reason="role")
    return actor.role == "super_admin"


def _refuse_repeats(pairs: Sequence[tuple[int, str] | None]) -> None:
    """Refuse a request that would give two of its tokens one owner's name (None: no new name)."""
    seen: set[tuple[int, str]] = set()
    for position, pair in enumerate(pairs, start=1):
        if pair is None:
            continue
        if pair in seen:
            raise NameTaken(
                "two tokens would get the same name", owner_id=pair[0], name=pair[1], position=position
            )
        seen.add(pair)


def _name_taken(pair: tuple[int, str]) -> NameTaken:
    return NameTaken("the owner has a token with this name", owner_id=pair[0], name=pair[1])


class ZabbixTokens:
    def __init__(self, pool: asyncpg.Pool, pepper: str) -> None:
        self.pool = pool
        self._pepper = pepper

    async def _actor(self, conn: Connection, actor_id: int) -> bool:
        """Whether the actor is a super admin; refuse guests, disabled and unknown actors."""
        return _check_actor(await acting_user(conn, actor_id))

    async def _audit(
        self, conn: Connection, event: str, actor_id: int, addr: str | None, ids: list[int]
    ) -> None:
        details: dict[str, JsonValue] = {"token_ids": list[JsonValue](ids)}
        await record_audit(
            conn, AuditEvent(event=event, actor_id=actor_id, kind="zabbix", client_addr=addr, details=details)
        )

    async def _lock_visible(
        self, conn: Connection, actor_id: int, ids: list[int], super_admin: bool
    ) -> dict[int, int]:
        """Lock the tokens and return their owners; any token that is missing or not the actor's
        makes the whole call fail."""
        rows = rows_as(_Owned, await conn.fetch(Q["visible_tokens"], ids, actor_id, super_admin))
        owners = {row.id: row.owner_id for row in rows}
        for token_id in ids:
            if token_id not in owners:
                raise NotFound("no such token")
        return owners

    async def _name_clash(
        self, conn: Connection, pairs: list[tuple[int, str]], token_ids: list[int | None]
    ) -> tuple[int, str] | None:
        """The first pair, in input order, that another token of its owner has already."""
        row = await conn.fetchrow(
            Q["name_clashes"], [owner for owner, _ in pairs], [name for _, name in pairs], token_ids
        )
        if row is None:
            return None
        clash = row_as(_Named, row)
        return clash.owner_id, clash.name

    async def create(self, req: CreateRequest) -> list[int]:
        pairs = [(t.owner_id, t.name) for t in req.tokens]
        async with self.pool.acquire() as conn, conn.transaction():
            await plan_for_values(conn)  # the batch may hold 1 token or 10,000
            super_admin = await self._actor(conn, req.actor_id)
            owners = [t.owner_id for t in req.tokens]
            existing = {row.id for row in rows_as(_Id, await conn.fetch(Q["existing_owners"], owners))}
            for owner in owners:
                if owner not in existing or (not super_admin and owner != req.actor_id):
                    raise NoSuchUser("no such user", user_id=owner)
            _refuse_repeats(pairs)
            # A name a committed token holds is refused before anything is inserted: an insert
            # draws its ids even when it is rolled back, and Zabbix's ids run without gaps.
            if (clash := await self._name_clash(conn, pairs, [None] * len(pairs))) is not None:
                raise _name_taken(clash)
            rows = await conn.fetch(
                Q["insert_tokens"],
                req.actor_id,
                owners,
                [t.name for t in req.tokens],
                [t.description for t in req.tokens],
                [t.status for t in req.tokens],
                [_timestamp(t.expires_at) for t in req.tokens],
            )
            if len(rows) < len(pairs):
                # A concurrent transaction took a name meanwhile: its row was skipped, every other
                # one inserted (and rolled back by raising).
                inserted = {(row.owner_id, row.name) for row in rows_as(_Named, rows)}
                raise _name_taken(next(pair for pair in pairs if pair not in inserted))
            ids = sorted(row.id for row in rows_as(_Id, rows))
            await self._audit(conn, "created", req.actor_id, req.client_addr, ids)
        return ids

    async def update(self, req: UpdateRequest) -> list[int]:
        ids = [t.id for t in req.tokens]
        async with self.pool.acquire() as conn, conn.transaction():
            await plan_for_values(conn)  # the batch may hold 1 token or 10,000
            super_admin = await self._actor(conn, req.actor_id)
            owners = await self._lock_visible(conn, req.actor_id, ids, super_admin)
            _refuse_repeats([None if t.name is None else (owners[t.id], t.name) for t in req.tokens])
            renamed = [t for t in req.tokens if t.name is not None]
            pairs = [(owners[t.id], str(t.name)) for t in renamed]
            renamed_ids: list[int | None] = [t.id for t in renamed]
            # Checked before the update, as Zabbix does: a name that one token of the request leaves
            # and another takes is taken still (what the update would do depends on its row order).
            if renamed and (clash := await self._name_clash(conn, pairs, renamed_ids)) is not None:
                raise _name_taken(clash)
            try:
                # A savepoint: a name taken meanwhile by a concurrent transaction (which the unique
                # index made this statement wait for) leaves the transaction usable to tell which.
                async with conn.transaction():
                    await conn.execute(
                        Q["update_tokens"],
                        ids,
                        [t.name for t in req.tokens],
                        [t.description for t in req.tokens],
                        [t.status for t in req.tokens],
                        [t.set_expiry for t in req.tokens],
                        [_timestamp(t.expires_at) for t in req.tokens],
                    )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != NAME_INDEX:
                    raise
                clash = await self._name_clash(conn, pairs, renamed_ids)
                if clash is None:  # gone again by now: the registry's generic conflict
                    raise
                raise _name_taken(clash) from exc
            await self._audit(conn, "updated", req.actor_id, req.client_addr, ids)
        return ids

    async def delete(self, req: IdsRequest) -> list[int]:
        async with self.pool.acquire() as conn, conn.transaction():
            super_admin = await self._actor(conn, req.actor_id)
            await self._lock_visible(conn, req.actor_id, req.ids, super_admin)
            await conn.execute(Q["delete_tokens"], req.ids)
            await self._audit(conn, "deleted", req.actor_id, req.client_addr, req.ids)
        return req.ids

    async def generate(self, req: IdsRequest) -> list[GeneratedToken]:
        """A new secret for each token; the old one stops working when this commits."""
        secrets = [new_hex_secret(32) for _ in req.ids]
        async with self.pool.acquire() as conn, conn.transaction():
            super_admin = await self._actor(conn, req.actor_id)
            await self._lock_visible(conn, req.actor_id, req.ids, super_admin)
            await conn.execute(Q["set_secrets"], req.ids, [lookup_hash(s, self._pepper) for s in secrets])
            await self._audit(conn, "generated", req.actor_id, req.client_addr, req.ids)
        return [GeneratedToken(id=i, secret=s) for i, s in zip(req.ids, secrets, strict=True)]

    async def query(self, req: QueryRequest) -> ZabbixTokenPage:
        """One round trip when something matches; a second one, to tell why, when nothing does."""
        q = build_query(req, self._pepper)
        async with self.pool.acquire() as conn:
            if req.count:
                count = rows_as(_Count, await conn.fetch(q.sql, *q.args))[0].count
                if not count:
                    _check_actor(await acting_user(conn, req.actor_id))
                return ZabbixTokenPage(count=count)
            rows = await conn.fetch(q.sql, *q.args)
            if not rows:
                _check_actor(await acting_user(conn, req.actor_id))
        if len(rows) > MAX_ROWS:
            raise TooManyRows(f"more than {MAX_ROWS} tokens match", limit=MAX_ROWS)
        tokens = rows_as(ZabbixToken, rows)
        return ZabbixTokenPage(tokens=tokens)

    async def authenticate(self, secret: str) -> TokenAuthenticated:
        """The owner of a usable token, the token's id and its end; records the use."""
        secret_hash = lookup_hash(secret, self._pepper)
        row = await self.pool.fetchrow(Q["authenticate"], secret_hash)
        if row is not None:
            hit = row_as(_Authenticated, row)
            user = row_as(UserReply, row)
            return TokenAuthenticated(user=user, token_id=hit.token_id, expires_at=hit.expires_at)
        why = await self.pool.fetchrow(Q["why_not_authenticated"], secret_hash)
        if why is not None:
            token = row_as(_WhyNot, why)
            if token.status == "active" and token.user_status == "active" and token.expired:
                raise Expired("the token has expired")
        raise BadCredentials("unknown or disabled token")
