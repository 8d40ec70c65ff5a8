"""How many credential checks the gateway answered, per UTC hour and outcome (the admin summary's
`verifications` series, the console's chart).

Counting costs the hot path a dict increment: `count()` adds one to this process's bucket for (hour,
outcome). Every FLUSH_INTERVAL_S, and once more at shutdown (the app's cleanup context), `flush()`
adds the buckets to Redis with INCRBY, in one pipeline whose keys share one hash tag (one slot, one
node in a cluster; gateway/redis_keys.py), so any number of gateway processes add up. A flush that
Redis does not answer loses its counts (logged once until a flush succeeds again; never an error to
a client); the buckets are taken before the flush, so memory stays bounded by the hours in one
interval. A process killed with -9 loses at most one interval's counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import cast

import redis.exceptions

from gateway.redis_keys import ACCEPTED, OUTCOMES, REFUSED, VERIFICATIONS_TTL_S, verifications
from shared.errors import Unavailable
from shared.redis import UNAVAILABLE, AnyRedis, prepare, redis_client
from shared.settings import Settings

log = logging.getLogger(__name__)

# How often a gateway adds its counts to Redis: what a gateway killed with -9 loses at most.
FLUSH_INTERVAL_S = 5.0
# The longest a flush or a summary's read waits for Redis.
REDIS_WAIT_S = 1.0

_REDIS_FAILED: tuple[type[Exception], ...] = (
    cast(type[Exception], redis.exceptions.RedisError),
    *UNAVAILABLE,
    OSError,
    TimeoutError,
)


class VerificationCounter:
    def __init__(self, client: AnyRedis | None, prefix: str) -> None:
        self._client = client  # None: counted, never written (a gateway without stats)
        self._prefix = prefix
        self._counts: dict[tuple[int, str], int] = {}
        self._failing = False  # a flush failed and was logged; the next failures are not

    def count(self, accepted: bool) -> None:
        """One verification answered now."""
        bucket = (int(time.time()) // 3600, ACCEPTED if accepted else REFUSED)
        self._counts[bucket] = self._counts.get(bucket, 0) + 1

    def checking(self) -> _Checking:
        """Count the check the block makes: accepted if it returns, refused if it raises, unless
        the error is a backend that did not answer (that was no verdict). A plain class rather than
        a generator-based context manager: a fraction of a microsecond a check."""
        return _Checking(self)

    async def flush(self) -> None:
        """Add the counts so far to Redis (one pipeline); never raises for Redis."""
        counts, self._counts = self._counts, {}
        if not counts or self._client is None:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for (hour, outcome), n in counts.items():
                    key = verifications(self._prefix, hour, outcome)
                    pipe.incrby(key, n)
                    pipe.expire(key, VERIFICATIONS_TTL_S)
                await asyncio.wait_for(cast(Awaitable[list[object]], pipe.execute()), REDIS_WAIT_S)
        except _REDIS_FAILED as exc:
            if not self._failing:
                log.warning(
                    "verification counts lost: Redis did not take them (%s); said once until it does",
                    type(exc).__name__,
                )
            self._failing = True
            return
        self._failing = False

    async def hourly(self, first_hour: int, hours: int) -> dict[int, dict[str, int]]:
        """Every gateway's flushed counts of `hours` hours from `first_hour` (unix s // 3600):
        {hour: {outcome: n}}, in one pipeline of GETs on one slot. Raises Unavailable."""
        if self._client is None:
            return {}
        wanted = [(hour, outcome) for hour in range(first_hour, first_hour + hours) for outcome in OUTCOMES]
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for hour, outcome in wanted:
                    pipe.get(verifications(self._prefix, hour, outcome))
                replies = await asyncio.wait_for(
                    cast(Awaitable[list[bytes | None]], pipe.execute()), REDIS_WAIT_S
                )
        except _REDIS_FAILED as exc:
            raise Unavailable("the verification counts could not be read") from exc
        found: dict[int, dict[str, int]] = {}
        for (hour, outcome), reply in zip(wanted, replies, strict=True):
            if reply is not None:
                found.setdefault(hour, {})[outcome] = int(reply)
        return found


class _Checking:
    __slots__ = ("_counter",)

    def __init__(self, counter: VerificationCounter) -> None:
        self._counter = counter

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self._counter.count(True)
        elif isinstance(exc, Exception) and not _no_verdict(exc):
            self._counter.count(False)


def _no_verdict(exc: BaseException) -> bool:
    """A backend did not answer: `exc` is Unavailable, or a dialect's error said for one."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, Unavailable):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _keep_flushing(counter: VerificationCounter) -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        await counter.flush()


@contextlib.asynccontextmanager
async def running_counter(settings: Settings) -> AsyncIterator[VerificationCounter]:
    """The gateway's counter, flushed every FLUSH_INTERVAL_S while the block runs and once at its end."""
    client = redis_client(settings, socket_timeout=REDIS_WAIT_S)
    await prepare(client)
    counter = VerificationCounter(client, settings.redis_prefix)
    task = asyncio.create_task(_keep_flushing(counter))
    try:
        yield counter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await counter.flush()
        await client.aclose()
