"""Token revocations announced to every service (DESIGN §1: sweeper ──► Redis pub/sub).

Whoever ends a token announces it on one channel, whose messages name `token_ids` (long-lived
tokens: the sweeper on expiry or idle deletion) or `families` (ChatApp access/refresh families: the
issuer on a revocation). Services that cache verifications drop them on the message. Long-lived
tokens also get a marker key that outlives any session or cache entry, for a service that was not
listening when the message went out.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from redis.asyncio import Redis

# Longer than any token session's idle timeout (Wialon: 5 minutes) and any verification cache entry
# (1 s): a session that did not hear the message meets the marker on its next request.
MARKER_TTL_S = 15 * 60


def channel(prefix: str) -> str:
    return f"{prefix}revocations"


def family_message(family: str) -> bytes:
    """A revoked access/refresh family: every token descended from one tokens.make."""
    return orjson.dumps({"families": [family]})


def parse(message: bytes | str) -> tuple[list[int], list[str]]:
    """(token ids, families) named by a revocation message; nothing for a malformed one."""
    try:
        body = orjson.loads(message)
    except orjson.JSONDecodeError:
        return [], []
    if not isinstance(body, dict):
        return [], []
    token_ids = [i for i in body.get("token_ids", []) if isinstance(i, int)]
    families = [f for f in body.get("families", []) if isinstance(f, str)]
    return token_ids, families


def marker_key(prefix: str, token_id: int) -> str:
    return f"{prefix}revoked:{token_id}"


async def publish(redis: Redis, prefix: str, token_ids: Iterable[int]) -> None:
    """Tell caches to forget these tokens' verifications (a token changed, or got a new secret),
    without marking them ended."""
    ids = list(token_ids)
    if ids:
        await redis.publish(channel(prefix), orjson.dumps({"token_ids": ids}))


async def announce(
    redis: Redis, prefix: str, token_ids: Iterable[int], marked: Iterable[int] | None = None
) -> None:
    """These tokens are gone for good: the message for listeners, and markers for latecomers. Only
    `marked` get a marker (all by default): tokens that can have sessions open (Wialon's); the rest
    have nothing a message could miss."""
    ids = list(token_ids)
    if not ids:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for token_id in ids if marked is None else marked:
            pipe.set(marker_key(prefix, token_id), b"1", ex=MARKER_TTL_S)
        pipe.publish(channel(prefix), orjson.dumps({"token_ids": ids}))
        await pipe.execute()
