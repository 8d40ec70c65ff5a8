"""Verifications per hour (gateway/verification_stats.py): counted in the gateway's memory, flushed to
real Redis with INCRBY, read back by the admin summary. Flushed by calling `flush()` (what the timer
and the app's cleanup call), never by waiting for the timer."""

from __future__ import annotations

import secrets
import time

from redis.asyncio import Redis

from gateway.keys import verification_counter_key
from gateway.redis_keys import ACCEPTED, REFUSED, verifications
from gateway.verification_stats import VerificationCounter
from tests.conftest import ADMIN_PASSWORD
from tests.inprocess import admin_world, chatapp_world
from tests.inprocess.conftest import Trio


async def counted(trio: Trio, admin: str) -> dict[int, tuple[int, int]]:
    """(accepted, refused) per hour of the summary's series, once the gateway has flushed: the
    trio's gateway is the whole run's in-process one, and other tests' checks count too."""
    await trio.gateway.app[verification_counter_key].flush()
    status, summary = await admin_world.call(trio, "GET", "/summary", admin)
    assert status == 200, summary
    series = summary["verifications"]
    assert len(series) == 24
    assert [b["hour"] for b in series] == [b["hour"] for b in summary["hourly"]]
    return {b["hour"]: (b["accepted"], b["refused"]) for b in series}


async def test_checks_through_the_gateway_show_in_the_summary_after_a_flush(trio: Trio) -> None:
    who, app = await chatapp_world.add_account(trio), await chatapp_world.add_app(trio)
    token = (await chatapp_world.make(trio, who, app)).text("accessToken")
    admin = await admin_world.sign_in(trio, "Admin", ADMIN_PASSWORD)
    before = await counted(trio, admin)
    for _ in range(3):  # the first asks the issuer, the next may come from the verification cache
        assert (await chatapp_world.check(trio, token)).status == 200
    for bad in ("at-not-a-token", "Bearer nonsense"):
        assert (await chatapp_world.check(trio, bad)).status != 200
    after = await counted(trio, admin)
    # Per hour, as the test may straddle an hour's end (the window's oldest hour then drops out).
    added = [(a - before.get(h, (0, 0))[0], r - before.get(h, (0, 0))[1]) for h, (a, r) in after.items()]
    assert (sum(a for a, _ in added), sum(r for _, r in added)) == (3, 2)


async def test_every_dialect_counts_its_refusals(trio: Trio) -> None:
    """A credential refused by each dialect's check: a Zabbix API token, a Wialon sid and token, a
    hotspot API key; plus a Zabbix session accepted."""
    gateway = trio.gateway
    zabbix = {"jsonrpc": "2.0", "method": "token.get", "params": {}, "id": 1}
    await gateway.post("/api_jsonrpc.php", json={**zabbix, "auth": "a" * 64})
    login = {"jsonrpc": "2.0", "method": "user.login", "id": 1}
    login["params"] = {"username": "Admin", "password": ADMIN_PASSWORD}
    session = (await (await gateway.post("/api_jsonrpc.php", json=login)).json())["result"]
    assert (await gateway.post("/api_jsonrpc.php", json={**zabbix, "auth": session})).status == 200
    await gateway.post("/wialon/ajax.html", data={"svc": "core/logout", "params": "{}", "sid": "f" * 32})
    await gateway.post(
        "/wialon/ajax.html", data={"svc": "token/login", "params": '{"token": "%s"}' % ("b" * 72)}
    )
    await gateway.post("/hotspot/api", json={"api_token": "thk_" + "c" * 64, "method": "gettokens"})
    counter = gateway.app[verification_counter_key]
    hour = int(time.time()) // 3600
    counts = dict(counter._counts)
    assert sum(n for (h, outcome), n in counts.items() if outcome == REFUSED and h >= hour - 1) == 4
    assert sum(n for (h, outcome), n in counts.items() if outcome == ACCEPTED and h >= hour - 1) == 1


async def test_two_gateways_flushing_into_one_redis_add_up(redis_server: str, redis_prefix: str) -> None:
    # A prefix of the test's own: every gateway of the run counts into the run's.
    redis_prefix = f"{redis_prefix}stats{secrets.token_hex(3)}:"
    one, two = Redis.from_url(redis_server), Redis.from_url(redis_server)
    try:
        first, second = VerificationCounter(one, redis_prefix), VerificationCounter(two, redis_prefix)
        for _ in range(5):
            first.count(True)
        for _ in range(7):
            second.count(True)
        second.count(False)
        await first.flush()
        await second.flush()
        first.count(True)
        await first.flush()
        await first.flush()  # nothing new: adds nothing
        hour = int(time.time()) // 3600
        read = await first.hourly(hour - 1, 2)
        assert sum(read.get(h, {}).get(ACCEPTED, 0) for h in (hour - 1, hour)) == 13
        assert sum(read.get(h, {}).get(REFUSED, 0) for h in (hour - 1, hour)) == 1
        ttl = await one.ttl(verifications(redis_prefix, hour, ACCEPTED))
        assert 25 * 3600 < ttl <= 26 * 3600
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_redis_that_does_not_answer_loses_that_flush_and_raises_nothing(redis_prefix: str) -> None:
    # Nothing listens on port 1 (connection refused), and a non-routable address (nothing answers).
    for url in ("redis://127.0.0.1:1/0", "redis://10.255.255.1:6379/0"):
        dead = Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2)
        try:
            counter = VerificationCounter(dead, redis_prefix)
            for _ in range(1000):
                counter.count(True)
            started = time.monotonic()
            await counter.flush()
            await counter.flush()
            assert time.monotonic() - started < 3
            assert counter._counts == {}  # lost, not kept to grow without bound
        finally:
            await dead.aclose()
