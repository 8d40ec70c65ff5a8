"""Bulk data for `make bench`, loaded with COPY into a migrated database, as the services would
have written it (hashed and sealed secrets, the same columns)."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from registry.vouchers import new_codes, protect
from shared.secrets import Sealer, lookup_hash

WORDS = ["amber", "azure", "birch", "cedar", "cobalt", "coral", "delta", "ember", "fern", "flint", "frost"]
TRGM_INDEXES = ("tokens_zabbix_name_trgm_idx", "tokens_zabbix_description_trgm_idx")
CHUNK = 50_000
U_IDS = [f"room-{n}" for n in range(1000)]
ZABBIX_COLUMNS = ["kind", "owner_id", "creator_id", "name", "description", "status", "created_at"]
VOUCHER_COLUMNS = [
    "kind", "owner_id", "creator_id", "secret_hash", "sealed_secret", "created_at", "first_used_at",
    "expires_at", "repaid_at", "mac", "multi_use", "lifetime_s", "external_ref", "last_used_at",
]  # fmt: skip


async def owners(conn: asyncpg.Connection, count: int, label: str) -> int:
    """`count` users to own tokens; the first one's id (the others follow it)."""
    await conn.copy_records_to_table(
        "users", records=[(f"bench-{label}-{i}", "user") for i in range(count)], columns=["username", "role"]
    )
    first: int = await conn.fetchval("SELECT id FROM users WHERE username = $1", f"bench-{label}-0")
    return first


def zabbix_rows(
    first_owner: int, owner_count: int, count: int, created: datetime, label: str
) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(7)
    for i in range(count):
        name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{label}{i:07d}"
        yield ("zabbix", first_owner + i % owner_count, 1, name, "", "active", created)


async def zabbix_tokens(
    conn: asyncpg.Connection, count: int, *, age_days: float, label: str
) -> tuple[int, int]:
    """COPY `count` Zabbix tokens created `age_days` ago; (first id, last id)."""
    first_owner = await owners(conn, 1000, label)
    created = datetime.now(UTC) - timedelta(days=age_days)
    first_id = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM tokens")
    # Trigram indexes build far faster once, after the load, than row by row during it.
    definitions = [
        r["indexdef"]
        for r in await conn.fetch(
            "SELECT indexdef FROM pg_indexes WHERE indexname = ANY($1)", list(TRGM_INDEXES)
        )
    ]
    for name in TRGM_INDEXES:
        await conn.execute(f"DROP INDEX IF EXISTS {name}")
    await conn.copy_records_to_table(
        "tokens", records=zabbix_rows(first_owner, 1000, count, created, label), columns=ZABBIX_COLUMNS
    )
    for definition in definitions:
        await conn.execute(definition)
    last_id: int = await conn.fetchval("SELECT max(id) FROM tokens")
    return first_id, last_id


def voucher_rows(
    owner_id: int, count: int, pepper: str, sealer: Sealer, age_days: float
) -> Iterator[list[tuple[Any, ...]]]:
    """`count` vouchers in chunks, in a realistic mix: 30 % used, 10 % repaid, half multi-use,
    half with a validity period, a u_id on most; created `age_days` ago, give or take a day."""
    rng = random.Random(6)
    base = datetime.now(UTC) - timedelta(days=age_days)
    made = 0
    taken: set[str] = set()
    while made < count:
        codes = new_codes(min(CHUNK, count - made), taken)
        taken.update(codes)
        hashes, sealed = protect(codes, pepper, sealer)
        rows = []
        for code_hash, box in zip(hashes, sealed, strict=True):
            created = base - timedelta(seconds=rng.randrange(86400))
            multi = rng.random() < 0.5
            lifetime = rng.choice((3600, 86400)) if rng.random() < 0.5 else 0
            used = created + timedelta(seconds=rng.randrange(3600)) if rng.random() < 0.3 else None
            # Validity ends in the future: the sweeper's expiry job is not what is measured here.
            expires = datetime.now(UTC) + timedelta(seconds=lifetime) if used and lifetime else None
            repaid = created + timedelta(seconds=60) if rng.random() < 0.1 else None
            mac = bytes([2, *(rng.randrange(256) for _ in range(5))]) if used else None
            u_id = rng.choice(U_IDS) if rng.random() < 0.8 else None
            rows.append(
                (
                    "voucher",
                    owner_id,
                    owner_id,
                    code_hash,
                    box,
                    created,
                    used,
                    expires,
                    repaid,
                    mac,
                    multi,
                    lifetime,
                    u_id,
                    used,
                )
            )
        made += len(rows)
        yield rows


async def vouchers(
    conn: asyncpg.Connection, owner_id: int, count: int, pepper: str, sealer: Sealer, age_days: float
) -> None:
    # Binary COPY needs a binary codec; asyncpg ships only a text one for macaddr (6 bytes).
    await conn.set_type_codec(
        "macaddr", schema="pg_catalog", encoder=lambda mac: mac, decoder=lambda raw: raw, format="binary"
    )
    for rows in voucher_rows(owner_id, count, pepper, sealer, age_days):
        await conn.copy_records_to_table("tokens", records=rows, columns=VOUCHER_COLUMNS)


async def api_token(conn: asyncpg.Connection, pepper: str, owner_id: int = 1) -> str:
    """A fresh Zabbix API token of `owner_id` (Admin by default); its secret."""
    secret = secrets.token_hex(32)
    await conn.execute(
        "INSERT INTO tokens (kind, owner_id, creator_id, name, secret_hash)"
        " VALUES ('zabbix', $1, $1, $2, $3)",
        owner_id,
        f"bench-api-token-{secret[:8]}",
        lookup_hash(secret, pepper),
    )
    return secret


def timed(label: str, started: float) -> None:
    print(f"  {label} in {time.perf_counter() - started:.1f} s", flush=True)
