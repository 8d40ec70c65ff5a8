"""Postgres failover (issue 16), on real engines: a private primary and synchronous standby
(tests/pg_pair.py), the four services with DATABASE_URL naming both hosts
(`...?target_session_attrs=read-write`), a steady load of Zabbix `token.create` and hotspot
`createtokens` through the gateway; then kill -9 of the primary's postmaster and the standby's
promotion, as failover tooling does it.

What the services are held to:
- writes succeed again within WRITE_BOUND seconds of the kill, with the same processes: the pools
  follow the promoted standby by themselves;
- every write acknowledged to a client is on the new primary afterwards (the standby had each one
  before its commit returned), and every other one is there completely or not at all;
- every request in the gap gets the dialect's "try again" (Zabbix -32500 "Service temporarily
  unavailable, try again later.", hotspot `service_unavailable`): no other error, no 500, no hang;
- readiness says so: the registry and the sweeper are not ready in the gap, ready after;
- no service logs an error (a failover is a warning, not a bug).

The CLI follows the promotion too: it connects afresh each time, to the host that takes writes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.conftest import base_environment, run_cli
from tests.e2e.harness import SERVICES, Cluster, Service, http_status, running_cluster
from tests.faults.conftest import PEPPER, _zabbix_api_token
from tests.faults.load import Credentials, Load, Outcome
from tests.faults.test_outages_under_load import lost_or_partial_writes
from tests.pg_pair import PgPair

pytestmark = pytest.mark.e2e

BACKEND_TIMEOUT = 3.0
# A request may wait for two internal calls in turn, each cut at the backend timeout; the rest is
# slack for a busy 2-core machine (as in tests/faults).
ANSWER_BOUND = 2 * BACKEND_TIMEOUT + 6.0
# What the issue asks: writes succeed again this soon after the kill, with no restart.
WRITE_BOUND = 15.0
# Seconds between the kill and the promotion: failover tooling takes a moment to decide, and the
# load must meet the gap.
GAP_SECONDS = 2.0
STEADY_TAIL = 1.5
WRITES = frozenset({("zabbix", "token.create"), ("hotspot", "createtokens")})


@dataclass(frozen=True)
class FailoverStack:
    pair: PgPair
    cluster: Cluster
    env: dict[str, str]
    credentials: Credentials


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = run_cli(list(args), env, stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def environment(pair: PgPair, redis_server: str, redis_prefix: str) -> dict[str, str]:
    """Migrated with `tokenhub migrate` on the primary; DATABASE_URL names both hosts from then on."""
    env = base_environment(pair.multi_host_dsn(), redis_server, f"{redis_prefix}pgf{secrets.token_hex(3)}:")
    env.update(
        TOKENHUB_PEPPER=PEPPER,
        TOKENHUB_BACKEND_TIMEOUT=str(BACKEND_TIMEOUT),
        # The sweeper works all the time, so the kill is likely to land in the middle of a pass.
        TOKENHUB_SWEEP_INTERVAL="0.5",
        TOKENHUB_LOG_LEVEL="INFO",
    )
    return pair.migrate(env)


@pytest.fixture
async def stack(
    pg_pair: PgPair, redis_server: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[FailoverStack]:
    env = await asyncio.to_thread(environment, pg_pair, redis_server, redis_prefix)
    password = f"Failover-{secrets.token_hex(6)}"
    tag = secrets.token_hex(3)

    def accounts() -> str:
        cli(env, "users", "add", f"zbx-{tag}", "--role", "user", "--password-stdin", stdin=password)
        cli(env, "users", "add", f"hotspot-{tag}", "--role", "admin")
        return cli(env, "users", "api-key", f"hotspot-{tag}")

    api_key = await asyncio.to_thread(accounts)
    with running_cluster(env, tmp_path) as cluster:
        credentials = Credentials(
            chatapp_email="",  # no ChatApp client runs: ChatApp needs no Postgres write
            chatapp_password="",
            chatapp_user_id=0,
            chatapp_app_id="",
            zabbix_api_token=await _zabbix_api_token(cluster.gateway_url, f"zbx-{tag}", password),
            hotspot_api_key=api_key,
        )
        yield FailoverStack(pg_pair, cluster, env, credentials)


def errors_logged(cluster: Cluster) -> list[str]:
    """Lines at level error or worse, and any line that is not one of our JSON log lines (a
    traceback printed by the interpreter)."""
    found = []
    for name in SERVICES:
        for line in cluster[name].log().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                found.append(f"{name}: {line}")
                continue
            if not isinstance(entry, dict) or entry.get("level") in ("error", "critical"):
                found.append(f"{name}: {line[:600]}")
    return found


def pids(cluster: Cluster) -> dict[Service, int | None]:
    """Each service's PID while it runs (None once it has exited)."""
    return {
        name: proc.pid if (proc := cluster[name].proc) is not None and proc.poll() is None else None
        for name in SERVICES
    }


