"""The issuer's pair store against a real Redis and a real Redis Cluster: each Lua script's outcomes,
with the clock moved by passing `now` rather than by waiting. (Concurrency and the HTTP surface:
tests/e2e/test_chatapp.py.)"""

from __future__ import annotations

import asyncio
import secrets
import time

import orjson
import pytest

from issuer.pair_store import CredentialCache, PairStore
from issuer.pair_tokens import token_family
from issuer.quota import next_utc_midnight
from issuer.redis_keys import QUOTA_GRACE_S, RedisKeys
from shared.contracts.issuer import Pair
from shared.redis import AnyRedis, Subscriber
from shared.settings import Settings
from tests.conftest import next_message, subscribe

PEPPER = "test-pepper-of-sixteen-bytes-or-more"
DAY = 86400


@pytest.fixture
def keys(redis_prefix: str) -> RedisKeys:
    # A prefix inside the run's, so the run's cleanup removes these keys too.
    return RedisKeys(f"{redis_prefix}store{secrets.token_hex(3)}:")


@pytest.fixture
def store(redis: AnyRedis, keys: RedisKeys) -> PairStore:
    return PairStore(redis, keys, PEPPER)


async def test_make_writes_only_hashes_and_ends_at_the_app_lifetimes(
    store: PairStore, redis: AnyRedis, keys: RedisKeys
) -> None:
    now = int(time.time())
    pair = await store.make(7, "app", 3600, 7200, now)
    assert (pair.user_id, pair.app_id, pair.access_expires_at, pair.refresh_expires_at) == (
        7,
        "app",
        now + 3600,
        now + 7200,
    )
    written = [key.decode() async for key in redis.scan_iter(match=keys.prefix + "*")]
    assert len(written) == 3  # the family, one access and one refresh token
    for key in written:
        assert pair.access_token not in key
        assert pair.refresh_token not in key
        assert pair.access_token[6:] not in key
        assert pair.refresh_token[38:] not in key
    family = token_family(pair.access_token, "access")
    assert family is not None
    assert await redis.expiretime(keys.pair_family(family)) == now + 7200


async def test_an_access_token_is_valid_until_its_end(store: PairStore) -> None:
    now = int(time.time())
    pair = await store.make(7, "app", 3600, 7200, now)
    verified = await store.check(pair.access_token, now + 3599)
    assert verified is not None
    assert (verified.user_id, verified.app_id, verified.expires_at) == (7, "app", now + 3600)
    assert await store.check(pair.access_token, now + 3600) is None
    assert await store.check(pair.refresh_token, now) is None  # a refresh token is not an access token


async def test_refresh_rotates_and_a_replay_revokes_the_family(
    store: PairStore, redis: AnyRedis, keys: RedisKeys, redis_settings: Settings
) -> None:
    now = int(time.time())
    first = await store.make(7, "app", 3600, 7200, now)
    second = await store.refresh(first.refresh_token, now + 100)
    assert isinstance(second, Pair)
    assert (second.access_expires_at, second.refresh_expires_at) == (now + 3700, now + 7300)
    assert token_family(second.access_token, "access") == token_family(first.access_token, "access")
    assert await store.check(first.access_token, now + 200) is not None  # still valid until its end

    family = token_family(first.refresh_token, "refresh")
    assert family is not None
    # The gateway's subscriber: in a cluster, on one node, which need not serve the family's slot.
    async with Subscriber(redis, redis_settings.redis_url, 3.0).pubsub() as pubsub:
        await subscribe(pubsub, keys.pair_revocations)
        assert await store.refresh(first.refresh_token, now + 200) == ("reused", 7, "app")
        message = await next_message(pubsub, 5)
    assert message is not None
    assert orjson.loads(message["data"]) == {"families": [family]}

    for token in (first.access_token, second.access_token):
        assert await store.check(token, now + 200) is None
    assert await store.refresh(second.refresh_token, now + 200) is None
    assert await store.refresh(first.refresh_token, now + 200) is None  # revoked once, not again


async def test_a_refresh_token_is_dead_at_its_end(store: PairStore) -> None:
    now = int(time.time())
    pair = await store.make(7, "app", 3600, 7200, now)
    assert await store.refresh(pair.refresh_token, now + 7200) is None
    assert isinstance(await store.refresh(pair.refresh_token, now + 7199), Pair)


