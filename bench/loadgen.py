"""The one load generator of `make bench`: N asyncio workers on one aiohttp session, each with
state of its own (e.g. the refresh token it rotates), for a bounded time and count. Loopback only.

The same generator measures the bare hello-world, so its own cost is in every figure alike and
the ratio to hello-world is what compares.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

# One request of one worker: send it, say whether the answer was the expected one.
Step = Callable[[aiohttp.ClientSession], Awaitable[bool]]
# Builds worker number i's step, with whatever state that worker keeps.
Prepare = Callable[[aiohttp.ClientSession, int], Awaitable[Step]]

WARMUP_PER_WORKER = 10


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))]


async def measure(
    name: str,
    prepare: Prepare,
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    warmup: int = WARMUP_PER_WORKER,
) -> Result:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        steps = [await prepare(session, i) for i in range(concurrency)]
        for step in steps:  # connections open, caches and plans warm, before the clock starts
            for _ in range(warmup):
                await step(session)
        stop_at = time.perf_counter() + duration

        async def worker(step: Step) -> None:
            nonlocal errors
            while time.perf_counter() < stop_at and len(latencies) < max_requests:
                started = time.perf_counter()
                try:
                    ok = await step(session)
                except (aiohttp.ClientError, TimeoutError):
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
        percentile(latencies, 0.5) * 1e3,
        percentile(latencies, 0.99) * 1e3,
    )


def stateless(step: Step) -> Prepare:
    """A Prepare for a step that keeps no state of its own."""

    async def prepare(session: aiohttp.ClientSession, i: int) -> Step:
        return step

    return prepare
