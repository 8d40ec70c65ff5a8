"""ChatApp pairs through the gateway (issue 5): `GET /v1/tokens/check` and `tokens.refresh`, beside a
bare aiohttp hello-world, all measured in one run by the same asyncio load generator.

    .venv/bin/python -m bench.chatapp_bench [--duration 5] [--max-requests 20000] [--concurrency 16]

Makes its own database (dropped afterwards) and Redis key prefix (deleted afterwards) on the local
Postgres and Redis (or TEST_DATABASE_URL / TEST_REDIS_URL), starts the four services and the
hello-world on free loopback ports, and prints a markdown table. Bounded: each scenario stops after
`--duration` seconds or `--max-requests` requests, whichever comes first. The numbers are this
machine's, with everything (client included) on its cores.

Each refresh worker owns one family and refreshes it serially, as a real client would: concurrent
refreshes of one token would (by design) revoke the family.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis
import uvloop
from aiohttp import web

from tests.conftest import LOCAL_POSTGRES, LOCAL_REDIS, FreshDatabases, base_environment, run_cli
from tests.e2e.harness import free_port, http_status, running_cluster

# One request of one worker: send it, return whether the answer was the expected one.
Step = Callable[[aiohttp.ClientSession], Awaitable[bool]]
# Builds worker number i's step (with whatever state that worker keeps, e.g. its refresh token).
Prepare = Callable[[aiohttp.ClientSession, int], Awaitable[Step]]

# The benchmark user's password: random per run, this run's database is dropped afterwards.
PASSWORD = secrets.token_urlsafe(12)
WARMUP_PER_WORKER = 20


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    def row(self) -> str:
        rps = self.requests / self.seconds if self.seconds else 0.0
        cells = [self.name, str(self.requests), f"{rps:,.0f}", f"{self.p50_ms:.2f}", f"{self.p99_ms:.2f}"]
        return "| " + " | ".join([*cells, str(self.errors)]) + " |"


HEADER = "| scenario | requests | requests/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|"


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))]


async def measure(
    name: str, prepare: Prepare, concurrency: int, duration: float, max_requests: int
) -> Result:
    """`concurrency` workers on one session with as many connections, each sending its requests
    back to back; latency per request. Warm-up requests (connections, caches) are not counted."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        steps = [await prepare(session, i) for i in range(concurrency)]
        for _ in range(WARMUP_PER_WORKER):
            await asyncio.gather(*(step(session) for step in steps))
        budget = max_requests
        stop_at = time.perf_counter() + duration

        async def worker(step: Step) -> None:
            nonlocal errors, budget
            while budget > 0 and time.perf_counter() < stop_at:
                budget -= 1
                started = time.perf_counter()
                try:
                    ok = await step(session)
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker(step) for step in steps))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        name,
        len(latencies),
        errors,
        elapsed,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
    )


# --- the scenarios ---------------------------------------------------------------------------------


def hello_world(base: str) -> Prepare:
    async def prepare(session: aiohttp.ClientSession, i: int) -> Step:
        async def step(session: aiohttp.ClientSession) -> bool:
            async with session.get(base + "/") as r:
                await r.read()
                return r.status == 200

        return step

    return prepare


async def _make(session: aiohttp.ClientSession, gateway: str, email: str, app_id: str) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD, "appId": app_id}
    async with session.post(gateway + "/v1/tokens", json=body) as r:
        reply = await r.json()
        assert r.status == 200, reply
        data: dict[str, str] = reply["data"]
        return data


def tokens_check(gateway: str, email: str, app_id: str) -> Prepare:
    async def prepare(session: aiohttp.ClientSession, i: int) -> Step:
        headers = {"Authorization": (await _make(session, gateway, email, app_id))["accessToken"]}

        async def step(session: aiohttp.ClientSession) -> bool:
            async with session.get(gateway + "/v1/tokens/check", headers=headers) as r:
                await r.read()
                return r.status == 200

        return step

    return prepare