def listing(outcomes: list[Outcome], limit: int = 15) -> str:
    more = f"\n... {len(outcomes) - limit} more" if len(outcomes) > limit else ""
    return "\n".join(str(o) for o in outcomes[:limit]) + more


async def readiness_in_gap(cluster: Cluster, until: float) -> dict[Service, set[int | None]]:
    """The /readyz statuses of the registry and the sweeper, polled until `until`."""
    seen: dict[Service, set[int | None]] = {"registry": set(), "sweeper": set()}
    while time.monotonic() < until:
        for name in seen:
            seen[name].add(await asyncio.to_thread(http_status, cluster[name].url + "/readyz"))
        await asyncio.sleep(0.1)
    return seen


async def stored_counts(dsn: str, load: Load) -> tuple[int, int]:
    """How many of the load's Zabbix tokens (by name) and vouchers (by u_id) the database holds."""
    conn = await asyncpg.connect(dsn)
    try:
        tokens = await conn.fetchval(
            "SELECT count(*) FROM tokens WHERE kind = 'zabbix' AND name = ANY($1::text[])",
            list(load.zabbix_creates),
        )
        vouchers = await conn.fetchval(
            "SELECT count(*) FROM tokens WHERE kind = 'voucher' AND external_ref = ANY($1::text[])",
            list(load.voucher_creates),
        )
    finally:
        await conn.close()
    assert isinstance(tokens, int)
    assert isinstance(vouchers, int)
    return tokens, vouchers


async def test_a_promoted_standby_is_followed_under_load_and_nothing_acknowledged_is_lost(
    stack: FailoverStack,
) -> None:
    cluster, pair = stack.cluster, stack.pair
    pids_before = pids(cluster)
    load = Load(
        cluster.gateway_url,
        stack.credentials,
        f"pgf{secrets.token_hex(3)}",
        dialects=frozenset({"zabbix", "hotspot"}),
        request_timeout=ANSWER_BOUND + 10,
    )
    async with load:
        warm = await load.settled(time.monotonic(), tail=1.0, limit=60)
        assert warm is not None, "the load never ran cleanly before the kill:\n" + listing(load.outcomes)

        killed_at = time.monotonic()
        pair.kill_primary()
        readiness = await readiness_in_gap(cluster, killed_at + GAP_SECONDS)
        # The gap ends when the promotion starts: the standby may take writes before pg_ctl returns.
        promoting_at = time.monotonic()
        await asyncio.to_thread(pair.promote_standby)
        promoted_at = time.monotonic()

        healed = await load.settled(promoted_at, tail=STEADY_TAIL, limit=WRITE_BOUND + STEADY_TAIL)
    outcomes = load.outcomes

    # Every answer the dialect's success or its "try again", in time.
    bad = [o for o in outcomes if o.verdict not in ("ok", "unavailable")]
    assert not bad, f"{len(bad)} requests got something other than success or 'try again':\n{listing(bad)}"
    slow = [o for o in outcomes if o.elapsed > ANSWER_BOUND]
    assert not slow, f"{len(slow)} answers took over {ANSWER_BOUND}s:\n{listing(slow)}"
    before = [o for o in outcomes if o.ended < killed_at and o.verdict != "ok"]
    assert not before, "requests failed before the kill:\n" + listing(before)

    # The gap: every request sent into it was told to try again.
    in_gap = [o for o in outcomes if killed_at <= o.started and o.ended <= promoting_at]
    assert {o.dialect for o in in_gap} == {"zabbix", "hotspot"}, "the load stalled in the gap"
    answered_in_gap = Counter(o.verdict for o in in_gap)
    assert set(answered_in_gap) == {"unavailable"}, listing([o for o in in_gap if o.verdict != "unavailable"])
    assert 503 in readiness["registry"], f"the registry stayed ready with no primary: {readiness}"
    assert 503 in readiness["sweeper"], f"the sweeper stayed ready with no primary: {readiness}"

    # Writes succeed again, soon, and keep succeeding: the same processes follow the new primary.
    first_write = min(
        (
            o.ended
            for o in outcomes
            if (o.dialect, o.operation) in WRITES and o.verdict == "ok" and o.started > killed_at
        ),
        default=None,
    )
    assert first_write is not None, "no write succeeded after the kill:\n" + listing(
        load.since(promoted_at)[-15:]
    )
    assert first_write - killed_at <= WRITE_BOUND
    assert healed is not None, f"requests still failed {WRITE_BOUND}s after the promotion:\n" + listing(
        [o for o in load.since(promoted_at) if o.verdict != "ok"][-15:]
    )
    assert pids(cluster) == pids_before, "a service was restarted or died"
    for name in SERVICES:
        assert http_status(cluster[name].url + "/readyz") == 200, f"{name} is not ready after the promotion"

    # Nothing acknowledged lost, nothing half-written, on the new primary.
    new_primary = pair.standby.dsn("tokenhub")
    problems = await lost_or_partial_writes(new_primary, load)
    assert not problems, "\n".join(problems[:20])
    acknowledged_tokens = sum(v is not None for v in load.zabbix_creates.values())
    acknowledged_batches = sum(v is not None for v in load.voucher_creates.values())
    stored_tokens, stored_vouchers = await stored_counts(new_primary, load)
    assert acknowledged_tokens > 0
    assert acknowledged_batches > 0
    assert stored_tokens >= acknowledged_tokens
    assert stored_vouchers >= 3 * acknowledged_batches

    assert errors_logged(cluster) == []

    gap_writes = [
        o for o in outcomes if (o.dialect, o.operation) in WRITES and killed_at <= o.started <= promoting_at
    ]
    report = {
        "promotion_started_after_kill_s": round(promoting_at - killed_at, 2),
        "promotion_took_s": round(promoted_at - promoting_at, 2),
        "first_write_after_kill_s": round(first_write - killed_at, 2),
        "first_write_after_promotion_started_s": round(first_write - promoting_at, 2),
        "zabbix_tokens": {
            "attempted": len(load.zabbix_creates),
            "acknowledged": acknowledged_tokens,
            "stored": stored_tokens,
            "lost": 0,  # lost_or_partial_writes found none missing, above
            "unacknowledged_but_stored": stored_tokens - acknowledged_tokens,
        },
        "voucher_batches": {
            "attempted": len(load.voucher_creates),
            "acknowledged": acknowledged_batches,
            "vouchers_acknowledged": 3 * acknowledged_batches,
            "vouchers_stored": stored_vouchers,
            "lost": 0,
            "unacknowledged_but_stored": stored_vouchers - 3 * acknowledged_batches,
        },
        "gap_requests": {
            f"{dialect} {operation}": dict(Counter(o.verdict for o in in_gap if o.operation == operation))
            for dialect, operation in sorted({(o.dialect, o.operation) for o in in_gap})
        },
        "writes_sent_in_gap": dict(Counter(o.verdict for o in gap_writes)),
        "readiness_in_gap": {name: sorted(str(s) for s in statuses) for name, statuses in readiness.items()},
    }
    print("FAILOVER " + orjson.dumps(report).decode())


