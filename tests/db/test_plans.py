"""A Zabbix write plans its statements for the batch at hand (`plan_for_values`, shared/postgres.py):
Postgres keeps a generic plan for a prepared statement once it looks no worse than the custom ones,
and one kept from batches of a name or two ran a 5,001-name `name_clashes` past the statement timeout."""

from __future__ import annotations

import asyncpg

from registry.zabbix_tokens import Q
from shared.postgres import plan_for_values

RUNS = 12  # Postgres considers a generic plan after five custom ones


async def plans_of_name_clashes(conn: asyncpg.Connection, custom: bool) -> tuple[int, int]:
    """Run name_clashes RUNS times on small batches, as a quiet day's token.create calls do; the
    statement's (generic, custom) plan counts."""
    statement = await conn.prepare(Q["name_clashes"])  # prepared once and reused, as the pool's cache does
    for run in range(RUNS):
        async with conn.transaction():
            if custom:
                await plan_for_values(conn)
            names = [f"plan-{run}-{i}" for i in range(run % 2 + 1)]
            assert await statement.fetchrow([1] * len(names), names, [None] * len(names)) is None
    plans = await conn.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        Q["name_clashes"],
    )
    assert plans is not None
    return plans["generic_plans"], plans["custom_plans"]


async def test_a_zabbix_write_never_reuses_a_generic_plan(database_url: str) -> None:
    plans = []
    for custom in (False, True):  # a connection each: prepared statements belong to their session
        conn = await asyncpg.connect(database_url)
        try:
            plans.append(await plans_of_name_clashes(conn, custom))
        finally:
            await conn.close()
    (generic, _), planned = plans
    assert generic > 0  # what Postgres does on its own: the hazard is real
    assert planned == (0, RUNS)
