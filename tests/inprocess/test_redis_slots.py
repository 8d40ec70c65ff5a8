"""Redis Cluster's one rule for what runs atomically: every key it touches hashes to one slot.

The issuer's atomic work is all Lua scripts (there are no MULTI transactions), so this records the
keys of every script call while the real issuer serves every endpoint of its contract, and asserts
that each script ran, and each call's keys share one slot (CRC16 of the hash tag, as Redis Cluster
computes it: redis-py's `key_slot`). The source is also searched for what a cluster refuses: KEYS,
SELECT, MULTI, multi-key commands, and Lua that names a key other than through KEYS[...].
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from redis.crc import key_slot
from redis.typing import EncodableT

from gateway import redis_keys as gateway_keys
from issuer.redis_keys import RedisKeys
from issuer.scripts import SCRIPTS, Script, ScriptReply
from shared import revocations
from shared.contracts.issuer import (
    Attempt,
    MakePair,
    OpenSession,
    OpenTokenSession,
    RefreshPair,
    SettledAttempt,
    TokenSessionsRef,
)
from shared.errors import TokenHubError
from tests.conftest import ADMIN_PASSWORD, ROOT
from tests.inprocess.chatapp_world import add_account, add_app
from tests.inprocess.conftest import Trio

Call = tuple[str, tuple[str, ...]]


@pytest.fixture
def script_calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every script call from now on, as (script, keys), whoever makes it (the in-process issuer)."""
    calls: list[Call] = []
    run = Script.__call__

    async def recording(self: Script, keys: Sequence[str], args: Sequence[EncodableT]) -> ScriptReply:
        calls.append((self.name, tuple(keys)))
        return await run(self, keys, args)

    monkeypatch.setattr(Script, "__call__", recording)
    return calls


