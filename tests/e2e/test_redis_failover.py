"""A Redis Cluster master killed (kill -9) under load: its replica is promoted by the cluster itself,
and the issuer serves again without a restart, having lost nothing it acknowledged.

On a private cluster of this test's own (the shared one must stay whole), with the services run as
in production (TOKENHUB_REDIS_CLUSTER=true, REDIS_URL naming one node): a steady load of tokens.make,
tokens.refresh and tokens/check through the gateway, and 1,000 concurrent makes for one account whose
daily quota (100) is counted on the master that is killed once a quarter of it is spent. Then:
- every operation succeeds again within 15 s of the kill, the issuer's process never replaced;
- at most 100 of the 1,000 makes succeeded, and the day's counter never goes back;
- no refresh token was accepted twice: not during the run, and not when every one of them is
  presented again once the cluster is whole (a promoted replica that had missed a refresh would
  take its token as live);
- what a client saw meanwhile is only the dialect's "try again" (503 ApiServiceUnavailableError).
The numbers are printed (`pytest -s`) for the record: how long until each operation was served
again, how many makes succeeded, which errors clients met and for how long.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from redis.crc import key_slot

from gateway.verification_cache import VerificationCache, follow_revocations, token_tag
from issuer.quota import utc_day
from issuer.redis_keys import RedisKeys
from shared import revocations
from shared.redis import UNAVAILABLE as REDIS_DOWN
from shared.redis import Subscriber, prepare, redis_client
from shared.secrets import lookup_hash
from shared.settings import DEV_PEPPER, Settings
from tests.conftest import redis_for
from tests.e2e.harness import Cluster, running_cluster
from tests.e2e.test_chatapp import (
    UNAVAILABLE,
    Account,
    Reply,
    add_account,
    add_app,
    check,
    cluster_env,
    failed,
    is_pair,
    load_session,
    make,
    refresh,
)
from tests.redis_cluster import RedisCluster, missing_binaries, running_redis_cluster

pytestmark = pytest.mark.e2e

QUOTA = 100
BURST = 1000
SERVED_AGAIN_WITHIN_S = 15.0


@pytest.fixture
def doomed_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A Redis Cluster of this test's own: one of its masters is killed."""
    missing = missing_binaries()
    if missing is not None:
        pytest.skip(f"no Redis Cluster can be started: {missing}")
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis_cluster(directory) as cluster:
        yield cluster


@pytest.fixture
def services(doomed_cluster: RedisCluster, environment: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    env = cluster_env(
        environment,
        REDIS_URL=doomed_cluster.url,
        TOKENHUB_REDIS_CLUSTER="true",
        TOKENHUB_LOG_LEVEL="INFO",
    )
    with running_cluster(env, tmp_path) as running:
        yield running


Timed = tuple[float, Reply]  # a reply, and when (monotonic) it came
OPERATIONS = ("make", "check", "refresh")


@dataclass
class Record:
    """Every reply the steady load got, by operation, and the refresh tokens accepted (how often)."""

    replies: dict[str, list[Timed]] = field(default_factory=lambda: collections.defaultdict(list))
    accepted: collections.Counter[str] = field(default_factory=collections.Counter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    failure_seconds: list[float] = field(default_factory=list)  # how long each failure took

    async def add(self, op: str, call: Awaitable[Reply]) -> Reply:
        started = time.monotonic()
        reply = await call
        self.replies[op].append((time.monotonic(), reply))
        if reply.status >= 500:
            self.failure_seconds.append(time.monotonic() - started)
        self.changed.set()
        return reply

    def failures(self) -> list[tuple[str, Timed]]:
        return [(op, (at, r)) for op, timed in self.replies.items() for at, r in timed if r.status >= 500]

    def recovered(self, since: float, quiet: float) -> bool:
        """Every operation answered (not 5xx) after its last failure since `since`, and no failure
        for `quiet` seconds."""
        now = time.monotonic()
        for op in OPERATIONS:
            timed = [(at, r) for at, r in self.replies[op] if at >= since]
            last = max((at for at, r in timed if r.status >= 500), default=since)
            if now - last < quiet or not any(at > last and r.status < 500 for at, r in timed):
                return False
        return True

    async def wait_recovered(self, since: float, quiet: float, limit: float) -> None:
        while not self.recovered(since, quiet) and time.monotonic() < limit:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.2)


def served_again(timed: list[Timed], since: float) -> float | None:
    """When, after `since`, the first answer (not 5xx) came that no failure followed."""
    after = [(at, r) for at, r in timed if at >= since]
    last = max((at for at, r in after if r.status >= 500), default=since)
    return next((at for at, r in after if at > last and r.status < 500), None)


async def steady_client(
    session: aiohttp.ClientSession, base: str, who: Account, app: str, record: Record, stop: asyncio.Event
) -> None:
    """One client of the steady load, round after round: a make, a check and a refresh of the pair
    it holds. The pair is renewed by each refresh; a refresh refused (reuse detection, after one
    that may have gone through when it was answered "try again") makes it take a new pair, as a
    real client does; after a 503 it pauses a little."""
    pair: dict[str, object] | None = None
    while not stop.is_set():
        made = await record.add("make", make(session, base, who, app))
        told_to_wait = made.status == 503
        if pair is None and made.status == 200:
            pair = made.data
        if pair is not None:
            await record.add("check", check(session, base, str(pair["accessToken"])))
            presented = str(pair["refreshToken"])
            renewed = await record.add("refresh", refresh(session, base, presented))
            if renewed.status == 200:
                record.accepted[presented] += 1
                pair = renewed.data
            elif renewed.status == 401:
                pair = None
            told_to_wait |= renewed.status == 503
        if told_to_wait:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.01)


