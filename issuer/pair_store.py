"""The Redis side of ChatApp-style pairs: families of access/refresh tokens, the daily quota
counters, and remembered credential checks.

- A *family* is everything descended from one make; its keys share a hash tag (issuer/redis_keys.py).
- Refresh consumes the presented refresh token and writes the next pair in one Lua script; a used
  refresh token presented again revokes the family.
- Every operation is one script on one slot; those whose loss in a failover would matter (make,
  refresh, revoke, the quota) are acknowledged, in a cluster, only once a replica has them
  (issuer/scripts.py). `now` is passed in (unix seconds) so that one request uses one clock, and
  tests can move it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal, NamedTuple, cast

from pydantic import Field

from issuer.pair_tokens import new_family_id, new_token, token_family
from issuer.quota import next_utc_midnight, quota_after, utc_day
from issuer.redis_keys import QUOTA_GRACE_S, RedisKeys
from issuer.scripts import Script, text
from shared import revocations
from shared.contracts.issuer import Pair, Quota, Verified
from shared.redis import AnyRedis, replicated
from shared.secrets import lookup_hash


class StoredPair(Pair):
    """A pair as the store wrote it: what the caller gets, and the account's epoch the family was
    made under, which stays in the issuer (it is excluded from the wire form)."""

    epoch: Annotated[int, Field(exclude=True)] = 0


@dataclass(frozen=True)
class LiveAccess:
    """A valid access token as the store found it."""

    user_id: int
    app_id: str
    expires_at: int
    family: str
    epoch: int  # the account's epoch the family was made under

    def verified(self) -> Verified:
        return Verified(
            user_id=self.user_id, app_id=self.app_id, access_expires_at=self.expires_at, family=self.family
        )


class QuotaTake(NamedTuple):
    taken: bool
    quota: Quota  # after this make
    refused: int  # refusals today, this one included; 0 when taken


# A refresh token presented again: (the tag, its family's user id, app id). The family is now revoked.
Reused = tuple[Literal["reused"], int, str]


class CredentialCache:
    """Successful tokens.make credential checks, remembered for `ttl` seconds (0: off).

    Why: every make must check the password, and Argon2id costs ~60 ms of CPU; a client retrying
    or a burst of makes would otherwise spend a core on checks whose answer is already known.
    Only successes are kept, so a wrong password is always checked by the registry (and counted
    by the throttle). Keyed by HMAC-SHA256 of e-mail and password under a random key that lives
    only in this process: whoever reads Redis, even with the pepper, cannot test password guesses
    against the entries at HMAC speed. Losing the key (a restart) loses only cache hits, never a
    decision; replicas do not share hits, which costs one check per replica. The price: a password
    change takes effect for tokens.make up to `ttl` seconds late (a disabled account at once: every
    make reads the account's state in Redis).
    """

    def __init__(self, redis: AnyRedis, keys: RedisKeys, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self.ttl = ttl
        self._key = secrets.token_bytes(32)

    def _entry(self, email: str, password: str) -> str:
        material = f"{email.lower()}\x00{password}".encode()
        return self._keys.verified_credentials(hmac.new(self._key, material, hashlib.sha256).hexdigest())

    async def user_id(self, email: str, password: str) -> int | None:
        if not self.ttl:
            return None
        cached = cast(bytes | None, await self._redis.get(self._entry(email, password)))
        return int(cached) if cached is not None else None

    async def remember(self, email: str, password: str, user_id: int) -> None:
        if self.ttl:
            await self._redis.set(self._entry(email, password), user_id, ex=self.ttl)


class PairStore:
    def __init__(self, redis: AnyRedis, keys: RedisKeys, pepper: str) -> None:
        self._redis = redis
        self._keys = keys
        self._pepper = pepper
        self._make = Script(redis, "pair_make", replicated=True)
        self._check = Script(redis, "pair_check")
        self._refresh = Script(redis, "pair_refresh", replicated=True)
        self._revoke = Script(redis, "pair_revoke", replicated=True)
        self._take_quota = Script(redis, "quota_take", replicated=True)

    def _hash(self, token: str) -> str:
        return lookup_hash(token, self._pepper).hex()

    def account_hash(self, user_id: int, app_id: str) -> str:
        # Hashed: an app id is free text (it could hold braces), and keys are listed by anyone with
        # Redis access. Truncated: 128 bits is plenty to keep accounts apart.
        return lookup_hash(f"{user_id}\x00{app_id}", self._pepper).hex()[:32]

    async def take_quota(self, user_id: int, app_id: str, limit: int, now: int) -> QuotaTake:
        key = self._keys.pair_quota(self.account_hash(user_id, app_id), utc_day(now))
        reply = await self._take_quota(keys=[key], args=[limit, next_utc_midnight(now) + QUOTA_GRACE_S])
        assert reply is not None
        taken = bool(reply[0])
        return QuotaTake(taken, quota_after(limit, int(reply[1]), now), 0 if taken else int(reply[2]))

    async def make(
        self, user_id: int, app_id: str, access_ttl: int, refresh_ttl: int, now: int, epoch: int = 0
    ) -> StoredPair:
        family = new_family_id()
        access, refresh = new_token("access", family), new_token("refresh", family)
        access_end, refresh_end = now + access_ttl, now + refresh_ttl
        await self._make(
            keys=[
                self._keys.pair_family(family),
                self._keys.access_token(family, self._hash(access)),
                self._keys.refresh_token(family, self._hash(refresh)),
            ],
            args=[user_id, app_id, access_ttl, refresh_ttl, now, epoch, access_end, refresh_end],
        )
        return StoredPair(
            user_id=user_id,
            app_id=app_id,
            access_token=access,
            access_expires_at=access_end,
            refresh_token=refresh,
            refresh_expires_at=refresh_end,
            epoch=epoch,
        )

    async def refresh(self, refresh_token: str, now: int) -> StoredPair | Reused | None:
        """The next pair; ("reused", user_id, app_id) when the token had been used before (the
        family is now revoked); None when the token is unknown, expired or its family revoked."""
        family = token_family(refresh_token, "refresh")
        if family is None:
            return None
        access, refresh = new_token("access", family), new_token("refresh", family)
        reply = await self._refresh(
            keys=[
                self._keys.pair_family(family),
                self._keys.refresh_token(family, self._hash(refresh_token)),
                self._keys.access_token(family, self._hash(access)),
                self._keys.refresh_token(family, self._hash(refresh)),
            ],
            args=[now, self._keys.pair_revocations, revocations.family_message(family)],
        )
        assert reply is not None
        outcome = text(reply[0])
        if outcome == "ok":
            return StoredPair(
                user_id=int(reply[1]),
                app_id=text(reply[2]),
                access_token=access,
                access_expires_at=int(reply[3]),
                refresh_token=refresh,
                refresh_expires_at=int(reply[4]),
                epoch=int(reply[5]),
            )
        if outcome == "reused":
            return ("reused", int(reply[1]), text(reply[2]))
        return None

    async def check(self, access_token: str, now: int) -> LiveAccess | None:
        family = token_family(access_token, "access")
        if family is None:
            return None
        reply = await self._check(
            keys=[self._keys.pair_family(family), self._keys.access_token(family, self._hash(access_token))],
            args=[now],
        )
        if not reply:
            return None
        return LiveAccess(int(reply[0]), text(reply[1]), int(reply[2]), family, int(reply[3]))

    async def account_state(self, user_id: int) -> revocations.AccountState:
        # Its own command, never in a family's script: the account's key lives in another slot.
        return await revocations.account_state(self._redis, self._keys.prefix, user_id)

    async def end_family(self, family: str) -> None:
        """End a family whatever its tokens' state (its account's credentials were revoked)."""
        key = self._keys.pair_family(family)
        await replicated(self._redis, key, ("DEL", key))
        # Announced once it is gone: a gateway that hears it and asks again finds nothing.
        await self._redis.publish(self._keys.pair_revocations, revocations.family_message(family))

    async def revoke(self, access_token: str, now: int) -> tuple[int, str] | None:
        """Revoke the family of a valid access token; (user_id, app_id), or None if not valid."""
        family = token_family(access_token, "access")
        if family is None:
            return None
        reply = await self._revoke(
            keys=[self._keys.pair_family(family), self._keys.access_token(family, self._hash(access_token))],
            args=[now, self._keys.pair_revocations, revocations.family_message(family)],
        )
        if not reply:
            return None
        return int(reply[0]), text(reply[1])
