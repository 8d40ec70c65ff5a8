"""Zabbix `token.get` over a registry of 1,000,000 tokens, through the gateway (issue 3).

    .venv/bin/python -m bench.zabbix_bench [--tokens 1000000] [--duration 10] [--concurrency 16]

Makes its own database (dropped afterwards), seeds it with COPY, starts the four services on free
ports and measures: token.get by `tokenids` and token.get with a `search` on name, both
authenticated with an API token (whose use is recorded on every call, as in Zabbix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
from pathlib import Path

import aiohttp
import orjson

from bench import seed as seed_data
from bench.loadgen import Result, measure, summary
from shared.settings import DEV_PEPPER
from tests.conftest import FreshDatabases, base_environment, run_cli
from tests.e2e.harness import running_cluster


async def seed(dsn: str, tokens: int) -> str:
    took = await seed_data.zabbix_tokens(dsn, tokens)
    print(f"seeded {tokens:,} tokens (indexes included) in {took:.1f} s", flush=True)
    return (await seed_data.api_token(dsn, DEV_PEPPER))[1]


def rpc(method: str, params: dict[str, object], auth: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params, "auth": auth, "id": 1})


async def scenarios(gateway_url: str, secret: str, args: argparse.Namespace) -> list[Result]:
    url = gateway_url + "/api_jsonrpc.php"
    headers = {"Content-Type": "application/json-rpc"}

    async def by_id(session: aiohttp.ClientSession, i: int) -> bool:
        body = rpc("token.get", {"output": "extend", "tokenids": [random.randint(1, args.tokens)]}, secret)
        async with session.post(url, data=body, headers=headers) as r:
            reply = orjson.loads(await r.read())
            return r.status == 200 and len(reply.get("result", ())) == 1

    async def by_name(session: aiohttp.ClientSession, i: int) -> bool:
        fragment = f"{random.randint(0, 99999):05d}"
        params = {"output": ["tokenid", "name"], "search": {"name": fragment}, "limit": 100}
        async with session.post(url, data=rpc("token.get", params, secret), headers=headers) as r:
            reply = orjson.loads(await r.read())
            return r.status == 200 and "result" in reply

    common = {"concurrency": args.concurrency, "duration": args.duration}
    return [
        await measure("zabbix token.get by tokenids", by_id, **common),
        await measure("zabbix token.get search name", by_name, **common),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    databases = FreshDatabases(
        os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    dsn = databases.dsn(databases.name())
    env = base_environment(dsn, os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), "bench:")
    try:
        migrated = run_cli(["migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        secret = asyncio.run(seed(dsn, args.tokens))
        with tempfile.TemporaryDirectory() as logs, running_cluster(env, Path(logs)) as cluster:
            results = asyncio.run(scenarios(cluster.gateway_url, secret, args))
        print(summary(results))
    finally:
        databases.drop_all()


if __name__ == "__main__":
    main()
