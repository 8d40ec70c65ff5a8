"""Hotspot voucher benchmark (issue 6): `createtokens` of 10,000 and a filtered `gettokens`
(two filters, limit 100) through the real gateway, over 1,000,000 vouchers.

    .venv/bin/python bench/hotspot_bench.py [--vouchers 1000000] [--requests 300] [--concurrency 8]

Standalone: it creates a database of its own on the server in BENCH_DATABASE_URL (default: the
local server's `postgres` database), migrates it, loads the vouchers with COPY (hashed and sealed
like real ones, owned by one operator), runs VACUUM ANALYZE, starts registry, issuer and gateway
on free loopback ports, drives them with an asyncio load generator bounded in requests and time,
prints a markdown table, and drops the database and its Redis keys again. The load and the
services share the machine, so figures are for comparison between runs, not absolute capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry import migrate  # noqa: E402  (after the path is set, when run as a script)
from registry.store import Store  # noqa: E402
from registry.vouchers import new_codes, protect  # noqa: E402
from shared.postgres import create_pool  # noqa: E402
from shared.secrets import Sealer  # noqa: E402
from tests.e2e.harness import Service, ServiceProcess, free_port  # noqa: E402

SERVER_DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Keys of its own, so the benchmark never meets a development deployment's data.
PEPPER = secrets.token_hex(16)
SEAL_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
CHUNK = 50_000
U_IDS = [f"room-{n}" for n in range(1000)]


def with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


# --- setup -------------------------------------------------------------------------------------


def voucher_rows(owner_id: int, count: int, sealer: Sealer) -> Iterator[list[tuple[Any, ...]]]:
    """`count` vouchers in chunks, in a realistic mix of states: 30 % used, 10 % repaid, half
    multi-use, half with a validity period, a u_id on most."""
    rng = random.Random(6)  # a fixed mix of states, the same on every run
    now = datetime.now(UTC)
    made = 0
    taken: set[str] = set()  # a million draws from 9e9 codes clash about 55 times
    while made < count:
        codes = new_codes(min(CHUNK, count - made), taken)
        taken.update(codes)
        hashes, sealed = protect(codes, PEPPER, sealer)
        rows = []
        for code_hash, box in zip(hashes, sealed, strict=True):
            created = now - timedelta(seconds=rng.randrange(90 * 86400))
            multi = rng.random() < 0.5
            lifetime = rng.choice((0, 3600, 86400)) if rng.random() < 0.5 else 0
            used = created + timedelta(seconds=rng.randrange(3600)) if rng.random() < 0.3 else None
            # Validity periods end in the future: the sweeper's expiry job is not what is measured.
            expires = now + timedelta(seconds=lifetime) if used is not None and lifetime else None
            repaid = created + timedelta(seconds=60) if rng.random() < 0.1 else None
            mac = "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5)) if used else None
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


COLUMNS = [
    "kind",
    "owner_id",
    "creator_id",
    "secret_hash",
    "sealed_secret",
    "created_at",
    "first_used_at",
    "expires_at",
    "repaid_at",
    "mac",
    "multi_use",
    "lifetime_s",
    "external_ref",
    "last_used_at",
]


async def prepare(dsn: str, vouchers: int) -> tuple[int, str, dict[str, float]]:
    """Migrate, make an operator with an API key, COPY the vouchers in; its id, key, timings."""
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()
    # Long timeouts: VACUUM ANALYZE of a million rows outlasts the services' command timeout.
    pool = await create_pool(dsn, max_size=2, timeout=600)
    try:
        store = Store(pool, PEPPER)
        owner_id = await store.add_user("bench-operator", "admin")
        api_key = await store.new_api_key("bench-operator")
        sealer = Sealer.from_b64(SEAL_KEY)
        started = time.perf_counter()
        async with pool.acquire() as loader:
            # Binary COPY needs a binary codec; asyncpg ships only a text one for macaddr (6 bytes).
            await loader.set_type_codec(
                "macaddr",
                schema="pg_catalog",
                encoder=lambda mac: bytes.fromhex(mac.replace(":", "")),
                decoder=lambda raw: ":".join(f"{octet:02x}" for octet in raw),
                format="binary",
            )
            for rows in voucher_rows(owner_id, vouchers, sealer):
                await loader.copy_records_to_table("tokens", records=rows, columns=COLUMNS)
                print(f"  loaded {len(rows)} more vouchers", file=sys.stderr)
        timings["copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        await pool.execute("VACUUM ANALYZE tokens")
        timings["vacuum_s"] = time.perf_counter() - started
    finally:
        await pool.close()
    return owner_id, api_key, timings


async def explain(dsn: str, owner_id: int) -> str:
    """The plan of the benchmarked listing, to show which index serves it."""
    from registry.vouchers import Q

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + Q["search_owner"],
            owner_id,
            False,
            None,
            True,
            None,
            100,
            5000,
        )
    finally:
        await conn.close()
    return "\n".join(row[0] for row in rows)


# --- load --------------------------------------------------------------------------------------


async def measure(
    label: str,
    call: Callable[[int], Awaitable[int]],
    requests: int,
    concurrency: int,
    time_limit: float,
) -> dict[str, Any]:
    """Run `call(i)` up to `requests` times, `concurrency` at once, for at most `time_limit` s."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    deadline = time.perf_counter() + time_limit

    async def worker() -> None:
        nonlocal next_index
        while next_index < requests and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            status = await call(index)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "label": label,
        "requests": len(latencies),
        "concurrency": concurrency,
        "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] * 1000,
        "max_ms": latencies[-1] * 1000,
        "statuses": statuses,
    }


