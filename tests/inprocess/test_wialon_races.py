"""A user holds at most 100 Wialon tokens, whatever the timing: a create that waited for another
one's transaction counts what that one committed (the count is read after the owner's lock is held,
in a statement of its own, so it sees every token committed before the lock was granted)."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from registry.wialon_tokens import MAX_TOKENS_PER_USER
from shared.contracts.registry.wialon_tokens import CreateToken
from shared.errors import Conflict
from tests.inprocess.conftest import Trio
from tests.inprocess.test_zabbix_races import blocked_on_a_lock

FILLER = """
INSERT INTO tokens (kind, owner_id, secret_hash, name, flags, lifetime_s)
SELECT 'wialon', $1, decode(md5($2 || g::text), 'hex'), 'filler', 256, 0 FROM generate_series(1, $3) g
"""


async def test_a_create_that_waited_for_the_100th_token_is_refused(
    trio: Trio, raw: asyncpg.Connection
) -> None:
    owner: int = await raw.fetchval(
        "INSERT INTO users (username, role) VALUES ($1, 'user') RETURNING id", f"w-{secrets.token_hex(4)}"
    )
    await raw.execute(FILLER, owner, secrets.token_hex(8), MAX_TOKENS_PER_USER - 2)  # 98 held
    create = CreateToken(actor_id=owner, actor_flags=-1, app="race", flags=256)
    await trio.registry.create_wialon_token(create)  # the 99th, as a client makes it

    # Another writer creates the 100th: it holds the owner's lock, uncommitted, while ours asks.
    holding = raw.transaction()
    await holding.start()
    await raw.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", owner)
    await raw.execute(FILLER, owner, secrets.token_hex(8), 1)
    racing = asyncio.create_task(trio.registry.create_wialon_token(create))
    await blocked_on_a_lock(raw, racing)
    await holding.commit()

    with pytest.raises(Conflict):
        await racing
    held = await raw.fetchval("SELECT count(*) FROM tokens WHERE owner_id = $1 AND kind = 'wialon'", owner)
    assert held == MAX_TOKENS_PER_USER
