"""The sweeper, run as real processes (`python -m sweeper --once`) against a database of its own.

Rows are backdated in SQL; nothing mocks the clock.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio

from shared import revocations
from shared.redis import Subscriber, sweeper_last_pass_key
from tests.conftest import (
    FreshDatabases,
    RedisTarget,
    base_environment,
    next_message,
    redis_for,
    run_cli,
    subscribe,
)
from tests.e2e.harness import ServiceProcess, http_status
from tests.ports import free_port

SWEEP = [sys.executable, "-m", "sweeper"]


@dataclass
class World:
    dsn: str
    env: dict[str, str]
    owner_id: int


@pytest.fixture
async def world(fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str) -> World:
    dsn = fresh_databases.dsn(fresh_databases.name())
    env = base_environment(dsn, redis_server, f"{redis_prefix}sweep-{secrets.token_hex(3)}:")
    assert run_cli(["migrate"], env).returncode == 0
    conn = await asyncpg.connect(dsn)
    try:
        owner_id = await conn.fetchval(
            "INSERT INTO users (username, role) VALUES ('owner', 'user') RETURNING id"
        )
    finally:
        await conn.close()
    return World(dsn, env, owner_id)


async def execute(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


INSERT = """
INSERT INTO tokens (kind, owner_id, name, created_at, last_used_at, expires_at, deleted_at,
                    secret_hash, sealed_secret, multi_use, lifetime_s)
SELECT $1, $2, $3, now() - $4::text::interval, now() - $5::text::interval, now() - $6::text::interval,
       now() - $7::text::interval,
       CASE WHEN $1 = 'voucher' THEN gen_random_uuid()::text::bytea END,
       CASE WHEN $1 = 'voucher' THEN '\\x00'::bytea END,
       CASE WHEN $1 = 'voucher' THEN false END,
       CASE WHEN $1 = 'voucher' THEN 0 END
