"""Failure throttles: failures counted per subject (an account, a client address...) in a fixed
window; once one subject reaches the limit, attempts touching it are refused until the window ends."""

from __future__ import annotations

from redis.asyncio import Redis

from issuer.redis_keys import RedisKeys
from shared.errors import Throttled
from shared.secrets import lookup_hash

# What a failure is counted against: {"account": "alice", "address": "192.0.2.1"}.
Subjects = dict[str, str]


class FailureThrottle:
    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        pepper: str,
        limits: dict[str, int],
        default_limit: int,
        window: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._pepper = pepper
        self._limits = limits  # by subject kind; other kinds get the default
        self._default_limit = default_limit
        self.window = window

    def _key(self, realm: str, kind: str, value: str) -> str:
        # Hashed: account names are personal data and keys are listed by anyone with Redis access.
        return self._keys.failures(realm, kind, lookup_hash(value.lower(), self._pepper).hex())

    async def check(self, realm: str, subjects: Subjects) -> None:
        """Raise Throttled if any subject has used up its failures in the current window."""
        if not subjects:
            return
        keys = [self._key(realm, kind, value) for kind, value in subjects.items()]
        limits = [self._limits.get(kind, self._default_limit) for kind in subjects]
        counts = await self._redis.mget(keys)
        if any(int(count or 0) >= limit for count, limit in zip(counts, limits, strict=True)):
            ttl = max([await self._redis.ttl(k) for k in keys] + [1])
            raise Throttled("too many failed attempts, try again later", retry_after=ttl)

    async def record_failure(self, realm: str, subjects: Subjects) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for kind, value in subjects.items():
                key = self._key(realm, kind, value)
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)  # the window starts at the first failure
            await pipe.execute()

    async def clear(self, realm: str, kind: str, value: str) -> None:
        await self._redis.delete(self._key(realm, kind, value))
