"""Bulk data for benchmarks: Zabbix-kind tokens loaded with COPY into a migrated database."""

from __future__ import annotations

import random
import secrets
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.secrets import lookup_hash

WORDS = ["amber", "azure", "birch", "cedar", "cobalt", "coral", "delta", "ember", "fern", "flint", "frost"]
TRGM_INDEXES = ("tokens_zabbix_name_trgm_idx", "tokens_zabbix_description_trgm_idx")


async def owners(conn: asyncpg.Connection, count: int) -> int:
    """Create `count` users to own tokens; return the first one's id (the rest follow)."""
    first = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM users")
    await conn.copy_records_to_table(
        "users",
        records=[(f"bench-user-{first + i}", "user") for i in range(count)],
        columns=["username", "role"],
    )
    first_id: int = await conn.fetchval(
        "SELECT min(id) FROM users WHERE username = $1", f"bench-user-{first}"
    )
    return first_id


async def zabbix_tokens(
    dsn: str, count: int, *, age_days: float = 0, owner_count: int = 1000, label: str = ""
) -> float:
    """COPY `count` tokens named `<word>-<word>-<n>` created `age_days` ago; return the seconds taken."""
    conn = await asyncpg.connect(dsn)
    try:
        first_owner = await owners(conn, owner_count)
        created = datetime.now(UTC) - timedelta(days=age_days)
        rng = random.Random(7)
        rows = (
            (
                "zabbix",
                first_owner + i % owner_count,
                1,
                f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{label}{i:07d}",
                "",
                "active",
                created,
            )
            for i in range(count)
        )
        started = time.perf_counter()
        # Trigram indexes are built far faster once, after the load, than row by row during it.
        definitions = [
            r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexdef FROM pg_indexes WHERE indexname = ANY($1)", list(TRGM_INDEXES)
            )
        ]
        for name in TRGM_INDEXES:
            await conn.execute(f"DROP INDEX IF EXISTS {name}")
        await conn.copy_records_to_table(
            "tokens",
            records=rows,
            columns=["kind", "owner_id", "creator_id", "name", "description", "status", "created_at"],
        )
        for definition in definitions:
            await conn.execute(definition)
        await conn.execute("ANALYZE tokens")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def api_token(dsn: str, pepper: str, owner_id: int = 1) -> tuple[int, str]:
    """A fresh API token for `owner_id` (Admin by default): its id and secret."""
    secret = secrets.token_hex(32)
    conn = await asyncpg.connect(dsn)
    try:
        token_id: int = await conn.fetchval(
            "INSERT INTO tokens (kind, owner_id, creator_id, name, secret_hash)"
            " VALUES ('zabbix', $1, $1, $2, $3) RETURNING id",
            owner_id,
            f"bench-api-token-{secret[:8]}",
            lookup_hash(secret, pepper),
        )
    finally:
        await conn.close()
    return token_id, secret
