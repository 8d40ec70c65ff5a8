"""The gateway's verification cache: lifetimes, revocation by tag, the subscription rule, size bound."""

from __future__ import annotations

import time

from gateway.verification_cache import VerificationCache, cache_key, family_tag, token_tag, user_tag


def live_cache(ttl: float = 1.0, max_entries: int = 100) -> VerificationCache:
    cache = VerificationCache(ttl, max_entries)
    cache.live = True
    return cache


def test_serves_what_it_was_given_until_the_ttl() -> None:
    cache = live_cache(ttl=0.05)
    cache.put(cache_key("test", "a"), (family_tag("f"),), {"user_id": 1}, seconds_left=60)
    assert cache.get(cache_key("test", "a")) == {"user_id": 1}
    time.sleep(0.06)
    assert cache.get(cache_key("test", "a")) is None


def test_never_beyond_the_tokens_own_end() -> None:
    cache = live_cache(ttl=60)
    cache.put(cache_key("test", "ending"), (family_tag("f"),), "v", seconds_left=0)
    cache.put(cache_key("test", "ended"), (family_tag("f"),), "v", seconds_left=-5)
    assert cache.get(cache_key("test", "ending")) is None
    assert cache.get(cache_key("test", "ended")) is None


def test_serves_and_stores_nothing_while_not_subscribed() -> None:
    cache = VerificationCache(1.0)
    cache.put(cache_key("test", "a"), (family_tag("f"),), "v", seconds_left=60)
    cache.live = True
    assert cache.get(cache_key("test", "a")) is None  # not stored while down
    cache.put(cache_key("test", "a"), (family_tag("f"),), "v", seconds_left=60)
    cache.live = False
    assert cache.get(cache_key("test", "a")) is None  # not served while down


def test_a_revocation_drops_every_entry_of_its_tag_only() -> None:
    cache = live_cache()
    cache.put(cache_key("test", "a1"), (family_tag("f1"),), "a1", 60)
    cache.put(cache_key("test", "a2"), (family_tag("f1"),), "a2", 60)
    cache.put(cache_key("test", "b"), (family_tag("f2"),), "b", 60)
    cache.put(cache_key("test", "t"), (token_tag(7),), "t", 60)
    cache.drop(family_tag("f1"))
    cache.drop(token_tag(7))
    assert [cache.get(cache_key("test", k)) for k in ("a1", "a2", "b", "t")] == [None, None, "b", None]


def test_an_entry_filed_under_several_tags_goes_with_any_of_them() -> None:
    """A ChatApp verification is filed under its family and its owner: revoking either drops it,
    and dropping it by one tag leaves nothing behind under the other."""
    cache = live_cache()
    cache.put(cache_key("test", "a"), (family_tag("f1"), user_tag(1)), "a", 60)
    cache.put(cache_key("test", "b"), (family_tag("f2"), user_tag(1)), "b", 60)
    cache.put(cache_key("test", "c"), (family_tag("f3"), user_tag(2)), "c", 60)
    cache.drop(user_tag(1))
    assert [cache.get(cache_key("test", k)) for k in "abc"] == [None, None, "c"]
    cache.drop(family_tag("f3"))
    assert cache.get(cache_key("test", "c")) is None
    assert cache._by_tag == {}  # no tag keeps the key of an entry that is gone


def test_size_is_bounded_oldest_first() -> None:
    cache = live_cache(max_entries=3)
    for name in "abcd":
        cache.put(cache_key("test", name), (family_tag(name),), name, 60)
    assert [cache.get(cache_key("test", k)) for k in "abcd"] == [None, "b", "c", "d"]
    cache.drop(family_tag("a"))  # the evicted entry's tag is gone too, harmlessly
    cache.clear()
    assert cache.get(cache_key("test", "d")) is None


def test_keys_are_digests_not_tokens() -> None:
    key = cache_key("test", "th_at_secret")
    assert len(key) == 32
    assert b"secret" not in key


def test_each_dialect_has_a_realm_of_its_own() -> None:
    assert cache_key("zabbix", "same-secret") != cache_key("hotspot", "same-secret")