def quota_key(services: Cluster, who: Account, app: str) -> str:
    """The key of this account's daily quota counter today (issuer/pair_store.py names it so)."""
    env = services["issuer"].env
    account_hash = lookup_hash(f"{who.user_id}\x00{app}", DEV_PEPPER).hex()[:32]
    return RedisKeys(env["TOKENHUB_REDIS_PREFIX"]).pair_quota(account_hash, utc_day(int(time.time())))


async def test_a_killed_master_is_replaced_and_nothing_acknowledged_is_lost(
    doomed_cluster: RedisCluster, services: Cluster, environment: dict[str, str]
) -> None:
    assert "TOKENHUB_PEPPER" not in services["issuer"].env  # quota_key() assumes the default
    base = services.gateway_url
    issuer = services["issuer"]
    assert issuer.proc is not None
    issuer_pid = issuer.proc.pid
    load_who, load_app = add_account(environment), add_app(environment, "--daily-quota", "100000")
    quota_who, quota_app = add_account(environment), add_app(environment, "--daily-quota", str(QUOTA))
    counter = quota_key(services, quota_who, quota_app)
    victim = doomed_cluster.master_of_slot(key_slot(counter.encode()))
    replica = doomed_cluster.replica_of(victim)
    assert victim.proc is not None

    record = Record()
    stop = asyncio.Event()
    quarter_spent = asyncio.Event()
    burst: list[Timed] = []
    pending = iter(range(BURST))

    async def burst_client(session: aiohttp.ClientSession) -> None:
        """One of 16 clients sharing the 1,000 makes; like a real client it pauses after a 503, so
        that the burst outlasts the failover instead of spending itself on it."""
        for _ in pending:
            started = time.monotonic()
            reply = await make(session, base, quota_who, quota_app)
            burst.append((time.monotonic(), reply))
            if reply.status >= 500:
                record.failure_seconds.append(time.monotonic() - started)
            if sum(r.status == 200 for _, r in burst) >= QUOTA // 4:
                quarter_spent.set()
            if reply.status == 503:
                await asyncio.sleep(0.2)

    async def kill_when_a_quarter_is_spent() -> float:
        await quarter_spent.wait()
        assert victim.proc is not None
        killed_at = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGKILL)  # only the redis-server this test started
        return killed_at

    async with load_session(limit=64) as session:
        steady = [
            asyncio.create_task(steady_client(session, base, load_who, load_app, record, stop))
            for _ in range(6)
        ]
        await asyncio.sleep(1.0)  # the load runs before the kill
        killer = asyncio.create_task(kill_when_a_quarter_is_spent())
        await asyncio.gather(*(burst_client(session) for _ in range(16)))
        killed_at = await killer
        # The steady load goes on until every operation has been served again, and 2 s more.
        await record.wait_recovered(killed_at, quiet=2.0, limit=killed_at + SERVED_AGAIN_WITHIN_S + 5)
        stop.set()
        await asyncio.gather(*steady)

        # --- the failover happened, by the cluster alone ------------------------------------------
        victim.proc.wait(timeout=10)
        assert replica.role() == "master", "the killed master's replica was not promoted"
        assert issuer.proc.pid == issuer_pid, "the issuer was replaced"
        assert issuer.proc.poll() is None, "the issuer stopped"

        # --- served again within 15 s -------------------------------------------------------------
        timelines = {**record.replies, "make (quota)": burst}
        back = {op: served_again(timed, killed_at) for op, timed in timelines.items()}
        after_kill = {op: None if at is None else round(at - killed_at, 2) for op, at in back.items()}
        for op, seconds in after_kill.items():
            assert seconds is not None, f"{op} was never served again"
            assert seconds <= SERVED_AGAIN_WITHIN_S, f"{op} served again only {seconds} s after the kill"
        failures = record.failures() + [("make (quota)", timed) for timed in burst if timed[1].status >= 500]
        # Whatever failed was told the dialect's "try again", nothing else.
        assert all((r.status, r.body) == (503, failed(UNAVAILABLE)) for _, (_, r) in failures)

        # --- the daily quota was never exceeded ---------------------------------------------------
        made = [r for _, r in burst if r.status == 200]
        assert all(is_pair(r.data, quota_who) for r in made)
        assert len(made) <= QUOTA
        assert {r.status for _, r in burst} <= {200, 429, 503}
        topped_up = 0
        while (reply := await make(session, base, quota_who, quota_app)).status == 200:
            topped_up += 1
            assert len(made) + topped_up <= QUOTA
        assert reply.status == 429

        # --- no refresh token accepted twice, even now that every one is presented again ---------
        assert record.accepted, "no refresh went through"
        assert max(record.accepted.values()) == 1
        replays = await asyncio.gather(*(refresh(session, base, token) for token in record.accepted))
        assert [r.status for r in replays if r.status != 401] == []

    client = redis_for({**services["issuer"].env, "REDIS_URL": doomed_cluster.url})  # a live node
    try:
        used = await client.hget(counter, "used")
    finally:
        await client.aclose()
    assert used == str(QUOTA).encode()  # at its limit, on the promoted replica

    moments = sorted(at - killed_at for _, (at, _) in failures)
    took = record.failure_seconds or [0.0]
    windows = {
        op: f"{len(ats)} from {min(ats):+.2f} s to {max(ats):+.2f} s"
        for op in {op for op, _ in failures}
        if (ats := [at - killed_at for o, (at, _) in failures if o == op])
    }
    print("\nfailures by operation, relative to the kill:", windows)
    per_second = collections.Counter(int(at - killed_at) for _, (at, _) in failures)
    print("failures per second after the kill:", dict(sorted(per_second.items())))
    print(
        "\nRedis failover:",
        f"killed master 127.0.0.1:{victim.port} (it held the quota counter);",
        f"its replica 127.0.0.1:{replica.port} promoted;",
        f"served again (s after the kill, no failure since): {after_kill};",
        f"clients met {len(failures)} errors, every one 503 ApiServiceUnavailableError",
        f"({dict(collections.Counter(op for op, _ in failures))}),",
        f"from {moments[0]:+.2f} s to {moments[-1]:+.2f} s after the kill," if moments else "none,",
        f"each answered in {statistics.median(took):.2f} s at the median, {max(took):.2f} s at most;",
        f"quota account: {len(made)} of {BURST} makes succeeded, {len(made) + topped_up} with the top-up,",
        f"{sum(r.status == 429 for _, r in burst)} refused (429),",
        f"{sum(r.status == 503 for _, r in burst)} told to try again (503);",
        f"{len(record.accepted)} refresh tokens accepted once each, every one refused when replayed.",
    )


