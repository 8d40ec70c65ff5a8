"""Named API tokens (kind 'zabbix'): create, update, delete, generate a secret, query, authenticate.

Internal vocabulary: ids are integers, times unix seconds, `null` for "never" in output; in query
filters on a time, 0 stands for "never". Who may do what is decided here, from the actor's role in
Postgres: a super admin manages every user's tokens, admins and users only their own, guests none.
Tokens or owners the actor may not touch are reported exactly like missing ones.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from registry.store import User
from shared.audit import record_audit
from shared.contracts.registry.accounts import AuditEvent
from shared.errors import (
    BadCredentials,
    Expired,
    NameTaken,
    NoSuchUser,
    NotFound,
    Refused,
    TooManyRows,
)
from shared.postgres import Connection, row_as
from shared.secrets import lookup_hash, new_hex_secret
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("zabbix_tokens.sql"))

Status = Literal["active", "disabled"]
# 0 is a valid id to ask for (nothing has it), as in Zabbix.
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]
# Before 1970 is allowed: a token may be created already expired.
UnixTime = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
# A name's length is the dialect's rule; this only keeps rows sane.
Name = Annotated[str, Field(min_length=1, max_length=255)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewToken(_Body):
    owner_id: Id
    name: Name
    description: Annotated[str, Field(max_length=65535)] = ""
    status: Status = "active"
    expires_at: UnixTime | None = None


class TokenChange(_Body):
    id: Id
    name: Name | None = None
    description: Annotated[str, Field(max_length=65535)] | None = None
    status: Status | None = None
    expires_at: UnixTime | None = None
    # expires_at=None is a value ("never"); this says whether to change it at all.
    set_expiry: bool = False


class CreateRequest(_Body):
    actor_id: Id
    tokens: Annotated[list[NewToken], Field(min_length=1, max_length=10000)]
    client_addr: str | None = None


class UpdateRequest(_Body):
    actor_id: Id
    tokens: Annotated[list[TokenChange], Field(min_length=1, max_length=10000)]
    client_addr: str | None = None


class IdsRequest(_Body):
    actor_id: Id
    ids: Annotated[list[Id], Field(min_length=1, max_length=10000)]
    client_addr: str | None = None


SortField = Literal["id", "name", "last_used_at", "status", "expires_at", "created_at"]
FilterField = Literal[
    "id", "owner_id", "creator_id", "name", "status", "last_used_at", "expires_at", "created_at"
]
SearchField = Literal["name", "description"]


# Most items in any list of a request; the dialect refuses more before it asks.
MAX_ITEMS = 10_000
# Most patterns per searched field: each is a condition of its own (and a query parameter).
MAX_SEARCH_PATTERNS = 100
# Most tokens one query answers; a query that matches more is refused (too_many), not cut short.
MAX_ROWS = 10_000

Items = Annotated[list[Id], Field(max_length=MAX_ITEMS)]


class QueryRequest(_Body):
    actor_id: Id
    ids: Items | None = None
    owner_ids: Items | None = None
    secret: str | None = None
    valid_at: UnixTime | None = None
    expired_at: UnixTime | None = None
    filter: dict[FilterField, Annotated[list[int | str], Field(max_length=MAX_ITEMS)]] = Field(
        default_factory=dict
    )
    search: dict[SearchField, Annotated[list[str], Field(max_length=MAX_SEARCH_PATTERNS)]] = Field(
        default_factory=dict
    )
    search_any: bool = False  # fields' conditions joined by OR instead of AND
    search_prefix: bool = False  # patterns match at the start only
    search_exclude: bool = False  # NOT LIKE
    search_wildcards: bool = False  # `*` in a pattern matches anything; no implicit wildcards
    sort: list[tuple[SortField, Literal["asc", "desc"]]] = Field(default_factory=list)
    limit: Annotated[int, Field(ge=1)] | None = None
    count: bool = False


# Column expressions by field. Queries are assembled only from these fixed texts and $n parameters.
_SORT_EXPRESSION: dict[str, str] = {
    "id": "t.id",
    "name": "t.name",
    "last_used_at": "coalesce(t.last_used_at, 'epoch')",
    "status": "(t.status = 'disabled')",
    "expires_at": "coalesce(t.expires_at, 'epoch')",
    "created_at": "t.created_at",
}
_EPOCH = "coalesce(unix_seconds({}), 0)"
_FILTER_EXPRESSION: dict[str, tuple[str, str]] = {
    "id": ("t.id", "bigint"),
    "owner_id": ("t.owner_id", "bigint"),
    "creator_id": ("t.creator_id", "bigint"),
    "name": ("t.name", "text"),
    "status": ("t.status", "text"),
    "last_used_at": (_EPOCH.format("t.last_used_at"), "bigint"),
    "expires_at": (_EPOCH.format("t.expires_at"), "bigint"),
    "created_at": (_EPOCH.format("t.created_at"), "bigint"),
}
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_SEARCH_EXPRESSION: dict[str, str] = {"name": "t.name", "description": "t.description"}


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


class _Query:
    """Collects conditions and their parameters for one SELECT."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def _one_of(column: str, values: list[int], q: _Query) -> str:
    """`column = $n` for one value, `= ANY($n)` for several. The common single-id lookup then gets
    the cached generic plan: Postgres cannot cost `= ANY` of an unknown array, keeps planning it
    afresh on every execution, and planning was two thirds of that statement's server time."""
    if len(values) == 1:
        return f"{column} = {q.param(values[0])}::bigint"
    return f"{column} = ANY({q.param(values)}::bigint[])"


