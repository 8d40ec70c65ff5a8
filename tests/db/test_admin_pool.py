"""The admin store's pool plans every run of a statement for its values; the dialects' pools keep
cached plans (shared/postgres.py, docs/DECISIONS.md "Admin API")."""

from __future__ import annotations

from shared.postgres import create_pool


async def test_only_a_pool_made_for_custom_plans_forces_them(database_url: str) -> None:
    for custom_plans, expected in ((True, "force_custom_plan"), (False, "auto")):
        pool = await create_pool(database_url, 1, 5.0, custom_plans=custom_plans)
        try:
            assert await pool.fetchval("SHOW plan_cache_mode") == expected
        finally:
            await pool.close()
