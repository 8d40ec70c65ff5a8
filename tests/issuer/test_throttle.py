"""The failure throttle against a real Redis: an attempt is taken before the check it guards, so
parallel guesses cannot outrun it; right answers in parallel are queued, not refused.
(Through the gateway, with real password checks: tests/e2e/test_parallel_guessing.py.)"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from issuer.redis_keys import RedisKeys
from issuer.throttle import FailureThrottle, Refusal

PEPPER = "test-pepper-of-sixteen-bytes-or-more"
LIMITS = {"account": 5, "address": 30}


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[Redis]:
    # Blocking, as the issuer's: 200 parallel attempts share the pool's connections.
    client = Redis.from_pool(BlockingConnectionPool.from_url(redis_server, max_connections=50))
    yield client
    await client.aclose()


@pytest.fixture
def keys(redis_prefix: str) -> RedisKeys:
    return RedisKeys(f"{redis_prefix}throttle{secrets.token_hex(3)}:")


def throttle(redis: Redis, keys: RedisKeys, window: int = 30, max_wait: float = 2.0) -> FailureThrottle:
    return FailureThrottle(redis, keys, PEPPER, LIMITS, default_limit=5, window=window, max_wait=max_wait)


async def guarded_check(
    gate: FailureThrottle, subjects: dict[str, str], right: bool, checks: list[int]
) -> Refusal | bool:
    """What a login does: take, check (50 ms, like a slow password check), settle."""
    refusal = await gate.take("test", subjects)
    if refusal is not None:
        return refusal
    checks.append(1)
    await asyncio.sleep(0.05)
    await gate.finish("test", subjects, "succeeded" if right else "failed")
    return right


async def test_200_parallel_wrong_guesses_for_one_account_cost_at_most_5_checks(
    redis: Redis, keys: RedisKeys
) -> None:
    gate = throttle(redis, keys)
    checks: list[int] = []
    subjects = {"account": "victim", "address": "192.0.2.1"}
    outcomes = await asyncio.gather(*(guarded_check(gate, subjects, False, checks) for _ in range(200)))
    assert len(checks) == 5
    refusals = [o for o in outcomes if isinstance(o, Refusal)]
    assert len(refusals) == 195
    assert all(1 <= r.retry_after <= 30 for r in refusals)
    # Exactly one refusal is the window's first: the one a security trail records.
    assert sum(r.first for r in refusals) == 1


async def test_the_address_limit_holds_across_many_accounts_in_parallel(
    redis: Redis, keys: RedisKeys
) -> None:
    gate = throttle(redis, keys)
    checks: list[int] = []
    outcomes = await asyncio.gather(
        *(
            guarded_check(gate, {"account": f"user{i}", "address": "192.0.2.2"}, False, checks)
            for i in range(300)
        )
    )
    assert len(checks) == 30
    assert sum(isinstance(o, Refusal) for o in outcomes) == 270


async def test_right_answers_in_parallel_are_queued_never_refused(redis: Redis, keys: RedisKeys) -> None:
    """60 parallel right passwords for one account: at most 5 checks run at once, and every one
    gets through, since successes never count as failures."""
    gate = throttle(redis, keys)
    checks: list[int] = []
    running = 0
    peak = 0

    async def login() -> Refusal | bool:
        nonlocal running, peak
        subjects = {"account": "busy", "address": "192.0.2.3"}
        refusal = await gate.take("test", subjects)
        if refusal is not None:
            return refusal
        running += 1
        peak = max(peak, running)
        checks.append(1)
        await asyncio.sleep(0.02)
        running -= 1
        await gate.finish("test", subjects, "succeeded")
        return True

    outcomes = await asyncio.gather(*(login() for _ in range(60)))
    assert outcomes == [True] * 60
    assert peak == 5


async def test_a_success_forgives_the_accounts_failures_but_not_the_addresss(
    redis: Redis, keys: RedisKeys
) -> None:
    gate = throttle(redis, keys)
    checks: list[int] = []
    account = {"account": "forgetful", "address": "192.0.2.4"}
    for _ in range(4):
        assert await guarded_check(gate, account, False, checks) is False
    assert await guarded_check(gate, account, True, checks) is True
    # The account starts afresh: five more failures before it is blocked...
    for _ in range(5):
        assert await guarded_check(gate, account, False, checks) is False
    assert isinstance(await guarded_check(gate, account, True, checks), Refusal)
    # ...while the address keeps all nine of its failures.
    address_keys = [k async for k in redis.scan_iter(match=keys.prefix + "fail:{test}:address:*")]
    assert [int(await redis.hget(k, "n") or 0) for k in address_keys] == [9]


async def test_void_attempts_count_nothing_and_a_wait_that_runs_out_is_a_refusal(
    redis: Redis, keys: RedisKeys
) -> None:
    gate = throttle(redis, keys, max_wait=0.2)
    subjects = {"account": "held", "address": "192.0.2.5"}
    for _ in range(5):
        assert await gate.take("test", subjects) is None
    # The whole budget is in flight: a sixth attempt waits, then gives up without being a first refusal.
    refusal = await gate.take("test", subjects)
    assert refusal == Refusal(1, first=False)
    for _ in range(5):
        await gate.finish("test", subjects, "void")  # e.g. the registry did not answer
    assert await gate.take("test", subjects) is None


async def test_a_counter_whose_window_ended_is_not_recreated_without_one(
    redis: Redis, keys: RedisKeys
) -> None:
    gate = throttle(redis, keys, window=1)
    subjects = {"account": "slow", "address": "192.0.2.6"}
    assert await gate.take("test", subjects) is None
    await asyncio.sleep(1.2)  # the window ends while the check runs
    await gate.finish("test", {"address": "192.0.2.6"}, "void")
    await gate.finish("test", {"account": "slow"}, "failed")
    found = {k: await redis.ttl(k) async for k in redis.scan_iter(match=keys.prefix + "*")}
    # The failure opened a window of its own; the void settlement left nothing behind.
    assert len(found) == 1
    assert set(found.values()) == {1}