async def test_the_family_lives_as_long_as_its_last_token(
    store: PairStore, redis: AnyRedis, keys: RedisKeys
) -> None:
    now = int(time.time())
    pair = await store.make(7, "app", 3600, 7200, now)
    later = await store.refresh(pair.refresh_token, now + 5000)
    assert isinstance(later, Pair)
    family = token_family(pair.access_token, "access")
    assert family is not None
    assert await redis.expiretime(keys.pair_family(family)) == now + 5000 + 7200


async def test_revoke_ends_every_token_of_the_family_and_no_other(store: PairStore) -> None:
    now = int(time.time())
    first = await store.make(7, "app", 3600, 7200, now)
    second = await store.refresh(first.refresh_token, now)
    other = await store.make(7, "app", 3600, 7200, now)
    assert isinstance(second, Pair)
    assert await store.revoke(first.access_token, now) == (7, "app")
    assert await store.check(first.access_token, now) is None
    assert await store.check(second.access_token, now) is None
    assert await store.refresh(second.refresh_token, now) is None
    assert await store.check(other.access_token, now) is not None
    assert await store.revoke(first.access_token, now) is None


@pytest.mark.parametrize("forged", ["", "th_at_", "th_at_" + "0" * 32 + "a" * 43, "garbage"])
async def test_unknown_tokens_are_refused(store: PairStore, forged: str) -> None:
    now = int(time.time())
    assert await store.check(forged, now) is None
    assert await store.revoke(forged, now) is None
    assert await store.refresh(forged.replace("th_at_", "th_rt_"), now) is None


async def test_quota_counts_exactly_and_refusals_take_nothing(
    store: PairStore, redis: AnyRedis, keys: RedisKeys
) -> None:
    now = int(time.time())
    results = await asyncio.gather(*(store.take_quota(7, "app", 10, now) for _ in range(30)))
    taken = [quota for ok, quota, _ in results if ok]
    refused = sorted(refusals for ok, _, refusals in results if not ok)
    assert len(taken) == 10
    assert sorted(quota.remaining for quota in taken) == list(range(10))
    assert refused == list(range(1, 21))  # each refusal counted once; the first is number 1
    assert {quota.reset_at for _, quota, _ in results} == {next_utc_midnight(now)}

    key = keys.pair_quota(store.account_hash(7, "app"), time.strftime("%Y%m%d", time.gmtime(now)))
    assert await redis.hgetall(key) == {b"used": b"10", b"refused": b"20"}
    assert await redis.expiretime(key) == next_utc_midnight(now) + QUOTA_GRACE_S

    # Another app of the same user, and the next UTC day, count from zero.
    assert (await store.take_quota(7, "other", 10, now))[0]
    tomorrow = next_utc_midnight(now)
    ok, quota, _ = await store.take_quota(7, "app", 10, tomorrow)
    assert ok
    assert quota.remaining == 9


async def test_a_zero_quota_refuses_every_make(store: PairStore) -> None:
    ok, quota, refusals = await store.take_quota(7, "closed", 0, int(time.time()))
    assert (ok, quota.limit, quota.remaining, refusals) == (False, 0, 0, 1)


async def test_credential_cache_keeps_successes_under_a_process_key(redis: AnyRedis, keys: RedisKeys) -> None:
    # A TTL far above how long a scan of a busy shared Redis may take, so the entry is still there.
    cache = CredentialCache(redis, keys, ttl=600)
    assert await cache.user_id("Someone@Example.com", "Right-pass-1") is None
    await cache.remember("Someone@Example.com", "Right-pass-1", 42)
    assert await cache.user_id("someone@example.com", "Right-pass-1") == 42  # e-mails are case-blind
    assert await cache.user_id("someone@example.com", "right-pass-1") is None  # passwords are not
    assert await cache.user_id("other@example.com", "Right-pass-1") is None

    written = [key.decode() async for key in redis.scan_iter(match=keys.prefix + "cred:*")]
    assert len(written) == 1
    assert "someone" not in written[0].lower()
    assert "pass" not in written[0].lower()
    assert 0 < await redis.ttl(written[0]) <= 600
    # Another process (or this one after a restart) has another key: the entry means nothing to it.
    assert await CredentialCache(redis, keys, ttl=600).user_id("someone@example.com", "Right-pass-1") is None


async def test_a_zero_ttl_turns_the_credential_cache_off(redis: AnyRedis, keys: RedisKeys) -> None:
    cache = CredentialCache(redis, keys, ttl=0)
    await cache.remember("someone@example.com", "Right-pass-1", 42)
    assert await cache.user_id("someone@example.com", "Right-pass-1") is None
    assert [key async for key in redis.scan_iter(match=keys.prefix + "cred:*")] == []
