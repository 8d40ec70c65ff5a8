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

from issuer.redis_keys import PAIRS_REALM, QUOTA_GRACE_S, RedisKeys
from issuer.throttle import FailureThrottle
from shared import revocations
from shared.errors import BadCredentials, NotFound, QuotaExceeded, TokenHubError
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
    change or a disabled account takes effect for tokens.make up to `ttl` seconds late.
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

    async def make(self, user_id: int, app_id: str, access_ttl: int, refresh_ttl: int, now: int) -> Pair:
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
        return Pair(user_id, app_id, access, access_end, refresh, refresh_end)

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
            return Pair(int(reply[1]), _text(reply[2]), access, int(reply[3]), refresh, int(reply[4]))
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
        return Verified(int(reply[0]), _text(reply[1]), int(reply[2]), family)

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
        throttle: FailureThrottle,
        realm: str = PAIRS_REALM,
    ) -> None:
        self.store = store
        self._credentials = credentials
        self._registry = registry
        self._throttle = throttle
        self._realm = realm

    async def make(self, email: str, password: str, app_id: str, client_addr: str) -> tuple[Pair, Quota]:
        subjects = {"account": email.lower(), "address": client_addr}
        await self._throttle.check(self._realm, subjects)
        # The app first: it is cheap, and an unknown app spends no password check. It reveals only
        # whether an app id exists, never whether an e-mail does.
        if app_id in (".", ".."):
            # As a path segment these are dot-segments, which every HTTP client resolves away
            # (RFC 3986 §5.2.4), even percent-encoded: the registry would be asked for another path
            # and answer 404 for the route, not the app. No app by these ids can be looked up.
            raise NotFound("no such app")
        app = (await self._registry.call("GET", f"/v1/apps/{_path_segment(app_id)}"))["app"]
        user_id = await self._authenticate(email, password, subjects)
        # The quota only after the credentials: a wrong password must not spend anyone's quota.
        now = int(time.time())
        taken, quota, refused = await self.store.take_quota(user_id, app["app_id"], app["daily_quota"], now)
        if not taken:
            if refused == 1:  # the day's first refusal is audited; a client stuck in a loop is not
                await self._audit(
                    "quota_refused", user_id, client_addr, {"app_id": app_id, "limit": quota.limit}
                )
            raise QuotaExceeded(
                "daily tokens.make quota used up",
                limit=quota.limit,
                remaining=0,
                reset_at=quota.reset_at,
                retry_after=seconds_to_reset(now),
            )
        pair = await self.store.make(user_id, app["app_id"], app["access_ttl"], app["refresh_ttl"], now)
        return pair, quota

    async def _authenticate(self, email: str, password: str, subjects: dict[str, str]) -> int:
        """The user id for these credentials; BadCredentials (counted by the throttle) otherwise."""
        user_id = await self._credentials.user_id(email, password)
        if user_id is None:
            try:
                reply = await self._registry.call(
                    "POST", "/v1/users/authenticate", {"email": email, "password": password}
                )
            except (BadCredentials, NotFound):
                await self._throttle.record_failure(self._realm, subjects)
                raise
            user_id = int(reply["user"]["id"])
            await self._credentials.remember(email, password, user_id)
        await self._throttle.clear(self._realm, "account", email.lower())
        return user_id

    async def refresh(self, refresh_token: str, client_addr: str) -> Pair:
        outcome = await self.store.refresh(refresh_token, int(time.time()))
        if isinstance(outcome, Pair):
            return outcome
        if outcome is not None:
            _, user_id, app_id = outcome
            family = token_family(refresh_token, "refresh")
            log.warning("refresh token reused; family revoked", extra={"family": family, "user_id": user_id})
            await self._audit(
                "refresh_reuse_detected", user_id, client_addr, {"app_id": app_id, "family": family}
            )
            raise NotFound("refresh token already used; its family is revoked", reuse_detected=True)
        raise NotFound("unknown, expired or revoked refresh token")

    async def check(self, access_token: str) -> Verified:
        verified = await self.store.check(access_token, int(time.time()))
        if verified is None:
            raise NotFound("unknown, expired or revoked access token")
        return verified

    async def revoke(self, access_token: str) -> None:
        if await self.store.revoke(access_token, int(time.time())) is None:
            raise NotFound("unknown, expired or revoked access token")

    async def _audit(self, event: str, user_id: int, client_addr: str, details: dict[str, Any]) -> None:
        """Record a security event in the registry's audit log. The Redis side has already happened
        and must stand, so a registry that does not answer costs the event, loudly, not the reply."""
        try:
            await self._registry.call(
                "POST",
                "/v1/audit",
                {
                    "event": event,
                    "subject_id": user_id,
                    "kind": "chatapp",
                    "client_addr": client_addr,
                    "details": details,
                },
            )
        except TokenHubError as exc:
            log.error(
                "audit event lost: %s",
                exc.message,
                extra={"audit_event": event, "user_id": user_id, **details},
            )


def _path_segment(value: str) -> str:
    """An app id as one URL path segment (an id may hold any character, '/' and '%' included)."""
    return quote(value, safe="")
