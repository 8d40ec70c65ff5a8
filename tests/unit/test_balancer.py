"""The replica set behind an internal URL: spread, set-aside with back-off, re-resolution."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from shared.balancer import DRAINING_SET_ASIDE_S, MAX_BACKOFF_S, Replicas, Target, parse_targets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Names:
    """An injected resolver: what each name resolves to now, changeable by the test."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return self.table[host]


def replicas(setting: str, names: Names | None = None, clock: Clock | None = None) -> Replicas:
    return Replicas(
        "registry",
        parse_targets(setting),
        resolve_interval=60,
        resolver=names or Names({}),
        clock=clock or Clock(),
        rng=random.Random(7),
    )


def test_a_setting_is_one_url_or_a_comma_separated_list() -> None:
    assert parse_targets("http://registry:8082") == [Target("http", "registry", 8082)]
    assert parse_targets("http://10.0.0.1:1, http://[::1]:2,") == [
        Target("http", "10.0.0.1", 1),
        Target("http", "::1", 2),
    ]
    for bad in ("", " , ", "registry:8082", "ftp://x:1"):
        with pytest.raises(ValueError, match="URL"):
            parse_targets(bad)


async def test_a_name_becomes_one_endpoint_per_address() -> None:
    names = Names({"registry": ["10.0.0.1", "10.0.0.2", "fd00::3"]})
    set_ = replicas("http://registry:8082", names)
    await set_.refresh()
    assert [e.url for e in set_.all] == [
        "http://10.0.0.1:8082",
        "http://10.0.0.2:8082",
        "http://[fd00::3]:8082",
    ]


async def test_calls_spread_evenly_and_favour_the_less_busy() -> None:
    set_ = replicas("http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3")
    await set_.refresh()
    picked: Counter[str] = Counter()
    for _ in range(3000):
        endpoint = set_.pick()
        assert endpoint is not None
        picked[endpoint.url] += 1
        set_.sent(endpoint)
        set_.answered(endpoint)
    assert all(850 <= n <= 1150 for n in picked.values()), picked
    # One endpoint with calls piling up is picked only when both draws are it: never, with three.
    busy = set_.all[0]
    busy.outstanding = 50
    assert all(set_.pick() is not busy for _ in range(200))


async def test_a_failing_endpoint_is_set_aside_with_a_growing_back_off() -> None:
    clock = Clock()
    set_ = replicas("http://127.0.0.1:1,http://127.0.0.1:2", clock=clock)
    await set_.refresh()
    dead, alive = set_.all
    backoffs = []
    for _ in range(7):
        set_.sent(dead)
        set_.failed(dead, slowly=False)
        backoffs.append(dead.set_aside_until - clock.now)
        assert all(set_.pick() is alive for _ in range(20))
    assert backoffs == [1, 2, 4, 8, 16, MAX_BACKOFF_S, MAX_BACKOFF_S]
    clock.now += MAX_BACKOFF_S
    assert dead in {set_.pick() for _ in range(50)}  # tried again once its back-off is over
    set_.sent(dead)
    set_.answered(dead)
    assert dead.failures == 0


async def test_calls_in_flight_that_fail_with_their_endpoint_are_one_failure() -> None:
    clock = Clock()
    set_ = replicas("http://127.0.0.1:1,http://127.0.0.1:2", clock=clock)
    await set_.refresh()
    dead, _ = set_.all
    # A replica killed with fifty calls in its hands: they all fail at once, one failure.
    in_flight = [set_.sent(dead) for _ in range(50)]
    for call in in_flight:
        set_.failed(dead, slowly=False, call=call)
    assert (dead.failures, dead.set_aside_until - clock.now, dead.outstanding) == (1, 1, 0)
    # Tried again after its back-off and failing again: that one is consecutive.
    clock.now += 1
    set_.failed(dead, slowly=False, call=set_.sent(dead))
    assert (dead.failures, dead.set_aside_until - clock.now) == (2, 2)


async def test_with_every_endpoint_set_aside_only_trials_go_through() -> None:
    set_ = replicas("http://127.0.0.1:1,http://127.0.0.1:2")
    await set_.refresh()
    silent, refusing = set_.all
    set_.sent(silent)
    set_.failed(silent, slowly=True)
    set_.sent(refusing)
    set_.failed(refusing, slowly=False)
    # A refused connection costs nothing to try again: the restarting replica serves once it is up.
    assert all(set_.pick() is refusing for _ in range(20))
    # Hosts that timed out get one trial call at a time (a half-open breaker); the rest, nothing.
    set_.sent(refusing)
    set_.failed(refusing, slowly=True)
    trial = set_.pick()
    assert trial is not None
    set_.sent(trial)
    other = set_.pick()
    assert other is not None
    assert other is not trial
    set_.sent(other)
    assert set_.pick() is None


async def test_avoid_gives_another_endpoint_or_none() -> None:
    set_ = replicas("http://127.0.0.1:1,http://127.0.0.1:2")
    await set_.refresh()
    first, second = set_.all
    assert all(set_.pick(avoid=first) is second for _ in range(20))
    single = replicas("http://127.0.0.1:1")
    await single.refresh()
    assert single.pick(avoid=single.all[0]) is None


async def test_re_resolving_follows_replicas_and_keeps_what_it_knows() -> None:
    names = Names({"registry": ["10.0.0.1", "10.0.0.2"]})
    set_ = replicas("http://registry:8082", names)
    await set_.refresh()
    kept = set_.all[0]
    set_.sent(kept)
    set_.failed(kept, slowly=False)
    names.table["registry"] = ["10.0.0.1", "10.0.0.3"]
    await set_.refresh()
    assert [e.url for e in set_.all] == ["http://10.0.0.1:8082", "http://10.0.0.3:8082"]
    assert set_.all[0] is kept
    assert kept.failures == 1
    # DNS down: the last addresses stay.
    del names.table["registry"]
    await set_.refresh()
    assert [e.url for e in set_.all] == ["http://10.0.0.1:8082", "http://10.0.0.3:8082"]


async def test_start_keeps_resolving_names_in_the_background() -> None:
    names = Names({"registry": ["10.0.0.1"]})
    set_ = Replicas("registry", parse_targets("http://registry:1"), resolve_interval=0.01, resolver=names)
    await set_.start()
    try:
        names.table["registry"] = ["10.0.0.1", "10.0.0.2"]
        for _ in range(200):
            if len(set_.all) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(set_.all) == 2
    finally:
        await set_.close()
    # Addresses only: nothing to re-resolve, no task.
    fixed = replicas("http://127.0.0.1:1")
    await fixed.start()
    assert fixed._task is None


async def test_a_draining_endpoint_gets_nothing_new_but_is_no_failure() -> None:
    clock = Clock()
    set_ = replicas("http://127.0.0.1:1,http://127.0.0.1:2", clock=clock)
    await set_.refresh()
    going, staying = set_.all
    set_.sent(going)
    set_.answered(going, draining=True)
    assert going.failures == 0
    assert all(set_.pick() is staying for _ in range(20))
    # The only one left: still tried rather than no answer at all (it may be back, restarted).
    assert set_.pick(avoid=staying) is going
    clock.now += DRAINING_SET_ASIDE_S
    assert going in {set_.pick() for _ in range(50)}


async def test_an_abandoned_call_is_no_longer_outstanding_and_no_failure() -> None:
    set_ = replicas("http://127.0.0.1:1")
    await set_.refresh()
    (only,) = set_.all
    set_.sent(only)
    set_.abandoned(only)
    assert (only.outstanding, only.failures, set_.pick()) == (0, 0, only)