def build_query(req: QueryRequest, pepper: str) -> tuple[str, str, list[Any]]:
    """The conditions of a token query, its ORDER BY/LIMIT, and the parameters of both ($1 is
    the actor, whose role the SQL itself turns into the scope)."""
    q = _Query()
    q.param(req.actor_id)
    if req.ids is not None:
        q.conditions.append(_one_of("t.id", req.ids, q))
    if req.owner_ids is not None:
        q.conditions.append(_one_of("t.owner_id", req.owner_ids, q))
    if req.secret is not None:
        q.conditions.append(f"t.secret_hash = {q.param(lookup_hash(req.secret, pepper))}")
    if req.valid_at is not None:
        q.conditions.append(f"(t.expires_at IS NULL OR t.expires_at > {q.param(_timestamp(req.valid_at))})")
    if req.expired_at is not None:
        q.conditions.append(f"t.expires_at <= {q.param(_timestamp(req.expired_at))}")
    for field, values in req.filter.items():
        expression, sql_type = _FILTER_EXPRESSION[field]
        typed = _integers(values) if sql_type == "bigint" else [str(v) for v in values]
        # Values of the wrong type can match nothing; a filter left with none matches no row.
        q.conditions.append(f"{expression} = ANY({q.param(typed)}::{sql_type}[])" if typed else "false")
    matches = []
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
        q.conditions.append("(" + (" OR " if req.search_any else " AND ").join(matches) + ")")

    where = "".join(f"\n      AND {c}" for c in q.conditions)
    order = ", ".join(f"{_SORT_EXPRESSION[f]} {d.upper()}" for f, d in req.sort)
    tail = f"ORDER BY {order + ', ' if order else ''}t.id"
    if not req.count:
        # One row past the most a query answers, to tell "exactly MAX_ROWS" from "more".
        tail += f" LIMIT {q.param(min(req.limit or MAX_ROWS + 1, MAX_ROWS + 1))}"
    return where, tail, q.args


_TOKEN_FIELDS = (
    "id",
    "owner_id",
    "creator_id",
    "name",
    "description",
    "status",
    "created_at",
    "expires_at",
    "last_used_at",
)


def _check_actor(row: asyncpg.Record | dict[str, Any] | None) -> None:
    """Refuse unknown, disabled and guest actors (guests manage no tokens)."""
    if row is None or row["actor_status"] != "active":
        raise BadCredentials("unknown or disabled actor")
    if row["actor_role"] == "guest":
        raise Refused("guests manage no tokens", reason="role")


def _token(row: asyncpg.Record) -> dict[str, Any]:
    return {name: row[name] for name in _TOKEN_FIELDS}