async def test_the_cli_follows_the_promoted_standby(
    pg_pair: PgPair, redis_server: str, redis_prefix: str
) -> None:
    env = await asyncio.to_thread(environment, pg_pair, redis_server, redis_prefix)
    tag = secrets.token_hex(3)
    assert (
        await asyncio.to_thread(run_cli, ["users", "add", f"before-{tag}", "--role", "user"], env)
    ).returncode == 0

    pg_pair.kill_primary()
    # No primary: one line naming the setting, and what to do.
    gap = await asyncio.to_thread(run_cli, ["users", "add", f"gap-{tag}", "--role", "user"], env)
    assert gap.returncode == 1, gap.stderr
    assert gap.stderr.count("\n") == 1, gap.stderr
    assert gap.stderr.startswith("tokenhub: error: no PostgreSQL primary at DATABASE_URL (postgresql://"), (
        gap.stderr
    )
    assert f"{pg_pair.standby.address} is a standby" in gap.stderr, gap.stderr
    # Pointed at the standby alone (no target_session_attrs): it connects, and the write is refused.
    standby_only = {**env, "DATABASE_URL": pg_pair.standby.dsn("tokenhub")}
    refused = await asyncio.to_thread(run_cli, ["users", "add", f"gap-{tag}", "--role", "user"], standby_only)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("tokenhub: error: no PostgreSQL primary at DATABASE_URL"), refused.stderr

    await asyncio.to_thread(pg_pair.promote_standby)
    added = await asyncio.to_thread(run_cli, ["users", "add", f"after-{tag}", "--role", "user"], env)
    assert added.returncode == 0, added.stderr
    key = await asyncio.to_thread(run_cli, ["users", "api-key", f"after-{tag}"], env)
    assert key.returncode == 0, key.stderr
    assert key.stdout.startswith("thk_")
    migrated = await asyncio.to_thread(run_cli, ["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert "schema is up to date" in migrated.stderr

    conn = await asyncpg.connect(pg_pair.standby.dsn("tokenhub"))
    try:
        names = {
            row["username"]
            for row in await conn.fetch("SELECT username FROM users WHERE username LIKE '%' || $1", tag)
        }
    finally:
        await conn.close()
    assert names == {f"before-{tag}", f"after-{tag}"}
