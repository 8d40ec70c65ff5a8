"""Every statement the services run is planned with its parameters' values (`PLAN_CACHE_MODE`,
shared/postgres.py): a generic plan, made once while a table was small or an array short, is never
reused for a run it does not fit (a 5,001-name `name_clashes` ran past the statement timeout on one)."""

from __future__ import annotations

from registry.zabbix_tokens import Q
from shared.postgres import PLAN_CACHE_MODE, create_pool

RUNS = 12  # Postgres considers a generic plan after five custom ones


async def test_a_prepared_statement_is_never_given_a_generic_plan(database_url: str) -> None:
    pool = await create_pool(database_url, max_size=1, timeout=5)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == PLAN_CACHE_MODE
            for run in range(RUNS):
                # asyncpg prepares and caches the statement, as the registry's calls do.
                names = [f"plan-{run}-{i}" for i in range(run + 1)]
                clash = await conn.fetchrow(Q["name_clashes"], [1] * len(names), names, [None] * len(names))
                assert clash is None
            plans = await conn.fetchrow(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
                Q["name_clashes"],
            )
    finally:
        await pool.close()
    assert plans is not None
    assert (plans["generic_plans"], plans["custom_plans"]) == (0, RUNS)