class ZabbixTokens:
    def __init__(self, pool: asyncpg.Pool, pepper: str) -> None:
        self.pool = pool
        self._pepper = pepper

    async def _actor(self, conn: Connection, actor_id: int) -> bool:
        """Whether the actor is a super admin; refuse guests, disabled and unknown actors."""
        row = await conn.fetchrow(Q["actor"], actor_id)
        _check_actor(None if row is None else {"actor_role": row["role"], "actor_status": row["status"]})
        return bool(row is not None and row["role"] == "super_admin")

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
        owners = {
            row["id"]: row["owner_id"]
            for row in await conn.fetch(Q["visible_tokens"], ids, actor_id, super_admin)
        }
        for token_id in ids:
            if token_id not in owners:
                raise NotFound("no such token")
        return owners

    async def _refuse_name_clash(
        self, conn: Connection, owners: list[int], names: list[str], token_ids: list[int | None]
    ) -> None:
        clash = await conn.fetchrow(Q["name_clashes"], owners, names, token_ids)
        if clash is not None:
            raise NameTaken(
                "the owner has a token with this name", owner_id=clash["owner_id"], name=clash["name"]
            )

    async def create(self, req: CreateRequest) -> list[int]:
        async with self.pool.acquire() as conn, conn.transaction():
            super_admin = await self._actor(conn, req.actor_id)
            owners = [t.owner_id for t in req.tokens]
            existing = {row["id"] for row in await conn.fetch(Q["existing_owners"], owners)}
            for owner in owners:
                if owner not in existing or (not super_admin and owner != req.actor_id):
                    raise NoSuchUser("no such user", user_id=owner)
            names = [t.name for t in req.tokens]
            await self._refuse_name_clash(conn, owners, names, [None] * len(owners))
            rows = await conn.fetch(
                Q["insert_tokens"],
                req.actor_id,
                owners,
                names,
                [t.description for t in req.tokens],
                [t.status for t in req.tokens],
                [_timestamp(t.expires_at) for t in req.tokens],
            )
            ids = sorted(row["id"] for row in rows)
            await self._audit(conn, "created", req.actor_id, req.client_addr, ids)
        return ids

    async def update(self, req: UpdateRequest) -> list[int]:
        ids = [t.id for t in req.tokens]
        async with self.pool.acquire() as conn, conn.transaction():
            super_admin = await self._actor(conn, req.actor_id)
            owners = await self._lock_visible(conn, req.actor_id, ids, super_admin)
            renamed = [t for t in req.tokens if t.name is not None]
            seen: set[tuple[int, str]] = set()
            for position, change in enumerate(req.tokens, start=1):
                if change.name is not None:
                    pair = (owners[change.id], change.name)
                    if pair in seen:
                        raise NameTaken(
                            "two tokens would get the same name",
                            owner_id=pair[0],
                            name=pair[1],
                            position=position,
                        )
                    seen.add(pair)
            if renamed:
                await self._refuse_name_clash(
                    conn,
                    [owners[t.id] for t in renamed],
                    [str(t.name) for t in renamed],
                    [t.id for t in renamed],
                )
            await conn.execute(
                Q["update_tokens"],
                ids,
                [t.name for t in req.tokens],
                [t.description for t in req.tokens],
                [t.status for t in req.tokens],
                [t.set_expiry for t in req.tokens],
                [_timestamp(t.expires_at) for t in req.tokens],
            )
            await self._audit(conn, "updated", req.actor_id, req.client_addr, ids)
        return ids

    async def delete(self, req: IdsRequest) -> list[int]:
        async with self.pool.acquire() as conn, conn.transaction():
            super_admin = await self._actor(conn, req.actor_id)
            await self._lock_visible(conn, req.actor_id, req.ids, super_admin)
            await conn.execute(Q["delete_tokens"], req.ids)
            await self._audit(conn, "deleted", req.actor_id, req.client_addr, req.ids)
        return req.ids

    async def generate(self, req: IdsRequest) -> list[dict[str, Any]]:
        """A new secret for each token; the old one stops working when this commits."""
        secrets = [new_hex_secret(32) for _ in req.ids]
        async with self.pool.acquire() as conn, conn.transaction():
            super_admin = await self._actor(conn, req.actor_id)
            await self._lock_visible(conn, req.actor_id, req.ids, super_admin)
            await conn.execute(Q["set_secrets"], req.ids, [lookup_hash(s, self._pepper) for s in secrets])
            await self._audit(conn, "generated", req.actor_id, req.client_addr, req.ids)
        return [{"id": token_id, "secret": secret} for token_id, secret in zip(req.ids, secrets, strict=True)]

    async def query(self, req: QueryRequest) -> dict[str, Any]:
        where, order, args = build_query(req, self._pepper)
        if req.count:
            rows = await self.pool.fetch(Q["count_tokens"].replace("/*where*/", where), *args)
        else:
            rows = await self.pool.fetch(
                Q["select_tokens"].replace("/*where*/", where).replace("/*order*/", order), *args
            )
        _check_actor(rows[0] if rows else None)
        if req.count:
            return {"count": rows[0]["count"]}
        if len(rows) > MAX_ROWS:
            raise TooManyRows(f"more than {MAX_ROWS} tokens match", limit=MAX_ROWS)
        return {"tokens": [_token(row) for row in rows if row["id"] is not None]}

    async def authenticate(self, secret: str) -> tuple[User, int, int | None]:
        """The owner of a usable token, the token's id and its end (unix, None: never); records
        the use."""
        secret_hash = lookup_hash(secret, self._pepper)
        row = await self.pool.fetchrow(Q["authenticate"], secret_hash)
        if row is not None:
            return row_as(User, row), row["token_id"], row["expires_at"]
        why = await self.pool.fetchrow(Q["why_not_authenticated"], secret_hash)
        if (
            why is not None
            and why["status"] == "active"
            and why["user_status"] == "active"
            and why["expired"]
        ):
            raise Expired("the token has expired")
        raise BadCredentials("unknown or disabled token")
