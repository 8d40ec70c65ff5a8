"""A short-lived cache of successful token verifications, emptied by revocations.

The gateway may answer a verification from here instead of asking the issuer, under two rules
that keep a revoked token from being honoured for more than a second:
- an entry lives at most TOKENHUB_VERIFY_CACHE_TTL (1 s by default) and never past the token's end;
- entries are served only while the gateway is subscribed to the revocation channel; a message
  drops the entries it names at once, and losing the subscription empties the cache.

Keys are SHA-256 digests of the tokens, so no token sits in memory longer than its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar, cast, overload

import redis.exceptions
from prometheus_client import Counter

from shared import revocations
from shared.redis import UNAVAILABLE, AnyRedis, Subscriber, prepare, redis_client
from shared.settings import Settings

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "tokenhub_gateway_verify_cache_total", "Verification cache lookups, by outcome.", ["outcome"]
)
HITS, MISSES = LOOKUPS.labels("hit"), LOOKUPS.labels("miss")

T = TypeVar("T")
# What a lost or refused Redis connection raises (redis-py's classes have untyped constructors).
_REDIS_ERROR = cast(type[Exception], redis.exceptions.RedisError)
_REDIS_FAILED: tuple[type[Exception], ...] = (_REDIS_ERROR, *UNAVAILABLE, OSError, TimeoutError)


def cache_key(realm: str, token: str) -> bytes:
    """The dialects share one cache, each in a realm of its own (its name): a secret that one
    dialect verified and a caller then presents to another finds nothing there."""
    return hashlib.sha256(f"{realm}\x00{token}".encode()).digest()


class VerificationCache:
    """Each dialect keeps what it verified under its own realm's keys (`cache_key`), as whatever
    type it likes; `get(key, kind)` hands it back as that type."""

    def __init__(
        self,
        ttl: float,
        max_entries: int = 100_000,
        client: AnyRedis | None = None,
        prefix: str = "",
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._client = client  # to tell the other gateways; None when the cache is off
        self._prefix = prefix
        # key -> (monotonic expiry, tags, value); insertion-ordered, so the oldest go first.
        self._entries: dict[bytes, tuple[float, tuple[str, ...], object]] = {}
        self._by_tag: dict[str, set[bytes]] = {}
        self.live = False  # True only while the revocation subscription is up

    @overload
    def get(self, key: bytes) -> object | None: ...

    @overload
    def get(self, key: bytes, kind: type[T]) -> T | None: ...

    def get(self, key: bytes, kind: type[object] = object) -> object | None:
        """The value filed under `key`, if it is still fresh and (given `kind`) of that type."""
        if not self.live:
            return None
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic() or not isinstance(entry[2], kind):
            MISSES.inc()
            return None
        HITS.inc()
        return entry[2]

    def put(self, key: bytes, tags: tuple[str, ...], value: object, seconds_left: float) -> None:
        """Remember a verification for at most the TTL and never beyond the token's own end, filed
        under every tag a revocation may name it by (its token or family, and its owner)."""
        lifetime = min(self.ttl, seconds_left)
        if not self.live or lifetime <= 0:
            return
        if key in self._entries:
            self._forget(key)
        while len(self._entries) >= self.max_entries:
            oldest = next(iter(self._entries))
            self._forget(oldest)
        self._entries[key] = (time.monotonic() + lifetime, tags, value)
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(key)

    def drop(self, tag: str) -> None:
        for key in self._by_tag.pop(tag, set()):
            if key in self._entries:
                self._forget(key)

    async def invalidate(self, token_ids: list[int]) -> None:
        """A token changed through this gateway: forget it here at once, and tell the others. If
        the message cannot go out, their entries still end within the TTL."""
        for token_id in token_ids:
            self.drop(token_tag(token_id))
        if self._client is None:
            return
        try:
            # Bounded: the subscription's connection settings have no read timeout.
            await asyncio.wait_for(revocations.publish(self._client, self._prefix, token_ids), timeout=1.0)
        except _REDIS_FAILED as exc:
            log.warning("could not announce %d changed tokens: %s", len(token_ids), type(exc).__name__)

    def clear(self) -> None:
        self._entries.clear()
        self._by_tag.clear()

    def _forget(self, key: bytes) -> None:
        _, tags, _ = self._entries.pop(key)
        for tag in tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]


def family_tag(family: str) -> str:
    return f"family:{family}"


def token_tag(token_id: int) -> str:
    return f"token:{token_id}"


def user_tag(user_id: int) -> str:
    return f"user:{user_id}"


async def follow_revocations(subscriber: Subscriber, channel: str, cache: VerificationCache) -> None:
    """Keep the cache subscribed; while the subscription is down the cache serves nothing. (In a
    Redis Cluster each new subscription goes to the next node: shared/redis.py.)"""
    while True:
        try:
            async with subscriber.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                while True:
                    # redis-py's message: {"type": "subscribe" | "message" | ..., "data": ...}.
                    message = await cast(
                        "Awaitable[dict[str, object] | None]",
                        pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0),
                    )
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        cache.clear()  # anything cached before this moment may have missed a message
                        cache.live = True
                        continue
                    data = message["data"]
                    if isinstance(data, bytes | str):
                        _drop_revoked(cache, revocations.parse(data))
        except asyncio.CancelledError:
            raise
        except _REDIS_FAILED as exc:
            log.warning("revocation subscription lost (%s); verification cache off", type(exc).__name__)
        finally:
            cache.live = False
            cache.clear()
        await asyncio.sleep(1.0)


def _drop_revoked(cache: VerificationCache, revoked: revocations.Revoked) -> None:
    for token_id in revoked.token_ids:
        cache.drop(token_tag(token_id))
    for family in revoked.families:
        cache.drop(family_tag(family))
    for user_id in revoked.users:
        cache.drop(user_tag(user_id))


@contextlib.asynccontextmanager
async def running_cache(settings: Settings) -> AsyncIterator[VerificationCache]:
    """The gateway's cache, kept subscribed for as long as the block runs (off if the TTL is 0)."""
    if settings.verify_cache_ttl <= 0:
        yield VerificationCache(0)
        return
    client = redis_client(
        settings,
        health_check_interval=1,  # a dead connection is noticed within about a second
    )
    await prepare(client)
    cache = VerificationCache(settings.verify_cache_ttl, client=client, prefix=settings.redis_prefix)
    subscriber = Subscriber(client, settings.redis_url, settings.store_timeout)
    task = asyncio.create_task(
        follow_revocations(subscriber, revocations.channel(settings.redis_prefix), cache)
    )
    try:
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
