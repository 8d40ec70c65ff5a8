"""Login sessions in Redis: opened with a password checked by the registry, resolved with a
sliding idle timeout, ended on logout. Failed logins are counted per account and per address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from issuer.redis_keys import RedisKeys
from issuer.throttle import FailureThrottle
from shared.errors import BadCredentials, NotFound
from shared.internal import InternalClient
from shared.secrets import lookup_hash, new_hex_secret

_TOUCH_SESSION = (Path(__file__).parent / "lua" / "touch_session.lua").read_text()


class Sessions:
    def __init__(
        self, redis: Redis, keys: RedisKeys, registry: InternalClient, pepper: str, throttle: FailureThrottle
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._registry = registry
        self._pepper = pepper
        self._throttle = throttle
        self._touch = redis.register_script(_TOUCH_SESSION)

    def _session_key(self, realm: str, session_id: str) -> str:
        return self._keys.session(realm, lookup_hash(session_id, self._pepper).hex())

    async def open(
        self, realm: str, idle: int, password: str, client_addr: str, **login: str | None
    ) -> tuple[str, dict[str, Any]]:
        """Check the password with the registry and open a session; return (session id, user)."""
        account = login.get("username") or login.get("email") or ""
        subjects = {"account": account, "address": client_addr}
        await self._throttle.check(realm, subjects)
        try:
            reply = await self._registry.call(
                "POST", "/v1/users/authenticate", {"password": password, **login}
            )
        except (BadCredentials, NotFound):
            await self._throttle.record_failure(realm, subjects)
            raise
        user: dict[str, Any] = reply["user"]
        session_id = new_hex_secret(16)
        key = self._session_key(realm, session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"user": orjson.dumps(user), "idle": idle})
            pipe.expire(key, idle)
            await pipe.execute()
        await self._throttle.clear(realm, "account", account)
        return session_id, user

    async def resolve(self, realm: str, session_id: str) -> dict[str, Any]:
        raw = await self._touch(keys=[self._session_key(realm, session_id)])
        if not raw:
            raise NotFound("no such session")
        user: dict[str, Any] = orjson.loads(raw)
        return user

    async def end(self, realm: str, session_id: str) -> bool:
        return bool(await self._redis.delete(self._session_key(realm, session_id)))
