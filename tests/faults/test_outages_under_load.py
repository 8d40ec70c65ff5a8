"""Fault injection under a steady load through the gateway (issue 9), with real processes and real
stores: kill -9 of the registry, the issuer and the sweeper, and a stop of Redis and of Postgres,
each while ChatApp, Zabbix and hotspot clients keep calling.

What each test holds the services to:
- every request gets an answer, within the bound the backend timeout sets: the dialect's success
  or its own "service unavailable" error, never an HTTP 500, a traceback or a hang;
- the part's outage shows in the replies of the dialects that need it, and in no others;
- once the part is back, every request succeeds again within a bounded time, with the same gateway
  process (and after a store outage, the same processes of every service);
- no acknowledged write is lost: every create that got a success is in Postgres afterwards, and
  every create that did not is there completely or not at all (rows and their audit record);
- no service logs an error: an outage is a warning, a bug is an error.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from dataclasses import dataclass
from typing import Literal

import aiohttp
import asyncpg
import orjson
import pytest

from shared.secrets import lookup_hash
from tests.e2e.harness import SERVICES, http_status
from tests.faults.conftest import BACKEND_TIMEOUT, PEPPER, Stack, log_sizes
from tests.faults.load import OPERATIONS, VOUCHERS_PER_CREATE, Dialect, Load, Outcome

pytestmark = pytest.mark.e2e

Part = Literal["registry", "issuer", "sweeper", "redis", "postgres"]

# A request may wait for two internal calls in turn (the caller's credentials, then the call), each
# cut at the backend timeout; the rest is slack for a busy 2-core machine, not a speed goal.
ANSWER_BOUND = 2 * BACKEND_TIMEOUT + 6.0
# A request sent just before the part came back may still be answered "unavailable" up to
# ANSWER_BOUND later; beyond that, pools drop their dead connections on first use and the
# gateway's revocation subscription retries every second.
RECOVERY_BOUND = ANSWER_BOUND + 5.0
OUTAGE_SECONDS = 2.5
# Seconds of load in which every operation succeeds that count as "recovered".
STEADY_TAIL = 1.5
# What needs the registry and so Postgres: everything but ChatApp's check and refresh, which the
# issuer answers from Redis alone. What needs the issuer and so Redis: ChatApp, and only ChatApp.
POSTGRES_OPERATIONS = OPERATIONS - {("chatapp", "check"), ("chatapp", "refresh")}
REDIS_OPERATIONS = frozenset(op for op in OPERATIONS if op[0] == "chatapp")


@dataclass(frozen=True)
class Fault:
    part: Part
    # Dialects whose requests need the part: the outage must show in their replies.
    seen_by: frozenset[Dialect]
    # Operations that must not notice the outage at all.
    unaffected: frozenset[tuple[Dialect, str]]


FAULTS = {
    "registry": Fault("registry", frozenset({"zabbix", "hotspot"}), OPERATIONS - POSTGRES_OPERATIONS),
    "issuer": Fault("issuer", frozenset({"chatapp"}), OPERATIONS - REDIS_OPERATIONS),
    "sweeper": Fault("sweeper", frozenset(), OPERATIONS),
    "redis": Fault("redis", frozenset({"chatapp"}), OPERATIONS - REDIS_OPERATIONS),
    "postgres": Fault("postgres", frozenset({"zabbix", "hotspot"}), OPERATIONS - POSTGRES_OPERATIONS),
}


# --- breaking and repairing a part -----------------------------------------------------------------


async def break_part(stack: Stack, load: Load, part: Part) -> None:
    if part in SERVICES:
        await asyncio.to_thread(stack.cluster[part].stop, signal.SIGKILL)
    elif part == "redis":
        load.redis_generation += 1  # raised first: a pair made from now on may die with this Redis
        await asyncio.to_thread(stack.redis.stop)
    else:
        await asyncio.to_thread(stack.postgres.stop)


async def repair_part(stack: Stack, part: Part) -> None:
    if part in SERVICES:
        service = stack.cluster[part]
        await asyncio.to_thread(service.start)
        await asyncio.to_thread(service.wait_ready)
    elif part == "redis":
        await asyncio.to_thread(stack.redis.start)
    else:
        await asyncio.to_thread(stack.postgres.start)


async def cache_hits(metrics_url: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith('tokenhub_gateway_verify_cache_total{outcome="hit"} '):
            return float(line.split()[-1])
    return 0.0


async def cache_serves_again(metrics_url: str, limit: float) -> bool:
    before = await cache_hits(metrics_url)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await cache_hits(metrics_url) > before:
            return True
        await asyncio.sleep(0.2)
    return False


def pids(stack: Stack) -> dict[str, int | None]:
    return {
        name: (proc.pid if (proc := stack.cluster[name].proc) is not None and proc.poll() is None else None)
        for name in SERVICES
    }


# --- what the logs and Postgres say afterwards -------------------------------------------------------


def errors_logged(stack: Stack, since: dict[str, int]) -> list[str]:
    """Lines at level error or worse (bugs, lost audit events, unhandled exceptions), and any
    line that is not one of our JSON log lines (a traceback printed by the interpreter)."""
    found = []
    for name in SERVICES:
        with stack.cluster[name].log_path.open("rb") as log:
            log.seek(since[name])
            lines = log.read().decode(errors="replace").splitlines()
        for line in lines:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                found.append(f"{name}: {line}")
                continue
            if not isinstance(entry, dict) or entry.get("level") in ("error", "critical"):
                found.append(f"{name}: {line[:600]}")
    return found


async def lost_or_partial_writes(database_url: str, load: Load) -> list[str]:
    """Every create of this load compared with Postgres: acknowledged ones must be there as
    acknowledged, the others completely or not at all. "Completely" is the schema's unit of a
    create: a Zabbix token and the 'created' audit row naming its id; a createtokens call's vouchers
    (one u_id each here) and the 'created' audit row naming its first id, last id and count. The
    whole database is checked that way, not only this load's creates."""
    problems: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        zabbix_tokens = {
            row["id"]: row["name"]
            for row in await conn.fetch("SELECT id, name FROM tokens WHERE kind = 'zabbix'")
        }
        zabbix_audits: dict[int, int] = {
            row["token_id"]: row["audits"]
            for row in await conn.fetch(
                "SELECT e.token_id::bigint AS token_id, count(*) AS audits"
                " FROM audit_log a, jsonb_array_elements_text(a.details -> 'token_ids') AS e(token_id)"
                " WHERE a.event = 'created' AND a.kind = 'zabbix' GROUP BY 1"
            )
        }
        voucher_audits = {
            row["first_id"]: (row["last_id"], row["count"])
            for row in await conn.fetch(
                "SELECT (details ->> 'first_id')::bigint AS first_id,"
                " (details ->> 'last_id')::bigint AS last_id, (details ->> 'count')::int AS count"
                " FROM audit_log WHERE event = 'created' AND kind = 'voucher'"
            )
        }
        batches: dict[str, list[asyncpg.Record]] = {}
        for row in await conn.fetch(
            "SELECT id, external_ref, secret_hash FROM tokens WHERE kind = 'voucher' ORDER BY id"
        ):
            batches.setdefault(row["external_ref"], []).append(row)
    finally:
        await conn.close()

    problems += [
        f"Zabbix token {i} ({name}) has {zabbix_audits.get(i, 0)} 'created' audit rows"
        for i, name in zabbix_tokens.items()
        if zabbix_audits.get(i, 0) != 1
    ]
    problems += [
        f"an audit row records Zabbix token {i}, which is missing"
        for i in zabbix_audits
        if i not in zabbix_tokens
    ]
    ids_by_name: dict[str, list[int]] = {}
    for token_id, name in zabbix_tokens.items():
        ids_by_name.setdefault(name, []).append(token_id)
    for name, acknowledged in load.zabbix_creates.items():
        found = ids_by_name.get(name, [])
        if acknowledged is not None and found != [acknowledged]:
            problems.append(f"acknowledged Zabbix token {name} (id {acknowledged}) is in Postgres as {found}")
        if len(found) > 1:
            problems.append(f"one token.create of {name} made {len(found)} tokens")

    audited_batches = set()
    for u_id, rows in batches.items():
        ids = [row["id"] for row in rows]
        if len(rows) != VOUCHERS_PER_CREATE:
            problems.append(f"u_id {u_id} has {len(rows)} of its {VOUCHERS_PER_CREATE} vouchers")
        if voucher_audits.get(ids[0]) != (ids[-1], len(rows)):
            problems.append(f"vouchers {ids} of u_id {u_id} have no matching audit row")
        audited_batches.add(ids[0])
    problems += [
        f"an audit row records vouchers from id {i}, which are missing"
        for i in voucher_audits
        if i not in audited_batches
    ]
    for u_id, codes in load.voucher_creates.items():
        if codes is not None:
            stored = {bytes(row["secret_hash"]) for row in batches.get(u_id, [])}
            if stored != {lookup_hash(code, PEPPER) for code in codes}:
                problems.append(f"the acknowledged vouchers of u_id {u_id} are not (all) in Postgres")
    return problems