def slots(keys: Sequence[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


async def test_every_script_the_issuer_runs_keeps_its_keys_in_one_slot(
    trio: Trio, script_calls: list[Call]
) -> None:
    issuer = trio.issuer
    # Sessions opened with a password (Zabbix): open, resolve (slides the idle timeout), end; a wrong
    # password, which the throttle counts.
    login = OpenSession(
        realm="zabbix", idle=900, password=ADMIN_PASSWORD, username="Admin", client_addr="192.0.2.70"
    )
    opened = await issuer.open_session(login)
    await issuer.resolve_session("zabbix", opened.session_id)
    assert await issuer.end_session("zabbix", opened.session_id)
    with pytest.raises(TokenHubError):
        await issuer.open_session(login.model_copy(update={"password": "wrong"}))
    # Sessions opened with a long-lived token (Wialon): indexed under the token, ended with it.
    token_id = secrets.randbelow(10**9) + 10**9
    by_token = await issuer.open_token_session(
        OpenTokenSession(
            realm="wialon", idle=300, user_id=1, token_id=token_id, flags=1, ends_at=int(time.time()) + 60
        )
    )
    await issuer.resolve_session("wialon", by_token.session_id)
    assert await issuer.end_token_sessions(
        TokenSessionsRef(realm="wialon", token_ids=[token_id], revoked=True)
    )
    # A throttle of the issuer's callers' own (the hotspot dialect's voucher guesses).
    subjects = {"device": "aa:bb:cc:dd:ee:ff", "address": "192.0.2.71"}
    attempt = await issuer.take_attempt(Attempt(realm="hotspot", subjects=subjects))
    await issuer.finish_attempt(
        SettledAttempt(realm="hotspot", subjects=subjects, attempt=attempt, outcome="failed")
    )
    # ChatApp pairs: make (and its quota), check, refresh, a replayed refresh (reuse), revoke.
    who, app_id = await add_account(trio), await add_app(trio)
    made = await issuer.make_pair(MakePair(email=who.email, password=who.password, app_id=app_id))
    await issuer.check_pair(made.access_token)
    await issuer.refresh_pair(RefreshPair(refresh_token=made.refresh_token))
    with pytest.raises(TokenHubError):
        await issuer.refresh_pair(RefreshPair(refresh_token=made.refresh_token))
    other = await issuer.make_pair(MakePair(email=who.email, password=who.password, app_id=app_id))
    await issuer.revoke_pair(other.access_token)

    assert {name for name, _ in script_calls} == set(SCRIPTS), "a script the issuer never ran here"
    for name, keys in script_calls:
        assert keys, f"{name} was called without keys"
        assert len(slots(keys)) == 1, f"{name} touches keys of several slots: {keys}"


def test_keys_that_one_script_touches_share_a_hash_tag_whatever_the_prefix() -> None:
    """The tags themselves: a family's keys, a realm's throttle keys, whatever the deployment's
    prefix (which may not contain braces: shared/settings.py refuses them)."""
    for prefix in ("th:", "test:1a2b:", "deployment-7:"):
        keys = RedisKeys(prefix)
        family = secrets.token_hex(16)
        pair = [keys.pair_family(family), keys.access_token(family, "a"), keys.refresh_token(family, "r")]
        assert len(slots(pair)) == 1
        for realm in ("zabbix", "wialon", "chatapp", "hotspot"):
            throttle = [
                key
                for kind in ("account", "address", "device")
                for key in (keys.failures(realm, kind, kind * 8), keys.attempt_leases(realm, kind, kind * 8))
            ]
            assert len(slots(throttle)) == 1
        # The gateway's verification counters: a flush and a summary's read touch them together.
        stats = [
            gateway_keys.verifications(prefix, hour, outcome)
            for hour in range(490_000, 490_026)
            for outcome in gateway_keys.OUTCOMES
        ]
        assert len(slots(stats)) == 1
    # Different families, sessions and accounts spread over the cluster rather than piling on a slot.
    keys = RedisKeys("th:")
    assert len(slots([keys.pair_family(secrets.token_hex(16)) for _ in range(50)])) > 40
    assert len(slots([keys.session("zabbix", secrets.token_hex(32)) for _ in range(50)])) > 40
    assert len(slots([revocations.account_key("th:", user_id) for user_id in range(50)])) > 40


# --- what a cluster refuses, searched for in the source -------------------------------------------

SERVICES = ("shared", "gateway", "issuer", "registry", "sweeper", "tokenhub")
# Commands a cluster refuses or that work on several keys (so, in a cluster, only within one slot).
FORBIDDEN_CALLS = re.compile(
    r"\.(keys|select|swapdb|move|mget|mset|msetnx|flushdb|flushall|rename|renamenx|smove|sinterstore|"
    r"sunionstore|sdiffstore|zunionstore|zinterstore|zdiffstore|rpoplpush|lmove|blmove|brpoplpush|"
    r"copy|bitop|pfmerge|sintercard|lmpop|zmpop)\(\s*(?!\))"
)
LUA_CALL = re.compile(r"redis\.(?:p?call)\(\s*'([A-Za-z]+)'\s*(?:,\s*([^,)]+))?")
# Lua commands whose first argument is not a key.
LUA_KEYLESS = {"TIME", "PUBLISH"}


def service_sources() -> list[Path]:
    """Every module of the services that talks to Redis."""
    return sorted(
        p for service in SERVICES for p in (ROOT / service).rglob("*.py") if "redis" in p.read_text()
    )


def test_no_service_uses_a_command_a_cluster_refuses() -> None:
    found = []
    for path in service_sources():
        text = path.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if "transaction=True" in code or re.search(r"\bmulti\(\)", code):
                found.append(f"{path.relative_to(ROOT)}:{number}: a MULTI transaction: make it a script")
            if FORBIDDEN_CALLS.search(code) and "dict" not in code and ".keys()" not in code:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            if re.search(r"""["'](KEYS|SELECT|MGET|FLUSHDB|FLUSHALL)["']""", code):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            # A DEL or EXISTS of several keys at once.
            if re.search(r"\.(delete|unlink|exists|touch)\([^()]*,", code):
                found.append(f"{path.relative_to(ROOT)}:{number}: several keys at once: {line.strip()}")
    assert found == []


def test_every_lua_script_names_its_keys_through_KEYS() -> None:
    """A key a script builds itself is invisible to the cluster's slot routing (and refused)."""
    lua = sorted((ROOT / "issuer" / "lua").glob("*.lua"))
    assert {p.stem for p in lua} == set(SCRIPTS)
    for path in lua:
        code = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
        # Locals that hold keys: `local failures, leases = KEYS[2 * i - 1], KEYS[2 * i]`.
        key_names = {
            name.strip()
            for names, values in re.findall(r"local\s+([\w\s,]+?)\s*=\s*([^\n]+)", code)
            if all(v.strip().startswith("KEYS[") for v in values.split(","))
            for name in names.split(",")
        }
        calls = LUA_CALL.findall(code)
        assert calls, path.name
        for command, first in calls:
            assert command.upper() not in {"KEYS", "SELECT", "SCAN", "FLUSHDB", "FLUSHALL"}, path.name
            if command.upper() not in LUA_KEYLESS:
                assert first.strip().startswith("KEYS[") or first.strip() in key_names, (path.name, first)
