"""The failure throttle against a real Redis and a real Redis Cluster: an attempt is taken before
the check it guards, so parallel guesses cannot outrun it; right answers in parallel are queued, not
refused; an attempt never settled (its issuer was killed) stops holding the budget when its lease
lapses.
(Through the gateway, with real password checks: tests/e2e/test_parallel_guessing.py.)"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from issuer.redis_keys import RedisKeys
from issuer.throttle import FailureThrottle, Outcome, Refusal
from shared.errors import Unavailable
from shared.redis import AnyRedis

PEPPER = "test-pepper-of-sixteen-bytes-or-more"
LIMITS = {"account": 5, "address": 30}


@pytest.fixture
def keys(redis_prefix: str) -> RedisKeys:
    return RedisKeys(f"{redis_prefix}throttle{secrets.token_hex(3)}:")


def throttle(
    redis: AnyRedis, keys: RedisKeys, window: int = 30, lease: float = 5.0, max_wait: float = 2.0
) -> FailureThrottle:
    return FailureThrottle(
        redis, keys, PEPPER, LIMITS, default_limit=5, window=window, lease=lease, max_wait=max_wait
    )


async def guarded_check(
    gate: FailureThrottle, subjects: dict[str, str], right: bool, checks: list[int]
) -> Refusal | bool:
    """What a login does: take, check (50 ms, like a slow password check), settle."""
    taken = await gate.take("test", subjects)
    if isinstance(taken, Refusal):
        return taken
    checks.append(1)
    await asyncio.sleep(0.05)
    outcome: Outcome = "succeeded" if right else "failed"
    await gate.finish("test", subjects, taken, outcome)
    return right


async def test_200_parallel_wrong_guesses_for_one_account_cost_at_most_5_checks(
    redis: AnyRedis, keys: RedisKeys
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
    redis: AnyRedis, keys: RedisKeys
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


async def test_right_answers_in_parallel_are_queued_never_refused(redis: AnyRedis, keys: RedisKeys) -> None:
    """60 parallel right passwords for one account: at most 5 checks run at once, and every one
    gets through, since successes never count as failures."""
    gate = throttle(redis, keys)
    running = 0
    peak = 0

    async def login() -> bool:
        nonlocal running, peak
        subjects = {"account": "busy", "address": "192.0.2.3"}
        taken = await gate.take("test", subjects)
        assert isinstance(taken, str), taken
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        await gate.finish("test", subjects, taken, "succeeded")
        return True

    assert await asyncio.gather(*(login() for _ in range(60))) == [True] * 60
    assert peak == 5


async def test_a_success_forgives_the_accounts_failures_but_not_the_addresss(
    redis: AnyRedis, keys: RedisKeys
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


async def test_void_attempts_count_nothing_and_a_wait_that_runs_out_is_try_again(
    redis: AnyRedis, keys: RedisKeys
) -> None:
    gate = throttle(redis, keys, max_wait=0.2)
    subjects = {"account": "held", "address": "192.0.2.5"}
    held = [await gate.take("test", subjects) for _ in range(5)]
    # The whole budget is in flight: a sixth attempt waits, then is told to try again (nothing has
    # failed, so it is no refusal).
    with pytest.raises(Unavailable):
        await gate.take("test", subjects)
    for attempt in held:
        assert isinstance(attempt, str)
        await gate.finish("test", subjects, attempt, "void")  # e.g. the registry did not answer
    assert isinstance(await gate.take("test", subjects), str)


async def test_an_attempt_never_settled_stops_holding_the_budget_when_its_lease_lapses(
    redis: AnyRedis, keys: RedisKeys
) -> None:
    """An issuer killed mid-check never settles its attempts: their leases lapse by themselves, so
    the account is not locked for the rest of the failure window."""
    gate = throttle(redis, keys, lease=0.5, max_wait=0.1)
    subjects = {"account": "orphaned", "address": "192.0.2.6"}
    for _ in range(5):
        assert isinstance(await gate.take("test", subjects), str)  # and then the process dies
    with pytest.raises(Unavailable):
        await gate.take("test", subjects)
    await asyncio.sleep(0.6)
    assert isinstance(await gate.take("test", subjects), str)


async def test_the_window_starts_at_the_first_failure_and_a_void_attempt_leaves_nothing(
    redis: AnyRedis, keys: RedisKeys
) -> None:
    gate = throttle(redis, keys, window=1)
    subjects = {"account": "slow", "address": "192.0.2.7"}
    attempt = await gate.take("test", subjects)
    assert isinstance(attempt, str)
    await gate.finish("test", subjects, attempt, "void")
    assert [k async for k in redis.scan_iter(match=keys.prefix + "fail:*")] == []
    attempt = await gate.take("test", subjects)
    assert isinstance(attempt, str)
    await gate.finish("test", subjects, attempt, "failed")
    found = {k: await redis.ttl(k) async for k in redis.scan_iter(match=keys.prefix + "fail:*")}
    assert len(found) == 2  # the account's and the address's, each with the window's TTL
    assert set(found.values()) == {1}


async def test_a_look_holds_nothing_and_refuses_only_what_take_would_refuse(
    redis: AnyRedis, keys: RedisKeys
) -> None:
    """`refusal` (a login with a password already proved right): no lease, so it never waits behind
    attempts in flight; but a subject out of failures refuses it as `take` does, first refusal once."""
    gate = throttle(redis, keys, max_wait=0.3)
    subjects = {"account": "burst", "address": "192.0.2.4"}
    held = [await gate.take("test", subjects) for _ in range(5)]  # the account's whole budget in flight
    assert all(isinstance(attempt, str) for attempt in held)
    with pytest.raises(Unavailable):
        await gate.take("test", subjects)
    assert await gate.refusal("test", subjects) is None
    for attempt in held:
        assert isinstance(attempt, str)
        await gate.finish("test", subjects, attempt, "failed")
    refused = await gate.refusal("test", subjects)
    assert isinstance(refused, Refusal)
    assert (refused.first, 1 <= refused.retry_after <= 30) == (True, True)
    again = await gate.take("test", subjects)
    assert isinstance(again, Refusal)
    assert again.first is False
    assert await gate.refusal("test", {"account": "someone-else", "address": "192.0.2.5"}) is None
