"""registry/zabbix_tokens.sql against the migrated schema: every named block is a whole statement
Postgres accepts, and token.get's statements, grown from them by appending, are too, whatever the
request asks; no text of a request ever reaches the SQL, only $n parameters."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import get_args

import asyncpg
import pytest

from registry.zabbix_tokens import Q, build_query
from shared.contracts.registry.zabbix_tokens import FilterField, QueryRequest, SearchField, SortField

# Text a request could smuggle, if any of it reached the SQL.
SMUGGLED = "x'); DROP TABLE tokens; --"


@pytest.fixture(scope="module")
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("name", sorted(Q))
async def test_every_named_block_prepares(conn: asyncpg.Connection, name: str) -> None:
    await conn.prepare(Q[name])


def requests() -> list[QueryRequest]:
    """A request for each thing token.get may ask, and one asking for all of them at once."""
    filters: list[FilterField] = list(get_args(FilterField))
    searches: list[SearchField] = list(get_args(SearchField))
    sorts: list[SortField] = list(get_args(SortField))
    every = QueryRequest(
        actor_id=1,
        ids=[1, 2],
        owner_ids=[1],
        secret=SMUGGLED,
        valid_at=0,
        expired_at=2_000_000_000,
        filter={name: [SMUGGLED, 7] for name in filters},
        search={name: [SMUGGLED, "*a*", ""] for name in searches},
        search_any=True,
        search_prefix=True,
        search_exclude=True,
        search_wildcards=True,
        sort=[(name, "desc") for name in sorts],
        limit=5,
    )
    return [
        QueryRequest(actor_id=1),
        QueryRequest(actor_id=1, ids=[1]),
        QueryRequest(actor_id=1, ids=[]),
        *(QueryRequest(actor_id=1, filter={name: [SMUGGLED]}) for name in filters),
        *(QueryRequest(actor_id=1, filter={name: []}) for name in filters),
        *(QueryRequest(actor_id=1, search={name: [SMUGGLED]}) for name in searches),
        *(QueryRequest(actor_id=1, sort=[(name, "asc")]) for name in sorts),
        every,
        every.model_copy(update={"count": True}),
    ]


@pytest.mark.parametrize("request_", requests(), ids=lambda r: r.model_dump_json(exclude_defaults=True)[:60])
async def test_token_get_statements_prepare_and_hold_no_request_text(
    conn: asyncpg.Connection, request_: QueryRequest
) -> None:
    statement = build_query(request_, "pepper-for-the-test")
    assert SMUGGLED not in statement.sql
    assert "DROP" not in statement.sql
    numbers = {int(n) for n in re.findall(r"\$(\d+)", statement.sql)}
    assert numbers == set(range(1, len(statement.args) + 1))
    assert statement.sql.startswith(Q["count_tokens"] if request_.count else Q["select_tokens"])
    prepared = await conn.prepare(statement.sql)
    await prepared.fetch(*statement.args)