async def run_load(gateway: str, api_key: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    url = gateway + "/hotspot/api"
    results = []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=aiohttp.ClientTimeout(total=120)
    ) as http:

        async def post(parameters: dict[str, Any], method: str) -> tuple[int, int]:
            body = {"api_token": api_key, "method": method, "parameters": parameters}
            async with http.post(
                url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as r:
                reply = orjson.loads(await r.read())
                return r.status, len(reply.get("data", {}))

        async def create(_: int) -> int:
            status, made = await post({"count": 10_000, "multiple": 1, "lifetime": 3600}, "createtokens")
            assert made == 10_000 or status != 200
            return status

        rng = random.Random(7)

        def listing(filters: dict[str, Any], deep: bool) -> Callable[[int], Awaitable[int]]:
            async def call(_: int) -> int:
                # Deep pages stay well inside the ~35 % of vouchers that the filters keep.
                offset = rng.randrange(args.vouchers // 10) if deep else 0
                status, got = await post({**filters, "limit": 100, "offset": offset}, "gettokens")
                assert got == 100 or status != 200, (status, got)
                return status

            return call

        common = {"used_at": 0, "multiple": 1}  # about 35 % of the vouchers
        rare = {"repaid_at": 1, "validity": 1}  # about 5 %
        await post({"limit": 1}, "gettokens")  # warm the connections and the key check
        results.append(await measure("createtokens count=10000", create, args.creates, 1, args.time_limit))
        for concurrency in (1, args.concurrency):
            results.append(
                await measure(
                    "gettokens used_at=0 multiple=1 limit=100",
                    listing(common, False),
                    args.requests,
                    concurrency,
                    args.time_limit,
                )
            )
        results.append(
            await measure(
                f"gettokens used_at=0 multiple=1 limit=100 offset<{args.vouchers // 10}",
                listing(common, True),
                args.requests,
                args.concurrency,
                args.time_limit,
            )
        )
        results.append(
            await measure(
                "gettokens repaid_at=1 validity=1 limit=100",
                listing(rare, False),
                args.requests,
                args.concurrency,
                args.time_limit,
            )
        )
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| operation | requests | concurrency | req/s | p50 ms | p95 ms | max ms | statuses |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['requests']} | {r['concurrency']} | {r['rps']:.1f} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['max_ms']:.1f} | {r['statuses']} |"
        )
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def start_services(dsn: str, prefix: str, log_dir: Path) -> list[ServiceProcess]:
    """Registry, issuer and gateway only: the sweeper's passes over a million rows are not what
    is measured here."""
    names: tuple[Service, ...] = ("registry", "issuer", "gateway")
    ports = {name: free_port() for name in names}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TOKENHUB_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DATABASE_URL=dsn,
        REDIS_URL=REDIS_URL,
        TOKENHUB_REDIS_PREFIX=prefix,
        TOKENHUB_PEPPER=PEPPER,
        TOKENHUB_SEAL_KEY=SEAL_KEY,
        TOKENHUB_INTERNAL_KEY=secrets.token_hex(16),
        TOKENHUB_BACKEND_TIMEOUT="60",
        TOKENHUB_ISSUER_URL=f"http://127.0.0.1:{ports['issuer']}",
        TOKENHUB_REGISTRY_URL=f"http://127.0.0.1:{ports['registry']}",
        REGISTRY_PORT=str(ports["registry"]),
        ISSUER_PORT=str(ports["issuer"]),
        GATEWAY_PORT=str(ports["gateway"]),
        PYTHONUNBUFFERED="1",
    )
    services = [ServiceProcess(name, port, env, log_dir / f"{name}.log") for name, port in ports.items()]
    for service in services:
        service.start()
    for service in services:
        service.wait_ready()
    return services


async def create_database() -> tuple[str, str]:
    name = f"tokenhub_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # a name of our own making, not input
    finally:
        await conn.close()
    return name, with_database(SERVER_DSN, name)


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vouchers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300, help="gettokens requests per row")
    parser.add_argument("--creates", type=int, default=10, help="createtokens calls of 10,000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per row at most")
    args = parser.parse_args()

    name, dsn = asyncio.run(create_database())
    prefix = f"bench:{secrets.token_hex(4)}:"
    services: list[ServiceProcess] = []
    try:
        print(f"database {name}: loading {args.vouchers} vouchers", file=sys.stderr)
        owner_id, api_key, timings = asyncio.run(prepare(dsn, args.vouchers))
        plan = asyncio.run(explain(dsn, owner_id))
        with tempfile.TemporaryDirectory(prefix="hotspot-bench-") as log_dir:
            services = start_services(dsn, prefix, Path(log_dir))
            gateway = next(s for s in services if s.name == "gateway")
            results = asyncio.run(run_load(gateway.url, api_key, args))
            for service in services:
                service.stop()
    finally:
        for service in services:
            service.stop()
        asyncio.run(drop_database(name))
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    print(
        f"\nSetup: {args.vouchers} vouchers by COPY in {timings['copy_s']:.1f} s "
        f"({args.vouchers / timings['copy_s']:.0f}/s incl. HMAC and AES-GCM), "
        f"VACUUM ANALYZE {timings['vacuum_s']:.1f} s\n"
    )
    print(table(results))
    print("\nPlan of the listing (operator scope, used_at=0 multiple=1, offset 5000):\n")
    print("```\n" + plan + "\n```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