RETURNING id
"""


async def token(
    w: World,
    kind: str,
    name: str,
    *,
    created: str = "1 day",
    used: str | None = None,
    expires: str | None = None,
    deleted: str | None = None,
) -> int:
    """A token backdated as told; `expires="-1 hour"` is an end one hour ahead."""
    rows = await execute(w.dsn, INSERT, kind, w.owner_id, name, created, used, expires, deleted)
    token_id: int = rows[0]["id"]
    return token_id


def sweep_once(env: dict[str, str], *extra: str) -> dict[str, int]:
    result = subprocess.run(
        [*SWEEP, "--once", *extra], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    counts: dict[str, int] = json.loads(result.stdout.strip().splitlines()[-1])
    return counts


async def remaining(w: World) -> set[str]:
    return {row["name"] for row in await execute(w.dsn, "SELECT name FROM tokens")}


async def test_the_100_day_idle_boundary_for_every_kind(world: World) -> None:
    for kind in ("zabbix", "wialon", "voucher"):
        await token(world, kind, f"{kind}-99d23h", created="99 days 23 hours")
        await token(world, kind, f"{kind}-100d", created="100 days 1 minute")
        await token(world, kind, f"{kind}-used-recently", created="400 days", used="99 days 23 hours")
        await token(world, kind, f"{kind}-used-long-ago", created="400 days", used="100 days 1 minute")
    # Wialon's rule holds even for a token without end (dur 0: expires_at NULL).
    await token(world, "wialon", "wialon-dur0-idle", created="150 days", expires=None)

    before = int(time.time())
    counts = sweep_once(world.env)

    assert counts["delete_idle"] == 7
    # The pass is recorded where the admin summary reads it (shared/redis.py).
    client = redis.asyncio.Redis.from_url(world.env["REDIS_URL"])
    try:
        recorded = await client.get(sweeper_last_pass_key(world.env["TOKENHUB_REDIS_PREFIX"]))
    finally:
        await client.aclose()
    assert recorded is not None
    assert before <= int(recorded) <= time.time()
    assert await remaining(world) == {
        f"{kind}-{suffix}"
        for kind in ("zabbix", "wialon", "voucher")
        for suffix in ("99d23h", "used-recently")
    }
    audited = await execute(world.dsn, "SELECT details FROM audit_log WHERE event = 'swept_idle'")
    assert sum(json.loads(row["details"])["count"] for row in audited) == 7


async def test_per_kind_idle_override(world: World) -> None:
    await token(world, "zabbix", "zabbix-40d", created="40 days")
    await token(world, "voucher", "voucher-40d", created="40 days")
    counts = sweep_once(dict(world.env, TOKENHUB_IDLE_DAYS_VOUCHER="30"))
    assert counts["delete_idle"] == 1
    assert await remaining(world) == {"zabbix-40d"}


async def test_expiry_marks_tokens_and_announces_revocations(world: World, redis_target: RedisTarget) -> None:
    """Against one Redis and against a Redis Cluster (the markers land on several nodes)."""
    env = dict(world.env, **redis_target.env)
    prefix = env["TOKENHUB_REDIS_PREFIX"]
    ended = [
        await token(world, kind, f"{kind}-ended", expires="1 minute")
        for kind in ("zabbix", "wialon", "voucher")
    ]
    alive = await token(world, "zabbix", "zabbix-alive", expires="-1 hour")
    client = redis_for(env)
    try:
        async with Subscriber(client, env["REDIS_URL"], 3.0).pubsub() as pubsub:
            await subscribe(pubsub, revocations.channel(prefix))
            counts = sweep_once(env)
            message = await next_message(pubsub, 5)
        markers = [await client.exists(revocations.marker_key(prefix, i)) for i in [*ended, alive]]
    finally:
        await client.aclose()

    assert counts["expire"] == 3
    rows = {r["id"]: r["expired"] for r in await execute(world.dsn, "SELECT id, expired FROM tokens")}
    assert [rows[i] for i in ended] == [True, True, True]
    assert rows[alive] is False
    assert message is not None
    assert sorted(json.loads(message["data"])["token_ids"]) == sorted(ended)
    assert markers == [0, 1, 0, 0]  # a marker only for the kind that opens sessions (Wialon)
    assert sweep_once(env)["expire"] == 0  # marked once, not again


async def test_soft_deleted_vouchers_are_purged_after_the_retention(world: World) -> None:
    await token(world, "voucher", "deleted-31d", deleted="31 days")
    await token(world, "voucher", "deleted-29d", deleted="29 days")
    await token(world, "voucher", "live")
    counts = sweep_once(world.env)
    assert counts["purge_vouchers"] == 1
    assert await remaining(world) == {"deleted-29d", "live"}


async def test_dry_run_counts_and_changes_nothing(world: World) -> None:
    await token(world, "zabbix", "idle", created="200 days")
    await token(world, "zabbix", "ended", expires="1 day")
    await token(world, "voucher", "gone", deleted="60 days")
    before = await execute(world.dsn, "SELECT * FROM tokens ORDER BY id")
    assert sweep_once(world.env, "--dry-run") == {"expire": 1, "delete_idle": 1, "purge_vouchers": 1}
    assert await execute(world.dsn, "SELECT * FROM tokens ORDER BY id") == before


async def idle_rows(w: World, count: int) -> set[int]:
    rows = await execute(
        w.dsn,
        "INSERT INTO tokens (kind, owner_id, name, created_at)"
        " SELECT 'zabbix', $1, 'bulk-' || g, now() - interval '101 days' FROM generate_series(1, $2) g"
        " RETURNING id",
        w.owner_id,
        count,
    )
    return {row["id"] for row in rows}


async def swept_ids(w: World) -> list[int]:
    rows = await execute(w.dsn, "SELECT details FROM audit_log WHERE event = 'swept_idle'")
    return [token_id for row in rows for token_id in json.loads(row["details"])["token_ids"]]


async def test_three_sweepers_at_once_handle_every_row_exactly_once(world: World) -> None:
    ids = await idle_rows(world, 50_000)
    procs = [
        await asyncio.create_subprocess_exec(*SWEEP, "--once", env=world.env, stdout=asyncio.subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [json.loads((await p.communicate())[0].decode().strip().splitlines()[-1]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]

    assert sum(out["delete_idle"] for out in outputs) == 50_000
    swept = await swept_ids(world)
    assert len(swept) == 50_000  # no row reported twice...
    assert set(swept) == ids  # ...and none missed
    assert await execute(world.dsn, "SELECT id FROM tokens") == []


async def test_kill_9_mid_pass_loses_nothing(world: World) -> None:
    ids = await idle_rows(world, 100_000)
    proc = await asyncio.create_subprocess_exec(
        *SWEEP, "--once", env=world.env, stdout=asyncio.subprocess.DEVNULL
    )
    for _ in range(600):  # until some batches are committed, then kill it mid-pass
        left = (await execute(world.dsn, "SELECT count(*) AS n FROM tokens"))[0]["n"]
        if left < 90_000 or proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    left_after_kill = (await execute(world.dsn, "SELECT count(*) AS n FROM tokens"))[0]["n"]
    assert 0 < left_after_kill < 100_000, "the kill did not land mid-pass"

    counts = sweep_once(world.env)
    assert counts["delete_idle"] == left_after_kill
    assert await execute(world.dsn, "SELECT id FROM tokens") == []
    swept = await swept_ids(world)
    assert sorted(swept) == sorted(ids)  # every deleted row was audited, once


@pytest.mark.e2e
async def test_the_loop_reports_health_and_metrics(world: World) -> None:
    await token(world, "zabbix", "idle", created="200 days")
    port = free_port()
    env = dict(world.env, SWEEPER_PORT=str(port), TOKENHUB_SWEEP_INTERVAL="0.2")
    with tempfile.TemporaryDirectory() as logs:
        sweeper = ServiceProcess("sweeper", port, env, Path(logs) / "sweeper.log")
        sweeper.start()
        try:
            sweeper.wait_ready()
            for _ in range(100):
                if await remaining(world) == set():
                    break
                await asyncio.sleep(0.1)
            assert await remaining(world) == set()
            assert http_status(sweeper.url + "/healthz") == 200
            async with aiohttp.ClientSession() as http, http.get(sweeper.url + "/metrics") as r:
                metrics = await r.text()
        finally:
            sweeper.stop()
    assert 'tokenhub_sweeper_rows_total{job="delete_idle"} 1.0' in metrics
    assert "tokenhub_sweeper_last_pass_timestamp_seconds" in metrics
