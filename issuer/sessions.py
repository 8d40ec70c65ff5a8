"""Login sessions in Redis: opened with a password checked by the registry (issuer/logins.py, behind
the failure throttle) or with a long-lived token, resolved with a sliding idle timeout, ended on
logout. A session records its account's epoch (shared/revocations.py) and stands only while that
epoch is current and the account is not disabled."""

from __future__ import annotations

import time
from typing import cast

from redis.typing import EncodableT

from issuer.logins import Logins
from issuer.redis_keys import RedisKeys
from issuer.scripts import Script, execute
from shared import revocations
from shared.contracts.issuer import SessionInfo, SessionOpened
from shared.contracts.registry import RegistryClient
from shared.contracts.registry.accounts import User
from shared.errors import AccountDisabled, BadCredentials, Expired, NotFound
from shared.redis import AnyRedis, replicated
from shared.secrets import lookup_hash, new_hex_secret

# SPOP's count: more than any set of sessions holds, so one call empties the set.
_ALL = 2**31 - 1


class Sessions:
    def __init__(
        self, redis: AnyRedis, keys: RedisKeys, registry: RegistryClient, pepper: str, logins: Logins
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._registry = registry
        self._pepper = pepper
        self._logins = logins
        self._touch_bounded = Script(redis, "touch_bounded_session")
        # Replicated: a session opened is one a client holds (a failover must not log it out).
        self._open = Script(redis, "session_open", replicated=True)
        self._index = Script(redis, "session_index")

    def _session_key(self, realm: str, session_id: str) -> str:
        return self._keys.session(realm, lookup_hash(session_id, self._pepper).hex())

    async def _epoch_for(self, user_id: int) -> int:
        """The account's epoch, to record in a session opened now; BadCredentials if the account is
        disabled (read after the registry's check, so a disable racing this open is never missed:
        either it is seen here, or it moves the epoch past the one recorded)."""
        state = await revocations.account_state(self._redis, self._keys.prefix, user_id)
        if state.disabled:
            raise BadCredentials("the account is disabled")
        return state.epoch

    async def open(
        self,
        realm: str,
        idle: int,
        password: str,
        client_addr: str,
        *,
        username: str | None = None,
        email: str | None = None,
    ) -> SessionOpened:
        """Check the password with the registry and open a session."""
        attempt = await self._logins.attempt(realm, username or email or "", client_addr)
        async with attempt:
            user = await self._logins.check_password(
                realm, password, client_addr, username=username, email=email
            )
            epoch = await self._epoch_for(user.id)
        session_id = new_hex_secret(16)
        key = self._session_key(realm, session_id)
        await self._write(key, idle, user=_user_json(user), idle=idle, epoch=epoch)
        return SessionOpened(session_id=session_id, user=user)

    async def _write(self, key: str, ttl: int, **fields: EncodableT) -> None:
        await self._open(keys=[key], args=[ttl, *(item for pair in fields.items() for item in pair)])

    async def end(self, realm: str, session_id: str) -> bool:
        # Replicated: a session ended must stay ended across a failover.
        key = self._session_key(realm, session_id)
        return bool(await replicated(self._redis, key, ("DEL", key)))

    # --- sessions opened with a long-lived token (Wialon's token/login) ----------------------------

    async def open_with_token(
        self, realm: str, idle: int, user_id: int, token_id: int, flags: int, ends_at: int | None
    ) -> SessionOpened:
        """Open a session for a token the caller has just checked with the registry. The user is
        read from the registry here, so the session holds the registry's record of an active user.
        The session never outlives the token's end (`ends_at`, unix seconds, None for none) and is
        indexed under the token, so `end_token_sessions` finds it."""
        now = int(time.time())
        ttl = idle if ends_at is None else min(idle, ends_at - now)
        if ttl <= 0:
            raise Expired("the token has ended")
        user = await self._registry.get_user(user_id)
        if user.status != "active":
            raise AccountDisabled("the account is disabled", user_id=user_id)
        try:
            epoch = await self._epoch_for(user_id)
        except BadCredentials as exc:
            raise AccountDisabled("the account is disabled", user_id=user_id) from exc
        session_id = new_hex_secret(16)
        session_hash = lookup_hash(session_id, self._pepper).hex()
        index = self._keys.token_sessions(realm, token_id)
        # Indexed before the session exists: a session that exists is always found by its token; a
        # failed open leaves at most a member without a session, which nothing honours.
        await self._index(keys=[index], args=[session_hash, idle])
        fields: dict[str, EncodableT] = {
            "user": _user_json(user),
            "idle": idle,
            "token_id": token_id,
            "flags": flags,
            "epoch": epoch,
        }
        if ends_at is not None:
            fields["ends_at"] = ends_at
        await self._write(self._keys.session(realm, session_hash), ttl, **fields)
        return SessionOpened(session_id=session_id, user=user)

    async def resolve_info(self, realm: str, session_id: str) -> SessionInfo:
        """The user of a live session (and, for a token session, its token and flags), sliding its
        idle timeout. A token session ends with its token: at the token's end, when it is no longer
        in the token's index (the token was deleted or changed), or once the token is announced
        revoked (shared/revocations: the sweeper's expiry and idle deletion, a dialect's delete)."""
        session_hash = lookup_hash(session_id, self._pepper).hex()
        key = self._keys.session(realm, session_hash)
        reply = await self._touch_bounded(keys=[key], args=[int(time.time())])
        if not reply:
            raise NotFound("no such session")
        stored, ttl, token_id, flags, epoch = reply
        assert isinstance(stored, bytes)
        user = User.model_validate_json(stored)
        # Its own command: the account's state lives in another slot than the session.
        state = await revocations.account_state(self._redis, self._keys.prefix, user.id)
        if not state.honours(int(epoch or 0)):
            await self._redis.delete(key)
            raise NotFound("the account's sessions have been ended")
        if not token_id:
            return SessionInfo(user=user)
        index = self._keys.token_sessions(realm, int(token_id))
        # Commands of their own, not in the script: the index and the marker live in other slots.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sismember(index, session_hash)
            pipe.expire(index, int(ttl), gt=True)  # the index outlives each of its sessions
            pipe.exists(revocations.marker_key(self._keys.prefix, int(token_id)))
            member, _, revoked = await execute(pipe)
        if not member or revoked:
            await self._redis.delete(key)
            raise NotFound("the token that opened the session has ended")
        return SessionInfo(user=user, token_id=int(token_id), flags=int(flags))

    async def end_token_sessions(self, realm: str, token_ids: list[int], *, revoked: bool) -> int:
        """End every session opened with these tokens; return how many were live.

        `revoked`: the tokens are gone for good; announce it (shared/revocations), which also stops
        any session that a login racing this call still manages to open. Otherwise the tokens live
        on under a new definition: that is published, and a revocation announced earlier (an expiry
        the token has since been updated out of) no longer holds."""
        if revoked:
            await revocations.announce(self._redis, self._keys.prefix, token_ids)
        else:
            # Caches of verifications forget the old definition too.
            await revocations.publish(self._redis, self._keys.prefix, token_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            if not revoked:
                for token_id in token_ids:
                    pipe.delete(revocations.marker_key(self._keys.prefix, token_id))
            # SPOP with a count empties a set in one atomic step; a session opened meanwhile joins
            # a new set, and so is ended by the next change of its token, not lost.
            for token_id in token_ids:
                pipe.spop(self._keys.token_sessions(realm, token_id), _ALL)
            replies = await execute(pipe)
        # SPOP with a count answers a list of members (None for a set that does not exist).
        popped = cast(list[list[bytes] | None], replies[-len(token_ids) :]) if token_ids else []
        async with self._redis.pipeline(transaction=False) as pipe:
            for members in popped:
                for session_hash in members or []:
                    pipe.delete(self._keys.session(realm, session_hash.decode()))
            deleted = cast(list[int], await execute(pipe))
        return sum(deleted)


def _user_json(user: User) -> bytes:
    """The user as a session holds it: the registry's record, as JSON."""
    return user.__pydantic_serializer__.to_json(user)