async def test_the_revocation_subscriber_moves_to_another_node_when_its_node_dies(
    doomed_cluster: RedisCluster,
) -> None:
    """A gateway's revocation channel (gateway/verification_cache.py) on a cluster: subscribed on one
    node, it hears what is published on any; when that node is killed the cache goes off, and comes
    back on, subscribed on another node, hearing revocations again, without a restart."""
    settings = Settings.model_validate({"REDIS_URL": doomed_cluster.url, "TOKENHUB_REDIS_CLUSTER": True})
    client = redis_client(settings, health_check_interval=1)
    await prepare(client)
    prefix = f"failover{secrets.token_hex(3)}:"
    cache = VerificationCache(1.0, client=client, prefix=prefix)
    subscriber = Subscriber(client, settings.redis_url, settings.store_timeout)
    following = asyncio.create_task(follow_revocations(subscriber, revocations.channel(prefix), cache))

    async def heard_revocation(token_id: int) -> bool:
        """Whether a revocation published now (on whichever node the client picks) empties the
        cache entry it names within a second."""
        cache.put(b"key", (token_tag(token_id),), "verified", 60)
        await revocations.publish(client, prefix, [token_id])
        return await within(1.0, lambda: cache.get(b"key") is None)

    try:
        assert await within(10.0, lambda: cache.live)
        first = subscriber.node
        assert first is not None
        assert await heard_revocation(7)

        doomed_cluster.node(int(first.rsplit(":", 1)[1])).kill()  # SIGKILL, by PID
        killed_at = time.monotonic()
        assert await within(5.0, lambda: not cache.live), "the cache still served with its node dead"
        assert await within(15.0, lambda: cache.live), "the channel was never subscribed again"
        assert subscriber.node != first
        again = time.monotonic() - killed_at
        print(f"\nrevocation channel: on {subscriber.node} {again:.2f} s after {first} was killed")
        # Published while the cluster may still be promoting a replica: retried until it lands.
        await wait_for_async(lambda: heard_revocation(8), 15.0)
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await client.aclose()


async def within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Whether `condition` holds at some moment within `seconds` (checked every 10 ms)."""
    for _ in range(int(seconds * 100)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def wait_for_async(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*REDIS_DOWN):
            if await condition():
                return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)
