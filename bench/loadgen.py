"""A small asyncio load generator: N workers send requests for a fixed time (or count) and record
each latency. Loopback only; bounded in time and count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

# One request: send it with the session, return whether the answer was the expected one.
Request = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


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

    def row(self) -> str:
        return f"| {self.name} | {self.rps:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} | {self.errors} |"


HEADER = "| scenario | requests/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|"


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def measure(
    name: str,
    request: Request,
    *,
    concurrency: int = 16,
    duration: float = 10.0,
    max_requests: int = 500_000,
    warmup: float = 1.0,
) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        warm_until = time.perf_counter() + warmup
        while time.perf_counter() < warm_until:  # connections open, caches warm
            await asyncio.gather(*(request(session, i) for i in range(concurrency)))
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < stop_at and counter < max_requests:
                counter += 1
                started = time.perf_counter()
                try:
                    ok = await request(session, counter)
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
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


def summary(results: list[Result]) -> str:
    return "\n".join([HEADER, *(r.row() for r in results)])


__all__ = ["HEADER", "Result", "measure", "summary"]
