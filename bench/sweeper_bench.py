"""The sweeper deleting 1,000,000 idle tokens while the gateway serves `token.get` (issue 7).

    .venv/bin/python -m bench.sweeper_bench [--idle 1000000] [--duration 10]

Reports the sweep's rows/s, and token.get-by-id latency through the gateway without and with the
sweep running. Its own database, dropped afterwards; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from bench import seed
from bench.loadgen import Request, Result, measure, summary
from shared.settings import DEV_PEPPER
from tests.conftest import FreshDatabases, base_environment, run_cli
from tests.e2e.harness import running_cluster

LIVE_TOKENS = 10_000


def lookup(gateway_url: str, secret: str, first_live: int) -> Request:
    url = gateway_url + "/api_jsonrpc.php"
    headers = {"Content-Type": "application/json-rpc"}

    async def by_id(session: aiohttp.ClientSession, i: int) -> bool:
        params = {"output": "extend", "tokenids": [first_live + random.randrange(LIVE_TOKENS)]}
        body = orjson.dumps(
            {"jsonrpc": "2.0", "method": "token.get", "params": params, "auth": secret, "id": 1}
        )
        async with session.post(url, data=body, headers=headers) as r:
            reply = orjson.loads(await r.read())
            return r.status == 200 and len(reply.get("result", ())) == 1

    return by_id


async def with_sweep(env: dict[str, str], request: Request, duration: float) -> tuple[Result, float, int]:
    started = time.perf_counter()
    sweeper = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sweeper", "--once", env=env, stdout=asyncio.subprocess.PIPE
    )
    during = await measure("token.get by id, sweep running", request, duration=duration)
    out, _ = await sweeper.communicate()
    elapsed = time.perf_counter() - started
    deleted = orjson.loads(out.decode().strip().splitlines()[-1])["delete_idle"]
    return during, elapsed, deleted


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    databases = FreshDatabases(
        os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    dsn = databases.dsn(databases.name())
    env = base_environment(dsn, os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), "bench-sweep:")
    try:
        assert run_cli(["migrate"], env).returncode == 0
        took = asyncio.run(seed.zabbix_tokens(dsn, args.idle, age_days=101))
        print(f"seeded {args.idle:,} idle tokens in {took:.1f} s", flush=True)
        asyncio.run(seed.zabbix_tokens(dsn, LIVE_TOKENS, owner_count=10, label="live-"))
        first_live = args.idle + 1
        secret = asyncio.run(seed.api_token(dsn, DEV_PEPPER))[1]
        with tempfile.TemporaryDirectory() as logs, running_cluster(env, Path(logs)) as cluster:
            request = lookup(cluster.gateway_url, secret, first_live)
            before = asyncio.run(measure("token.get by id, no sweep", request, duration=args.duration))
            during, elapsed, deleted = asyncio.run(with_sweep(env, request, args.duration))
        print(summary([before, during]))
        print(
            f"\nsweeper: deleted {deleted:,} idle tokens in {elapsed:.1f} s = {deleted / elapsed:,.0f} rows/s"
        )
    finally:
        databases.drop_all()


if __name__ == "__main__":
    main()