def _listing(outcomes: list[Outcome], limit: int = 15) -> str:
    return "\n".join(str(o) for o in outcomes[:limit]) + (
        f"\n... {len(outcomes) - limit} more" if len(outcomes) > limit else ""
    )


# --- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", list(FAULTS))
async def test_an_outage_under_load_loses_nothing_and_heals_without_restarting_the_gateway(
    stack: Stack, part: Part
) -> None:
    fault = FAULTS[part]
    logs_before = log_sizes(stack.cluster)
    pids_before = pids(stack)
    tag = f"{part[:3]}{secrets.token_hex(3)}"
    # Past ANSWER_BOUND a request has failed anyway; the client's own timeout only ends the wait.
    load = Load(stack.cluster.gateway_url, stack.credentials, tag, request_timeout=ANSWER_BOUND + 10)
    async with load:
        warm = await load.settled(time.monotonic(), tail=1.0, limit=60)
        assert warm is not None, "the load never ran cleanly before the fault:\n" + _listing(load.outcomes)

        down_at = time.monotonic()
        await break_part(stack, load, part)
        await asyncio.sleep(OUTAGE_SECONDS)
        await repair_part(stack, part)
        back_at = time.monotonic()

        healed = await load.settled(back_at, tail=STEADY_TAIL, limit=RECOVERY_BOUND + STEADY_TAIL)
        # The gateway answers from its verification cache only while it follows the revocation
        # channel; hits after the outage mean it is subscribed again, by itself.
        cache_back = await cache_serves_again(stack.cluster["gateway"].metrics_url, RECOVERY_BOUND)
    outcomes = load.outcomes

    # Every answer in the dialect's envelope, in time.
    bad = [o for o in outcomes if o.verdict == "bad"]
    assert not bad, f"{len(bad)} requests got no proper answer:\n{_listing(bad)}"
    slow = [o for o in outcomes if o.elapsed > ANSWER_BOUND]
    assert not slow, f"{len(slow)} answers took over {ANSWER_BOUND}s:\n{_listing(slow)}"
    before = [o for o in outcomes if o.ended < down_at and o.verdict != "ok"]
    assert not before, "requests failed before the fault:\n" + _listing(before)

    # The outage shows where the part is needed, and nowhere else.
    for dialect in fault.seen_by:
        assert any(o.dialect == dialect and o.verdict == "unavailable" for o in outcomes), (
            f"no {dialect} request noticed the {part} outage: was there load during it?"
        )
    disturbed = [o for o in outcomes if (o.dialect, o.operation) in fault.unaffected and o.verdict != "ok"]
    assert not disturbed, f"requests that do not need the {part} failed:\n{_listing(disturbed)}"
    during = [o for o in outcomes if down_at <= o.started <= back_at]
    assert {o.dialect for o in during} == {"chatapp", "zabbix", "hotspot"}, (
        "the load stalled during the outage"
    )

    # Healed, by itself: the same gateway (and after a store outage the same everything) serves again.
    failures_after = [o for o in load.since(back_at) if o.verdict != "ok"]
    assert healed is not None, (
        f"requests still failed {RECOVERY_BOUND}s after the {part} was back:\n"
        + _listing(failures_after[-15:])
    )
    assert healed - back_at <= RECOVERY_BOUND
    assert cache_back, f"the gateway's verification cache stayed off after the {part} outage"
    pids_after = pids(stack)
    restarted = {part} if part in SERVICES else set()
    for name in SERVICES:
        if name not in restarted:
            assert pids_after[name] == pids_before[name], f"{name} was restarted or died"
    for name in SERVICES:
        assert http_status(stack.cluster[name].url + "/readyz") == 200, (
            f"{name} is not ready after the {part} outage"
        )

    # Nothing acknowledged was lost, nothing was half-written.
    problems = await lost_or_partial_writes(stack.database_url, load)
    assert not problems, "\n".join(problems[:20])
    acknowledged = sum(v is not None for v in load.zabbix_creates.values()) + sum(
        v is not None for v in load.voucher_creates.values()
    )
    assert acknowledged > 0

    assert errors_logged(stack, logs_before) == []
