"""A Zabbix token's name is unique per owner, whatever the timing: the check and the write are one
step (the unique index `tokens_zabbix_owner_name_key`), and a request that loses a race is told the
real name and user, in Zabbix's words."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import TypeVar

import asyncpg
import pytest

from shared.contracts.registry.zabbix_tokens import (
    CreateRequest,
    NewToken,
    QueryRequest,
    TokenChange,
    UpdateRequest,
)
from shared.errors import NameTaken
from tests.conftest import ADMIN_PASSWORD
from tests.inprocess.conftest import Trio
from tests.inprocess.test_zabbix_inprocess import rpc

T = TypeVar("T")
ADMIN_ID = 1


async def waiting_for_locks(conn: asyncpg.Connection) -> int:
    """How many other backends of this database wait for a lock (a table's, or a transaction's
    on a unique index). A transaction reads pg_stat_activity once and keeps seeing it as it was,
    unless told to forget it."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    return count


async def blocked_on_a_lock(conn: asyncpg.Connection, task: asyncio.Future[T], waiters: int = 1) -> None:
    """Wait until `waiters` other backends wait for a lock (ours), or the work ends (which fails)."""
    for _ in range(500):
        if await waiting_for_locks(conn) >= waiters or task.done():
            break
        await asyncio.sleep(0.01)
    assert not task.done(), "the registry did not wait for the concurrent transaction"
    assert await waiting_for_locks(conn) >= waiters


async def refused_once_committed(
    raw: asyncpg.Connection, held: tuple[str, *tuple[object, ...]], work: Coroutine[object, object, T]
) -> NameTaken:
    """Run `work` while `raw` holds the statement `held` (SQL, then its arguments) uncommitted;
    commit once the work waits for it; the NameTaken the work then ends with."""
    holding = raw.transaction()
    await holding.start()
    await raw.execute(*held)
    task = asyncio.create_task(work)
    await blocked_on_a_lock(raw, task)
    await holding.commit()
    with pytest.raises(NameTaken) as refused:
        await task
    return refused.value


def unique_name(label: str) -> str:
    return f"{label}-{secrets.token_hex(4)}"


async def names_of(trio: Trio, name: str) -> int:
    page = await trio.registry.query_zabbix_tokens(
        QueryRequest(actor_id=ADMIN_ID, filter={"name": [name]}, count=True)
    )
    assert page.count is not None
    return page.count


async def test_twenty_concurrent_creates_of_one_name_one_wins_the_others_are_told_name_and_user(
    trio: Trio, raw: asyncpg.Connection
) -> None:
    """All twenty are let through their check of the name before any of them may insert (a SHARE
    lock on tokens holds back writes, not reads), so the race is run every time, not by chance."""
    session = (await rpc(trio, "user.login", {"username": "Admin", "password": ADMIN_PASSWORD}))["result"]
    name = unique_name("race")
    gate = raw.transaction()
    await gate.start()
    await raw.execute("LOCK TABLE tokens IN SHARE MODE")
    calls = asyncio.gather(*(rpc(trio, "token.create", {"name": name}, session) for _ in range(20)))
    # Every connection of the registry's pool holds a create that has checked the name.
    await blocked_on_a_lock(raw, calls, waiters=min(20, trio.settings.db_pool_max))
    await gate.commit()
    replies = await calls
    won = [reply for reply in replies if "result" in reply]
    lost = [reply for reply in replies if "error" in reply]
    assert len(won) == 1, replies
    assert len(lost) == 19
    for reply in lost:
        assert reply == {
            "jsonrpc": "2.0",
            "error": {
                "code": -32602,
                "message": "Invalid params.",
                "data": f'API token "{name}" already exists for userid "{ADMIN_ID}".',
            },
            "id": 1,
        }
    assert await names_of(trio, name) == 1


async def test_a_create_that_meets_a_name_being_committed_waits_and_is_told_it(
    trio: Trio, raw: asyncpg.Connection
) -> None:
    """The check before the insert cannot see a token another transaction has not committed yet:
    the insert waits for it on the unique index, and then refuses the name, rolling back the rest."""
    name, other = unique_name("held"), unique_name("other")
    request = CreateRequest(
        actor_id=ADMIN_ID,
        tokens=[NewToken(owner_id=ADMIN_ID, name=other), NewToken(owner_id=ADMIN_ID, name=name)],
    )
    held = "INSERT INTO tokens (kind, owner_id, creator_id, name) VALUES ('zabbix', $1, $1, $2)"
    refused = await refused_once_committed(
        raw, (held, ADMIN_ID, name), trio.registry.create_zabbix_tokens(request)
    )
    assert (refused.owner_id, refused.name, refused.position) == (ADMIN_ID, name, None)
    assert await names_of(trio, other) == 0  # all or nothing


async def test_a_rename_that_meets_a_name_being_committed_waits_and_is_told_it(
    trio: Trio, raw: asyncpg.Connection
) -> None:
    first, second, wanted = unique_name("first"), unique_name("second"), unique_name("wanted")
    ids = await trio.registry.create_zabbix_tokens(
        CreateRequest(
            actor_id=ADMIN_ID,
            tokens=[NewToken(owner_id=ADMIN_ID, name=first), NewToken(owner_id=ADMIN_ID, name=second)],
        )
    )
    rename = UpdateRequest(
        actor_id=ADMIN_ID, tokens=[TokenChange(id=ids[1], name=wanted, description="renamed")]
    )
    held = ("UPDATE tokens SET name = $2 WHERE id = $1", ids[0], wanted)
    refused = await refused_once_committed(raw, held, trio.registry.update_zabbix_tokens(rename))
    assert (refused.owner_id, refused.name, refused.position) == (ADMIN_ID, wanted, None)
    page = await trio.registry.query_zabbix_tokens(QueryRequest(actor_id=ADMIN_ID, ids=[ids[1]]))
    assert [(t.name, t.description) for t in page.tokens] == [(second, "")]  # untouched


async def test_two_items_of_one_request_with_one_name_are_refused_by_position(trio: Trio) -> None:
    name = unique_name("twice")
    request = CreateRequest(
        actor_id=ADMIN_ID,
        tokens=[NewToken(owner_id=ADMIN_ID, name=name), NewToken(owner_id=ADMIN_ID, name=name)],
    )
    with pytest.raises(NameTaken) as refused:
        await trio.registry.create_zabbix_tokens(request)
    assert (refused.value.owner_id, refused.value.name, refused.value.position) == (ADMIN_ID, name, 2)
    assert await names_of(trio, name) == 0
