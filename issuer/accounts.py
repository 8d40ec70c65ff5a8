"""Account-wide actions the admin API asks of the issuer (issue 17): ending every session and
ChatApp family of an account and enabling it again (the epochs and flags of shared/revocations.py,
the same calls as `tokenhub users disable|enable|revoke`), today's tokens.make quota usage of some
accounts for an app, and the sweeper's last pass."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import cast

from issuer.pair_store import PairStore
from issuer.quota import utc_day
from issuer.redis_keys import RedisKeys
from shared import revocations
from shared.contracts.issuer import AccountQuotaUsage, QuotaUsage
from shared.redis import AnyRedis, sweeper_last_pass_key


class Accounts:
    def __init__(self, redis: AnyRedis, keys: RedisKeys, pairs: PairStore) -> None:
        self._redis = redis
        self._keys = keys
        self._pairs = pairs

    async def end(self, user_id: int, disabled: bool | None) -> None:
        await revocations.end_account_credentials(self._redis, self._keys.prefix, user_id, disabled=disabled)

    async def enable(self, user_id: int) -> None:
        await revocations.enable_account(self._redis, self._keys.prefix, user_id)

    async def quota_usage(self, app_id: str, user_ids: list[int]) -> QuotaUsage:
        day = utc_day(int(time.time()))
        # One key per account, each in its own slot: a non-transactional pipeline (split by node in
        # a cluster).
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hmget(
                    self._keys.pair_quota(self._pairs.account_hash(user_id, app_id), day), ["used", "refused"]
                )
            replies = cast(list[list[bytes | None]], await cast(Awaitable[object], pipe.execute()))
        return QuotaUsage(
            day=day,
            accounts=[
                AccountQuotaUsage(user_id=user_id, used=int(used or 0), refused=int(refused or 0))
                for user_id, (used, refused) in zip(user_ids, replies, strict=True)
            ],
        )

    async def sweeper_last_pass(self) -> int | None:
        at = await cast(Awaitable[bytes | None], self._redis.get(sweeper_last_pass_key(self._keys.prefix)))
        return None if at is None else int(at)