def tokens_refresh(gateway: str, email: str, app_id: str) -> Prepare:
    async def prepare(session: aiohttp.ClientSession, i: int) -> Step:
        current = (await _make(session, gateway, email, app_id))["refreshToken"]

        async def step(session: aiohttp.ClientSession) -> bool:
            nonlocal current
            async with session.post(gateway + "/v1/tokens/refresh", headers={"Refresh": current}) as r:
                reply = await r.json()
                if r.status != 200:
                    return False
                current = reply["data"]["refreshToken"]
                return True

        return step

    return prepare


# --- the hello-world server, in a process of its own like each service -----------------------------


def serve_hello(port: int) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="Hello, world")

    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop())


def start_hello(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.chatapp_bench", "--serve-hello", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while http_status(f"http://127.0.0.1:{port}/") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the hello-world server did not start")
        time.sleep(0.1)
    return proc


# --- the run -----------------------------------------------------------------------------------------


async def scenarios(
    gateway: str, hello: str, email: str, app_id: str, args: argparse.Namespace
) -> list[Result]:
    bounds = (args.concurrency, args.duration, args.max_requests)
    return [
        await measure("aiohttp hello-world (bare)", hello_world(hello), *bounds),
        await measure("GET /v1/tokens/check", tokens_check(gateway, email, app_id), *bounds),
        await measure("POST /v1/tokens/refresh", tokens_refresh(gateway, email, app_id), *bounds),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario (at most)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests per scenario (at most)")
    parser.add_argument("--concurrency", type=int, default=16, help="workers (and connections)")
    parser.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return
    if not (0 < args.duration <= 60 and 0 < args.max_requests <= 1_000_000 and 0 < args.concurrency <= 256):
        parser.error("bounds: 0 < duration <= 60, 0 < max-requests <= 1e6, 0 < concurrency <= 256")

    databases = FreshDatabases(os.environ.get("TEST_DATABASE_URL", LOCAL_POSTGRES))
    redis_url = os.environ.get("TEST_REDIS_URL", LOCAL_REDIS)
    prefix = f"bench:{secrets.token_hex(4)}:"
    env = base_environment(databases.dsn(databases.name()), redis_url, prefix)
    hello_proc = None
    try:
        migrated = run_cli(["migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        email, app_id = f"bench-{secrets.token_hex(3)}@example.com", f"bench-{secrets.token_hex(3)}"
        added = run_cli(
            ["users", "add", email.split("@")[0], "--role", "user", "--email", email, "--password-stdin"],
            env,
            PASSWORD,
        )
        assert added.returncode == 0, added.stderr
        # Two makes per worker (check and refresh scenarios), all within the app's daily quota.
        quota = str(2 * args.concurrency + 10)
        assert run_cli(["apps", "add", app_id, "--daily-quota", quota], env).returncode == 0
        hello_port = free_port()
        hello_proc = start_hello(hello_port)
        with tempfile.TemporaryDirectory() as logs, running_cluster(env, Path(logs)) as cluster:
            results = asyncio.run(
                scenarios(cluster.gateway_url, f"http://127.0.0.1:{hello_port}", email, app_id, args)
            )
    finally:
        if hello_proc is not None:
            hello_proc.terminate()
            hello_proc.wait(timeout=10)
        databases.drop_all()
        client = redis.Redis.from_url(redis_url)
        try:
            for key in client.scan_iter(match=prefix + "*", count=1000):
                client.delete(key)
        finally:
            client.close()
    print(
        f"ChatApp pairs vs a bare aiohttp hello-world: {args.concurrency} connections, "
        f"at most {args.duration:g} s or {args.max_requests} requests per scenario, "
        f"{os.cpu_count()} CPUs shared by client and servers.\n"
    )
    print("\n".join([HEADER, *(r.row() for r in results)]))


if __name__ == "__main__":
    main()
