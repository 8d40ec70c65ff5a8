"""Token revocations announced to every service (DESIGN §1: sweeper ──► Redis pub/sub).

Whoever ends a token (the sweeper on expiry or idle deletion, a dialect on delete) announces it
twice: a message on the revocation channel, for services that cache verifications and must drop
them at once, and a marker key per token that outlives any session or cache entry, for a service
that was not listening when the message went out.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from redis.asyncio import Redis

# Longer than any session's idle timeout or any verification cache entry.
MARKER_TTL_S = 24 * 3600


def channel(prefix: str) -> str:
    return f"{prefix}revocations"


def marker_key(prefix: str, token_id: int) -> str:
    return f"{prefix}revoked:{token_id}"


async def announce(redis: Redis, prefix: str, token_ids: Iterable[int]) -> None:
    ids = list(token_ids)
    if not ids:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for token_id in ids:
            pipe.set(marker_key(prefix, token_id), b"1", ex=MARKER_TTL_S)
        pipe.publish(channel(prefix), orjson.dumps({"token_ids": ids}))
        await pipe.execute()
