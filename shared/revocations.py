"""Token revocations announced to every service (DESIGN §1: sweeper ──► Redis pub/sub).

Whoever ends a token announces it on one channel, whose messages name `token_ids` (long-lived
tokens: the sweeper on expiry or idle deletion), `families` (ChatApp access/refresh families: the
issuer on a revocation) or `users` (every credential of an account: `tokenhub users disable` and
`users revoke`). Services that cache verifications drop them on the message. Long-lived tokens also
get a marker key that outlives any session or cache entry, for a service that was not listening
when the message went out.

Accounts have a state in Redis of their own (`account_key`): an *epoch*, which every revocation of
the account's credentials moves forward, and a *disabled* flag. Every session and ChatApp family
records the epoch it was issued under; the issuer honours it only while that epoch is current and
the account is not disabled. So ending everything a user holds is one write, however much they hold,
and costs each later use one Redis read, never a Postgres round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import cast

import orjson
from pydantic import JsonValue
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline

from shared.redis import AnyRedis, replicated

# Longer than any token session's idle timeout (Wialon: 5 minutes) and any verification cache entry
# (1 s): a session that did not hear the message meets the marker on its next request.
MARKER_TTL_S = 15 * 60


def channel(prefix: str) -> str:
    return f"{prefix}revocations"


def _message(**names: list[int] | list[str]) -> bytes:
    """A message naming what it names: `_message(token_ids=[7])` is b'{"token_ids":[7]}'."""
    return orjson.dumps(names)


async def _send(pipe: Pipeline | ClusterPipeline) -> None:
    """Run a pipeline whose replies nobody reads (redis-py types them as a list of Any)."""
    await cast(Awaitable[object], pipe.execute())


def family_message(family: str) -> bytes:
    """A revoked access/refresh family: every token descended from one tokens.make."""
    return _message(families=[family])


@dataclass(frozen=True)
class Revoked:
    """What one revocation message names."""

    token_ids: list[int] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    users: list[int] = field(default_factory=list)


def parse(message: bytes | str) -> Revoked:
    """What a revocation message names; nothing for a malformed one."""
    try:
        body = cast(JsonValue, orjson.loads(message))
    except orjson.JSONDecodeError:
        return Revoked()
    if not isinstance(body, dict):
        return Revoked()

    def ints(name: str) -> list[int]:
        values = body.get(name)
        return [i for i in values if isinstance(i, int)] if isinstance(values, list) else []

    families = body.get("families")
    return Revoked(
        token_ids=ints("token_ids"),
        families=[f for f in families if isinstance(f, str)] if isinstance(families, list) else [],
        users=ints("users"),
    )


def marker_key(prefix: str, token_id: int) -> str:
    return f"{prefix}revoked:{token_id}"


async def publish(redis: AnyRedis, prefix: str, token_ids: Iterable[int]) -> None:
    """Tell caches to forget these tokens' verifications (a token changed, or got a new secret),
    without marking them ended."""
    ids = list(token_ids)
    if ids:
        await redis.publish(channel(prefix), _message(token_ids=ids))


async def announce(
    redis: AnyRedis, prefix: str, token_ids: Iterable[int], marked: Iterable[int] | None = None
) -> None:
    """These tokens are gone for good: the message for listeners, and markers for latecomers. Only
    `marked` get a marker (all by default): tokens that can have sessions open (Wialon's); the rest
    have nothing a message could miss."""
    ids = list(token_ids)
    if not ids:
        return
    markers = ids if marked is None else list(marked)
    if markers:
        # Each marker is a key of its own (its own slot in a cluster): one pipeline, which a cluster
        # client splits by node. Written before the message goes out.
        async with redis.pipeline(transaction=False) as pipe:
            for token_id in markers:
                pipe.set(marker_key(prefix, token_id), b"1", ex=MARKER_TTL_S)
            await _send(pipe)
    await redis.publish(channel(prefix), _message(token_ids=ids))


# --- accounts ------------------------------------------------------------------------------------


def _account_message(user_id: int) -> bytes:
    return _message(users=[user_id])


def account_key(prefix: str, user_id: int) -> str:
    """Hash {epoch, disabled} of one account; no TTL (it must outlive every credential it judges).
    Absent means epoch 0, enabled."""
    return f"{prefix}acct:{user_id}"


@dataclass(frozen=True)
class AccountState:
    epoch: int = 0
    disabled: bool = False

    def honours(self, issued_epoch: int) -> bool:
        """Whether a credential issued under `issued_epoch` still stands."""
        return not self.disabled and issued_epoch >= self.epoch


async def account_state(redis: AnyRedis, prefix: str, user_id: int) -> AccountState:
    # Bytes: the services' clients never decode replies.
    epoch, disabled = await cast(
        Awaitable[list[bytes | None]], redis.hmget(account_key(prefix, user_id), ["epoch", "disabled"])
    )
    return AccountState(int(epoch or 0), disabled == b"1")


async def end_account_credentials(
    redis: AnyRedis, prefix: str, user_id: int, *, disabled: bool | None
) -> None:
    """Every session and ChatApp family the account holds ends now (its epoch moves on), and every
    gateway drops the account's cached verifications. `disabled` True also refuses the account's
    credentials until it is enabled again; None leaves that flag as it is."""
    key = account_key(prefix, user_id)
    # The message goes out only once the state it announces is written (and, in a cluster, held by
    # a replica: a failover must not bring the account's old credentials back).
    await replicated(redis, key, ("HINCRBY", key, "epoch", 1))
    if disabled is not None:
        await replicated(redis, key, ("HSET", key, "disabled", int(disabled)))
    await redis.publish(channel(prefix), _account_message(user_id))


async def enable_account(redis: AnyRedis, prefix: str, user_id: int) -> None:
    """Lift the disabled flag; what was issued before stays ended (the epoch does not go back)."""
    key = account_key(prefix, user_id)
    await replicated(redis, key, ("HSET", key, "disabled", 0))


async def forget_account_verifications(redis: AnyRedis, prefix: str, user_id: int) -> None:
    """Tell every gateway to drop what it cached of this account's verifications (its API keys were
    revoked: the registry refuses them from now on, the caches must stop honouring them too)."""
    await redis.publish(channel(prefix), _account_message(user_id))
