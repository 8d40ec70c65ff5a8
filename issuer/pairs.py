"""ChatApp-style access/refresh pairs (DESIGN §2.4) in Redis: make, refresh, check, revoke, quota.

- A *family* is everything descended from one make. Tokens carry their family id, so the issuer finds
  a token's keys (all hash-tagged by that id, one Redis Cluster slot) without any index; the secret
  part is 256 bits from `secrets`, and Redis only ever sees its peppered HMAC.
- Refresh consumes the presented refresh token and writes the next pair in one Lua script. A used
  refresh token presented again revokes the family and is written to the audit log.
- The daily quota per (user, app, UTC day) is one counter taken by a Lua script after the credentials
  are checked: a wrong password never spends it, and it lives in Redis, not in this process.
- A successful credential check is remembered in Redis for a few seconds (CredentialCache), so a
  burst of makes with the right password costs one Argon2id check, not one each.
- A family records its account's epoch (shared/revocations.py): once `tokenhub users revoke` or
  `users disable` moves it on, every check and refresh of the family fails, and the family is ended.

The vocabulary here is TokenHub's (access_token, access_expires_at...): the gateway's ChatApp dialect
translates it to the wire names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from redis.asyncio import Redis

from issuer.logins import Logins
from issuer.redis_keys import PAIRS_REALM, QUOTA_GRACE_S, RedisKeys
from issuer.trail import SecurityTrail
from shared import revocations
from shared.errors import BadCredentials, NotFound, QuotaExceeded
from shared.internal import InternalClient
from shared.secrets import lookup_hash

log = logging.getLogger(__name__)

_LUA = Path(__file__).parent / "lua"

TokenKind = Literal["access", "refresh"]
PREFIXES: dict[TokenKind, str] = {"access": "th_at_", "refresh": "th_rt_"}
FAMILY_HEX = 32  # 128-bit family id: names the family's keys, it is not the secret
SECRET_BYTES = 32  # 256 bits from the CSPRNG: what makes the token unguessable
_SECRET_CHARS = 43  # length of SECRET_BYTES in unpadded base64url
_TOKEN = re.compile(rf"th_(at|rt)_([0-9a-f]{{{FAMILY_HEX}}})([A-Za-z0-9_-]{{{_SECRET_CHARS}}})")
_KIND_OF_TAG: dict[str, TokenKind] = {"at": "access", "rt": "refresh"}
TOKEN_LENGTH = 6 + FAMILY_HEX + _SECRET_CHARS


# --- token format --------------------------------------------------------------------------------


def new_family_id() -> str:
    return secrets.token_hex(FAMILY_HEX // 2)


def new_token(kind: TokenKind, family: str) -> str:
    """`th_at_` or `th_rt_`, the family id, then 256 random bits (base64url)."""
    return PREFIXES[kind] + family + secrets.token_urlsafe(SECRET_BYTES)


def token_family(token: str, kind: TokenKind) -> str | None:
    """The family id of a well-formed token of this kind, else None. Checked strictly: the id
    becomes part of Redis keys, between the braces of a hash tag."""
    match = _TOKEN.fullmatch(token)
    if match is None or _KIND_OF_TAG[match[1]] != kind:
        return None
    return match[2]


# --- days and quota arithmetic (UTC) -------------------------------------------------------------


def utc_day(now: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def next_utc_midnight(now: int) -> int:
    """The unix time at which the UTC day containing `now` ends (the next day's first second)."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp())


def seconds_to_reset(now: int) -> int:
    """Retry-After for a refused make: whole seconds until the quota resets, at least 1."""
    return max(1, next_utc_midnight(now) - now)


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_at: int  # unix seconds: the next UTC midnight

    def to_wire(self) -> dict[str, int]:
        return {"limit": self.limit, "remaining": self.remaining, "reset_at": self.reset_at}


@dataclass(frozen=True)
class Pair:
    user_id: int
    app_id: str
    access_token: str
    access_expires_at: int
    refresh_token: str
    refresh_expires_at: int
    epoch: int = 0  # the account's epoch the family was made under; not for the wire

    def to_wire(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "app_id": self.app_id,
            "access_token": self.access_token,
            "access_expires_at": self.access_expires_at,
            "refresh_token": self.refresh_token,
            "refresh_expires_at": self.refresh_expires_at,
        }


@dataclass(frozen=True)
class Verified:
    """What a valid access token says about its bearer."""

    user_id: int
    app_id: str
    expires_at: int
    family: str  # revocations name families: a verification cache files the answer under it
    epoch: int = 0  # the account's epoch the family was made under; not for the wire

    def to_wire(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "app_id": self.app_id,
            "access_expires_at": self.expires_at,
            "family": self.family,
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- Redis ---------------------------------------------------------------------------------------


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

    def __init__(self, redis: Redis, keys: RedisKeys, ttl: int) -> None:
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
        cached = await self._redis.get(self._entry(email, password))
        return int(cached) if cached is not None else None

    async def remember(self, email: str, password: str, user_id: int) -> None:
        if self.ttl:
            await self._redis.set(self._entry(email, password), user_id, ex=self.ttl)


class PairStore:
    """The Redis side alone: every operation is one script or one transaction. `now` is passed in
    (unix seconds) so that one request uses one clock, and tests can move it."""

    def __init__(self, redis: Redis, keys: RedisKeys, pepper: str) -> None:
        self._redis = redis
        self._keys = keys
        self._pepper = pepper
        self._check = redis.register_script((_LUA / "pair_check.lua").read_text())
        self._refresh = redis.register_script((_LUA / "pair_refresh.lua").read_text())
        self._revoke = redis.register_script((_LUA / "pair_revoke.lua").read_text())
        self._take_quota = redis.register_script((_LUA / "quota_take.lua").read_text())

    def _hash(self, token: str) -> str:
        return lookup_hash(token, self._pepper).hex()

    def account_hash(self, user_id: int, app_id: str) -> str:
        # Hashed: an app id is free text (it could hold braces), and keys are listed by anyone with
        # Redis access. Truncated: 128 bits is plenty to keep accounts apart.
        return lookup_hash(f"{user_id}\x00{app_id}", self._pepper).hex()[:32]

    def _revocation_message(self, family: str) -> bytes:
        return revocations.family_message(family)

    async def take_quota(self, user_id: int, app_id: str, limit: int, now: int) -> tuple[bool, Quota, int]:
        """(taken, quota after this make, refusals today including this one)."""
        reset_at = next_utc_midnight(now)
        key = self._keys.pair_quota(self.account_hash(user_id, app_id), utc_day(now))
        reply = await self._take_quota(keys=[key], args=[limit, reset_at + QUOTA_GRACE_S])
        taken, used = bool(reply[0]), int(reply[1])
        refused = 0 if taken else int(reply[2])
        return taken, Quota(limit, max(0, limit - used), reset_at), refused

    async def make(
        self, user_id: int, app_id: str, access_ttl: int, refresh_ttl: int, now: int, epoch: int = 0
    ) -> Pair:
        family = new_family_id()
        access, refresh = new_token("access", family), new_token("refresh", family)
        access_end, refresh_end = now + access_ttl, now + refresh_ttl
        family_key = self._keys.pair_family(family)
        # One transaction on keys of one slot: a family never exists without its first pair.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                family_key,
                mapping={
                    "user_id": user_id,
                    "app_id": app_id,
                    "access_ttl": access_ttl,
                    "refresh_ttl": refresh_ttl,
                    "created_at": now,
                    "epoch": epoch,
                },
            )
            pipe.expireat(family_key, max(access_end, refresh_end))
            pipe.set(self._keys.access_token(family, self._hash(access)), access_end, exat=access_end)
            pipe.set(
                self._keys.refresh_token(family, self._hash(refresh)),
                f"live:{refresh_end}",
                exat=refresh_end,
            )
            await pipe.execute()
        return Pair(user_id, app_id, access, access_end, refresh, refresh_end, epoch)

    async def refresh(self, refresh_token: str, now: int) -> Pair | tuple[Literal["reused"], int, str] | None:
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
            args=[now, self._keys.pair_revocations, self._revocation_message(family)],
        )
        outcome = _text(reply[0])
        if outcome == "ok":
            return Pair(
                int(reply[1]), _text(reply[2]), access, int(reply[3]), refresh, int(reply[4]), int(reply[5])
            )
        if outcome == "reused":
            return ("reused", int(reply[1]), _text(reply[2]))
        return None

    async def check(self, access_token: str, now: int) -> Verified | None:
        family = token_family(access_token, "access")
        if family is None:
            return None
        reply = await self._check(
            keys=[self._keys.pair_family(family), self._keys.access_token(family, self._hash(access_token))],
            args=[now],
        )
        if not reply:
            return None
        return Verified(int(reply[0]), _text(reply[1]), int(reply[2]), family, int(reply[3]))

    async def account_state(self, user_id: int) -> revocations.AccountState:
        # Its own command, never in a family's script: the account's key lives in another slot.
        return await revocations.account_state(self._redis, self._keys.prefix, user_id)

    async def end_family(self, family: str) -> None:
        """End a family whatever its tokens' state (its account's credentials were revoked)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._keys.pair_family(family))
            pipe.publish(self._keys.pair_revocations, self._revocation_message(family))
            await pipe.execute()

    async def revoke(self, access_token: str, now: int) -> tuple[int, str] | None:
        """Revoke the family of a valid access token; (user_id, app_id), or None if not valid."""
        family = token_family(access_token, "access")
        if family is None:
            return None
        reply = await self._revoke(
            keys=[self._keys.pair_family(family), self._keys.access_token(family, self._hash(access_token))],
            args=[now, self._keys.pair_revocations, self._revocation_message(family)],
        )
        if not reply:
            return None
        return int(reply[0]), _text(reply[1])


# --- the service ---------------------------------------------------------------------------------


class Pairs:
    """tokens.make / refresh / check / revoke: credentials from the registry, state in PairStore."""

    def __init__(
        self,
        store: PairStore,
        credentials: CredentialCache,
        registry: InternalClient,
        logins: Logins,
        trail: SecurityTrail,
        realm: str = PAIRS_REALM,
    ) -> None:
        self.store = store
        self._credentials = credentials
        self._registry = registry
        self._logins = logins
        self._trail = trail
        self._realm = realm

    async def make(self, email: str, password: str, app_id: str, client_addr: str) -> tuple[Pair, Quota]:
        # The app first: it is cheap, and an unknown app spends no password check. It reveals only
        # whether an app id exists, never whether an e-mail does.
        if app_id in (".", ".."):
            # As a path segment these are dot-segments, which every HTTP client resolves away
            # (RFC 3986 §5.2.4), even percent-encoded: the registry would be asked for another path
            # and answer 404 for the route, not the app. No app by these ids can be looked up.
            raise NotFound("no such app")
        app = (await self._registry.call("GET", f"/v1/apps/{_path_segment(app_id)}"))["app"]
        attempt = await self._logins.attempt(self._realm, email, client_addr)
        async with attempt:
            user_id = await self._authenticate(email, password, client_addr)
            state = await self.store.account_state(user_id)
            if state.disabled:  # a right password from the credential cache, for a disabled account
                raise BadCredentials("the account is disabled")
        # The quota only after the credentials: a wrong password must not spend anyone's quota.
        now = int(time.time())
        taken, quota, refused = await self.store.take_quota(user_id, app["app_id"], app["daily_quota"], now)
        if not taken:
            if refused == 1:  # the day's first refusal is audited; a client stuck in a loop is not
                await self._trail.record(
                    "quota_refused",
                    kind="chatapp",
                    client_addr=client_addr,
                    subject_id=user_id,
                    details={"app_id": app_id, "limit": quota.limit},
                )
            raise QuotaExceeded(
                "daily tokens.make quota used up",
                limit=quota.limit,
                reset_at=quota.reset_at,
                retry_after=seconds_to_reset(now),
            )
        pair = await self.store.make(
            user_id, app["app_id"], app["access_ttl"], app["refresh_ttl"], now, state.epoch
        )
        return pair, quota

    async def _authenticate(self, email: str, password: str, client_addr: str) -> int:
        """The user id for these credentials, from the credential cache or the registry (which
        records the login); BadCredentials otherwise."""
        user_id = await self._credentials.user_id(email, password)
        if user_id is not None:
            # No registry check to record it, so recorded here: every tokens.make is a login.
            await self._trail.record(
                "login_succeeded",
                kind=self._realm,
                client_addr=client_addr,
                subject_id=user_id,
                details={"realm": self._realm, "cached": True},
            )
            return user_id
        user = await self._logins.check_password(self._realm, password, client_addr, email=email)
        user_id = int(user["id"])
        await self._credentials.remember(email, password, user_id)
        return user_id

    async def _standing(self, user_id: int, epoch: int, family: str) -> bool:
        """Whether the account still honours a family made under `epoch`; if not, the family ends."""
        state = await self.store.account_state(user_id)
        if state.honours(epoch):
            return True
        await self.store.end_family(family)
        return False

    async def refresh(self, refresh_token: str, client_addr: str) -> Pair:
        outcome = await self.store.refresh(refresh_token, int(time.time()))
        family = token_family(refresh_token, "refresh")
        if isinstance(outcome, Pair):
            # Checked after the rotation, which needs the family's owner first; the new pair of a
            # revoked account is never handed out, and its family ends here.
            assert family is not None
            if await self._standing(outcome.user_id, outcome.epoch, family):
                return outcome
            raise NotFound("the account's credentials have been revoked")
        if outcome is not None:
            _, user_id, app_id = outcome
            log.warning("refresh token reused; family revoked", extra={"family": family, "user_id": user_id})
            await self._trail.record(
                "refresh_reuse_detected",
                kind="chatapp",
                client_addr=client_addr,
                subject_id=user_id,
                details={"app_id": app_id, "family": family},
            )
            raise NotFound("refresh token already used; its family is revoked")
        raise NotFound("unknown, expired or revoked refresh token")

    async def check(self, access_token: str) -> Verified:
        verified = await self.store.check(access_token, int(time.time()))
        if verified is None or not await self._standing(verified.user_id, verified.epoch, verified.family):
            raise NotFound("unknown, expired or revoked access token")
        return verified

    async def revoke(self, access_token: str) -> None:
        if await self.store.revoke(access_token, int(time.time())) is None:
            raise NotFound("unknown, expired or revoked access token")


def _path_segment(value: str) -> str:
    """An app id as one URL path segment (an id may hold any character, '/' and '%' included)."""
    return quote(value, safe="")
