"""Login sessions in Redis: opened with a password checked by the registry, resolved with a
sliding idle timeout, ended on logout. Failed logins are counted per account and per address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from issuer.redis_keys import RedisKeys
from shared.errors import BadCredentials, NotFound, Throttled
from shared.internal import InternalClient
from shared.secrets import lookup_hash, new_hex_secret

_TOUCH_SESSION = (Path(__file__).parent / "lua" / "touch_session.lua").read_text()


class Sessions:
    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        registry: InternalClient,
        pepper: str,
        failures_max: int,
        failure_window: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._registry = registry
        self._pepper = pepper
        self._failures_max = failures_max
        self._failure_window = failure_window
        self._touch = redis.register_script(_TOUCH_SESSION)

    def _session_key(self, realm: str, session_id: str) -> str:
        return self._keys.session(realm, lookup_hash(session_id, self._pepper).hex())

    async def open(
        self, realm: str, idle: int, password: str, client_addr: str, **login: str | None
    ) -> tuple[str, dict[str, Any]]:
        """Check the password with the registry and open a session; return (session id, user)."""
        account = login.get("username") or login.get("email") or ""
        account_key = self._keys.failed_logins_by_account(
            realm, lookup_hash(account.lower(), self._pepper).hex()
        )
        address_key = self._keys.failed_logins_by_address(realm, client_addr)
        counts = await self._redis.mget(account_key, address_key)
        if any(int(c or 0) >= self._failures_max for c in counts):
            raise Throttled("too many failed logins, try again later", retry_after=self._failure_window)
        try:
            reply = await self._registry.call(
                "POST", "/v1/users/authenticate", {"password": password, **login}
            )
        except (BadCredentials, NotFound):
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in (account_key, address_key):
                    pipe.incr(key)
                    pipe.expire(key, self._failure_window, nx=True)
                await pipe.execute()
            raise
        user: dict[str, Any] = reply["user"]
        session_id = new_hex_secret(16)
        key = self._session_key(realm, session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"user": orjson.dumps(user), "idle": idle})
            pipe.expire(key, idle)
            pipe.delete(account_key)
            await pipe.execute()
        return session_id, user

    async def resolve(self, realm: str, session_id: str) -> dict[str, Any]:
        raw = await self._touch(keys=[self._session_key(realm, session_id)])
        if not raw:
            raise NotFound("no such session")
        user: dict[str, Any] = orjson.loads(raw)
        return user

    async def end(self, realm: str, session_id: str) -> bool:
        return bool(await self._redis.delete(self._session_key(realm, session_id)))
