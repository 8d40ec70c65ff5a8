"""The Wialon Remote API dialect end to end: real gateway, issuer, registry, Postgres and Redis,
called as a hand-made client would (form POSTs and GETs). The PyPI clients: test_wialon_clients.py.

Each test calls from a loopback address of its own (wialon_client), so failed logins of one test
never throttle another.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from registry.wialon_tokens import seal_context
from shared import revocations
from shared.internal import INTERNAL_KEY_HEADER
from shared.secrets import Sealer, lookup_hash
from shared.settings import DEV_INTERNAL_KEY, DEV_PEPPER, DEV_SEAL_KEY
from tests.conftest import run_cli
from tests.e2e.harness import Cluster
from tests.e2e.wialon_client import (
    SESSION_ID,
    TOKEN,
    TOKEN_FIELDS,
    Wialon,
    WialonUser,
    error_of,
    new_user,
    wialon_client,
)

pytestmark = pytest.mark.e2e

# Placeholders of the error table, filled in by the test: a password session, a session of a token
# with fl 0x100, and that token.
SID, LIMITED, H = "$SID", "$LIMITED", "$H"
UNKNOWN_H = "0123456789abcdef0123456789abcdefFEDCBA9876543210FEDCBA9876543210FEDCBA98"
CREATE: dict[str, Any] = {"callMode": "create", "app": "x", "at": 0, "dur": 0, "fl": -1, "p": "{}"}


@pytest.fixture
async def wialon(cluster: Cluster) -> AsyncIterator[Wialon]:
    async with wialon_client(cluster.gateway_url) as client:
        yield client


@pytest.fixture(scope="module")
def owner(environment: dict[str, str]) -> WialonUser:
    return new_user(environment, "owner")


@pytest.fixture(scope="module")
def family(environment: dict[str, str]) -> dict[str, WialonUser]:
    """parent ─ child ─ grandchild, and a stranger beside them."""
    parent = new_user(environment, "parent")
    child = new_user(environment, "child", parent=parent.name)
    grandchild = new_user(environment, "grandchild", parent=child.name)
    stranger = new_user(environment, "stranger")
    return {"parent": parent, "child": child, "grandchild": grandchild, "stranger": stranger}


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def session_key(prefix: str, sid: str) -> str:
    return f"{prefix}sess:wialon:{lookup_hash(sid, DEV_PEPPER).hex()}"


# --- logging in ------------------------------------------------------------------------------------


async def test_core_login_answers_the_login_object(wialon: Wialon, owner: WialonUser) -> None:
    before = int(time.time())
    body = await wialon.ok("core/login", {"user": owner.name, "password": owner.password})
    assert SESSION_ID.fullmatch(body["eid"])
    assert body["user"]["nm"] == owner.name
    assert body["user"]["id"] == owner.id
    assert body["user"]["cls"] == 1
    assert body["au"] == owner.name
    assert before <= body["tm"] <= int(time.time())
    assert body["host"] == wialon.address
    assert body["classes"]["user"] == 1
    assert "token" not in body
    assert "th" not in body


async def test_every_service_works_by_get_and_by_post(wialon: Wialon, owner: WialonUser) -> None:
    sid = await wialon.login(owner)
    by_get = await wialon.call("token/list", {}, sid, get=True)
    by_post = await wialon.call("token/list", {}, sid)
    assert by_get == by_post
    assert isinstance(by_get, list)


async def test_a_session_is_ended_by_core_logout(wialon: Wialon, owner: WialonUser) -> None:
    sid = await wialon.login(owner)
    assert await wialon.call("core/logout", {}, sid) == {"error": 0}
    assert await wialon.error("token/list", {}, sid) == 1
    assert await wialon.error("core/logout", {}, sid) == 1


async def test_avl_evts_keeps_a_session_alive_and_refuses_a_dead_one(
    cluster: Cluster, wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    async with wialon.http.get(cluster.gateway_url + "/avl_evts", params={"sid": sid}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        events = await r.json()
    assert events["events"] == []
    assert isinstance(events["tm"], int)
    assert await wialon.call("core/logout", {}, sid) == {"error": 0}
    async with wialon.http.post(cluster.gateway_url + "/avl_evts", data={"sid": sid}) as r:
        assert await r.json() == {"error": 1}


# --- the token lifecycle ----------------------------------------------------------------------------


async def test_token_lifecycle_create_login_list_update_delete(wialon: Wialon, owner: WialonUser) -> None:
    sid = await wialon.login(owner)
    created = await wialon.create(sid, app="lifecycle", p='{"a": 1}', items=[5, 7])
    assert set(created) == TOKEN_FIELDS
    assert TOKEN.fullmatch(created["h"])
    assert created["app"] == "lifecycle"
    assert created["at"] == created["ct"]  # at 0: active from creation
    assert abs(created["ct"] - time.time()) < 120
    assert (created["dur"], created["fl"], created["items"]) == (0, -1, [5, 7])
    assert isinstance(created["p"], str)
    assert orjson.loads(created["p"]) == {"a": 1}

    before = {t["h"]: t for t in await wialon.tokens(sid)}[created["h"]]
    assert before["ll"] == 0
    assert {k: v for k, v in before.items() if k != "ll"} == created

    login = await wialon.token_login(created["h"], appName="tests", fl=7)
    assert SESSION_ID.fullmatch(login["eid"])
    assert login["eid"] != sid
    assert login["th"] == created["h"]
    assert login["user"]["id"] == owner.id
    assert login["user"]["nm"] == owner.name
    assert isinstance(login["token"], str)
    assert orjson.loads(login["token"]) == {
        "app": "lifecycle",
        "ct": created["ct"],
        "at": created["at"],
        "dur": 0,
        "fl": -1,
        "p": created["p"],
        "items": [5, 7],
    }
    after = {t["h"]: t for t in await wialon.tokens(sid)}[created["h"]]
    assert after["ll"] >= created["ct"]
    assert after["ll"] > 0

    future = int(time.time()) + 3600
    updated = await wialon.ok(
        "token/update",
        {
            "callMode": "update",
            "h": created["h"],
            "app": "renamed",
            "at": future,
            "dur": 600,
            "fl": 0x100 | 0x200,
            "p": '[{"x": 1}, {"y": 2}]',
        },
        sid,
    )
    assert updated["h"] == created["h"]
    assert updated["ct"] == created["ct"]
    assert (updated["app"], updated["at"], updated["dur"], updated["fl"]) == ("renamed", future, 600, 0x300)
    assert updated["items"] == []  # absent: no restriction
    assert orjson.loads(updated["p"]) == [{"x": 1}, {"y": 2}]
    listed = {t["h"]: t for t in await wialon.tokens(sid)}[created["h"]]
    assert {k: v for k, v in listed.items() if k != "ll"} == updated
    assert listed["ll"] == after["ll"]  # changing a token is no login

    deleted = await wialon.ok("token/update", {"callMode": "delete", "h": created["h"]}, sid)
    assert deleted == updated
    assert created["h"] not in {t["h"] for t in await wialon.tokens(sid)}
    assert await wialon.error("token/login", {"token": created["h"]}) == 7
    assert await wialon.error("token/update", {"callMode": "delete", "h": created["h"]}, sid) == 7


async def test_a_token_session_acts_as_the_owner_with_the_token_s_rights(
    wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    unlimited = await wialon.create(sid, fl=0xFFFFFFFF)  # the older spelling of -1
    assert unlimited["fl"] == -1
    token_sid = (await wialon.token_login(unlimited["h"]))["eid"]
    # A token with every right manages its owner's tokens like a password session does.
    made = await wialon.create(token_sid, app="made-by-token", fl=0x2000)
    assert made["h"] in {t["h"] for t in await wialon.tokens(sid)}
    assert {t["h"] for t in await wialon.tokens(token_sid)} == {t["h"] for t in await wialon.tokens(sid)}


async def test_a_session_that_updates_its_own_token_gets_the_reply_then_ends(
    wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    token = await wialon.create(sid)
    own = (await wialon.token_login(token["h"]))["eid"]
    updated = await wialon.ok(
        "token/update", {**CREATE, "callMode": "update", "h": token["h"], "app": "self"}, own
    )
    assert (updated["h"], updated["app"]) == (token["h"], "self")
    assert await wialon.error("token/list", {}, own) == 1


async def test_a_guest_may_log_in_but_manages_no_tokens(wialon: Wialon, environment: dict[str, str]) -> None:
    name, password = f"guest-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    added = run_cli(
        ["users", "add", name, "--role", "guest", "--password-stdin"], environment, stdin=password
    )
    assert added.returncode == 0, added.stderr
    sid = await wialon.login(WialonUser(int(added.stdout), name, password))
    assert await wialon.error("token/list", {}, sid) == 7
    assert await wialon.error("token/update", CREATE, sid) == 7


async def test_a_token_without_unlimited_flags_cannot_manage_tokens(
    wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    tracking = await wialon.create(sid, fl=0x100)
    limited = (await wialon.token_login(tracking["h"]))["eid"]
    assert await wialon.error("token/list", {}, limited) == 7
    assert await wialon.error("token/update", {**CREATE, "fl": 0x100}, limited) == 7
    assert await wialon.error("token/update", {"callMode": "delete", "h": tracking["h"]}, limited) == 7
    assert await wialon.error("token/update", {"callMode": "delete", "deleteAll": 1}, limited) == 7
    # Nothing was changed, and the session itself is fine.
    assert tracking["h"] in {t["h"] for t in await wialon.tokens(sid)}
    assert await wialon.call("core/logout", {}, limited) == {"error": 0}


async def test_registry_refuses_flags_wider_than_the_actor_s_own(
    cluster: Cluster, http: aiohttp.ClientSession, owner: WialonUser
) -> None:
    """Only a session with every right reaches token/update, so this rule of the registry is
    exercised on its internal API: a token's flags never exceed its creator's."""
    url = cluster["registry"].url + "/v1/wialon-tokens"
    headers = {INTERNAL_KEY_HEADER: DEV_INTERNAL_KEY}
    base = {"actor_id": owner.id, "actor_flags": 0x100 | 0x200, "app": "narrow", "lifetime_s": 0}
    for wider in (-1, 0x400, 0x100 | 0x400):
        async with http.post(url, json={**base, "flags": wider}, headers=headers) as r:
            assert r.status == 403
            assert (await r.json())["error"]["code"] == "forbidden"
    async with http.post(url, json={**base, "flags": 0x200}, headers=headers) as r:
        assert r.status == 201
        assert (await r.json())["token"]["flags"] == 0x200


async def test_p_and_items_are_validated_and_p_comes_back_as_json_text(
    wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    # `p` given as the decoded value means the same as its JSON text.
    as_value = await wialon.create(sid, p={"k": "v", "n": [1, 2]})
    assert orjson.loads(as_value["p"]) == {"k": "v", "n": [1, 2]}
    empty_list = await wialon.create(sid, p="[]")
    assert empty_list["p"] == "[]"
    for bad in ('"text"', "1", "[1]", '[{"a": 1}, 2]', "{", "null", 5, ["x"]):
        assert await wialon.error("token/update", {**CREATE, "p": bad}, sid) == 4, bad
    for items in ("1,2", [1, "2"], [-1], [2**63], [True], {"a": 1}):
        assert await wialon.error("token/update", {**CREATE, "items": items}, sid) == 4, items
    # What Postgres cannot store is refused as input too, never a server error.
    assert await wialon.error("token/update", {**CREATE, "app": "nul\x00byte"}, sid) == 4
    assert await wialon.error("token/update", {**CREATE, "p": '{"nul": "\\u0000"}'}, sid) == 4
    assert await wialon.error("token/login", {"token": "$" * 72, "operateAs": "nul\x00"}) == 7


async def test_delete_all_removes_every_token_of_that_user_only(
    wialon: Wialon, environment: dict[str, str], owner: WialonUser
) -> None:
    user = new_user(environment, "deleteall")
    sid = await wialon.login(user)
    mine = [await wialon.create(sid, app=f"t{i}") for i in range(3)]
    token_sid = (await wialon.token_login(mine[0]["h"]))["eid"]
    owner_sid = await wialon.login(owner)
    theirs = await wialon.create(owner_sid)

    assert await wialon.ok("token/update", {"callMode": "delete", "deleteAll": "true"}, sid) == {}
    assert await wialon.tokens(sid) == []
    assert await wialon.error("token/list", {}, token_sid) == 1
    for token in mine:
        assert await wialon.error("token/login", {"token": token["h"]}) == 7
    assert (await wialon.token_login(theirs["h"]))["user"]["id"] == owner.id
    # Nothing left to delete is no error.
    assert await wialon.ok("token/update", {"callMode": "delete", "deleteAll": True}, sid) == {}


# --- sessions end with their token --------------------------------------------------------------


async def test_a_session_opened_with_a_token_dies_when_the_token_is_deleted(
    wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    doomed, kept = await wialon.create(sid, app="doomed"), await wialon.create(sid, app="kept")
    doomed_sessions = [(await wialon.token_login(doomed["h"]))["eid"] for _ in range(2)]
    kept_session = (await wialon.token_login(kept["h"]))["eid"]
    for session in doomed_sessions:
        assert isinstance(await wialon.tokens(session), list)

    await wialon.ok("token/update", {"callMode": "delete", "h": doomed["h"]}, sid)
    for session in doomed_sessions:
        assert await wialon.error("token/list", {}, session) == 1
    assert isinstance(await wialon.tokens(kept_session), list)
    assert isinstance(await wialon.tokens(sid), list)


async def test_updating_a_token_ends_its_sessions_and_the_next_login_gets_the_new_rights(
    wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    token = await wialon.create(sid)
    before = (await wialon.token_login(token["h"]))["eid"]
    assert isinstance(await wialon.tokens(before), list)
    await wialon.ok(
        "token/update",
        {"callMode": "update", "h": token["h"], "app": "narrowed", "at": 0, "dur": 0, "fl": 0x100, "p": "{}"},
        sid,
    )
    assert await wialon.error("token/list", {}, before) == 1
    after = await wialon.token_login(token["h"])
    assert orjson.loads(after["token"])["fl"] == 0x100
    assert await wialon.error("token/list", {}, after["eid"]) == 7


async def test_a_token_s_sessions_end_when_the_token_ends(wialon: Wialon, owner: WialonUser) -> None:
    sid = await wialon.login(owner)
    now = int(time.time())
    token = await wialon.create(sid, at=now - 60, dur=72)  # ends 12 s from now
    assert token["at"] + token["dur"] == now + 12
    session = (await wialon.token_login(token["h"]))["eid"]
    assert isinstance(await wialon.tokens(session), list)
    await asyncio.sleep(token["at"] + token["dur"] + 1 - time.time())  # past the end
    assert await wialon.error("token/list", {}, session) == 1
    body = await wialon.call("token/login", {"token": token["h"]})
    assert body["error"] == 7
    assert "expired" in body["reason"]


async def test_a_revocation_announced_elsewhere_ends_the_token_s_sessions_until_it_is_updated(
    wialon: Wialon, owner: WialonUser, database_url: str, redis_server: str, environment: dict[str, str]
) -> None:
    """The sweeper announces expired and idle-deleted tokens (shared/revocations); the issuer refuses
    their sessions. An update revives the token: the old announcement no longer holds."""
    sid = await wialon.login(owner)
    token = await wialon.create(sid)
    rows = await fetch(
        database_url, "SELECT id FROM tokens WHERE secret_hash = $1", lookup_hash(token["h"], DEV_PEPPER)
    )
    session = (await wialon.token_login(token["h"]))["eid"]
    redis = Redis.from_url(redis_server)
    try:
        await revocations.announce(redis, environment["TOKENHUB_REDIS_PREFIX"], [rows[0]["id"]])
        assert await wialon.error("token/list", {}, session) == 1
        await wialon.ok("token/update", {**CREATE, "callMode": "update", "h": token["h"]}, sid)
        revived = (await wialon.token_login(token["h"]))["eid"]
        assert isinstance(await wialon.tokens(revived), list)
    finally:
        await redis.aclose()


async def test_a_token_cannot_log_in_before_its_activation_time(wialon: Wialon, owner: WialonUser) -> None:
    sid = await wialon.login(owner)
    at = int(time.time()) + 3600
    token = await wialon.create(sid, at=at, dur=60)
    assert (token["at"], token["dur"]) == (at, 60)
    body = await wialon.call("token/login", {"token": token["h"]})
    assert body["error"] == 7
    assert "not active" in body["reason"]


async def test_a_disabled_user_can_neither_log_in_nor_manage_tokens(
    wialon: Wialon, environment: dict[str, str], database_url: str
) -> None:
    user = new_user(environment, "disabled")
    sid = await wialon.login(user)
    token = await wialon.create(sid)
    await fetch(database_url, "UPDATE users SET status = 'disabled' WHERE id = $1", user.id)
    assert await wialon.error("token/login", {"token": token["h"]}) == 7
    # The right password of a disabled account gets what a wrong one gets: nothing confirms it.
    assert await wialon.error("core/login", {"user": user.name, "password": user.password}) == 8
    # A session opened before: the registry refuses its changes.
    assert await wialon.error("token/list", {}, sid) == 7
    assert await wialon.error("token/update", {"callMode": "delete", "h": token["h"]}, sid) == 7


async def test_sessions_slide_their_idle_timeout_and_end_when_idle(
    wialon: Wialon, owner: WialonUser, redis_server: str, environment: dict[str, str]
) -> None:
    prefix = environment["TOKENHUB_REDIS_PREFIX"]
    sid = await wialon.login(owner)
    token = await wialon.create(sid)
    token_sid = (await wialon.token_login(token["h"]))["eid"]
    redis = Redis.from_url(redis_server)
    try:
        for session in (sid, token_sid):
            key = session_key(prefix, session)
            assert 290 <= await redis.ttl(key) <= 300  # Wialon's 5 minutes
            await redis.expire(key, 30)  # as if idle for 4.5 minutes
            assert isinstance(await wialon.tokens(session), list)
            assert await redis.ttl(key) > 290  # the use slid it back to 5 minutes
            await redis.expire(key, 1)
            await asyncio.sleep(1.5)  # idle past its end
            assert await wialon.error("token/list", {}, session) == 1
    finally:
        await redis.aclose()


# --- sub-users ---------------------------------------------------------------------------------


async def test_a_user_manages_the_tokens_of_users_below_it(
    wialon: Wialon, family: dict[str, WialonUser]
) -> None:
    parent_sid = await wialon.login(family["parent"])
    child_sid = await wialon.login(family["child"])
    for name, user_id in (("child", family["child"].id), ("grandchild", str(family["grandchild"].id))):
        made = await wialon.create(parent_sid, app=f"for-{name}", userId=user_id)
        assert made["h"] in {t["h"] for t in await wialon.tokens(parent_sid, userId=user_id)}
        assert made["h"] not in {t["h"] for t in await wialon.tokens(parent_sid)}
        assert (await wialon.token_login(made["h"]))["user"]["id"] == family[name].id
        spec = {
            "h": made["h"],
            "app": "changed",
            "at": 0,
            "dur": 0,
            "fl": 0x200,
            "p": "{}",
            "userId": user_id,
        }
        assert (await wialon.ok("token/update", {"callMode": "update", **spec}, parent_sid))["fl"] == 0x200
        # Without userId the parent's own tokens are meant: this one is not among them.
        assert (
            await wialon.error("token/update", {"callMode": "update", **spec, "userId": None}, parent_sid)
            == 7
        )
        await wialon.ok("token/update", {"callMode": "delete", "h": made["h"], "userId": user_id}, parent_sid)
        assert made["h"] not in {t["h"] for t in await wialon.tokens(parent_sid, userId=user_id)}
    # The child manages the grandchild, and nobody above itself.
    assert (await wialon.create(child_sid, userId=family["grandchild"].id))["h"]
    assert await wialon.error("token/list", {"userId": family["parent"].id}, child_sid) == 7


async def test_a_stranger_manages_nobody_else_s_tokens(wialon: Wialon, family: dict[str, WialonUser]) -> None:
    parent_sid = await wialon.login(family["parent"])
    stranger_sid = await wialon.login(family["stranger"])
    child_token = await wialon.create(parent_sid, userId=family["child"].id)
    create = {"callMode": "create", "app": "x", "at": 0, "dur": 0, "fl": -1, "p": "{}"}
    for user_id in (family["child"].id, family["parent"].id, 2**62):  # 2**62: nobody
        assert await wialon.error("token/list", {"userId": user_id}, stranger_sid) == 7
        assert await wialon.error("token/update", {**create, "userId": user_id}, stranger_sid) == 7
    delete = {"callMode": "delete", "h": child_token["h"]}
    assert await wialon.error("token/update", {**delete, "userId": family["child"].id}, stranger_sid) == 7
    assert await wialon.error("token/update", delete, stranger_sid) == 7
    delete_all = {"callMode": "delete", "deleteAll": 1, "userId": family["child"].id}
    assert await wialon.error("token/update", delete_all, stranger_sid) == 7
    # The child's token is untouched.
    assert child_token["h"] in {t["h"] for t in await wialon.tokens(parent_sid, userId=family["child"].id)}


async def test_operate_as_logs_in_as_a_user_below_the_token_s_owner(
    wialon: Wialon, family: dict[str, WialonUser]
) -> None:
    parent_sid = await wialon.login(family["parent"])
    token = await wialon.create(parent_sid)
    for name in ("child", "grandchild"):
        login = await wialon.token_login(token["h"], operateAs=family[name].name)
        assert login["user"]["id"] == family[name].id
        assert login["au"] == family[name].name
        # Its session is the sub-user's: it lists the sub-user's own tokens.
        assert token["h"] not in {t["h"] for t in await wialon.tokens(login["eid"])}
    assert (await wialon.token_login(token["h"], operateAs=family["parent"].name))["user"]["id"] == family[
        "parent"
    ].id
    assert (await wialon.token_login(token["h"], operateAs=""))["user"]["id"] == family["parent"].id
    for outsider in (family["stranger"].name, "nobody-at-all"):
        body = await wialon.call("token/login", {"token": token["h"], "operateAs": outsider})
        assert body["error"] == 7
    child_token = await wialon.create(parent_sid, userId=family["child"].id)
    assert (
        await wialon.error("token/login", {"token": child_token["h"], "operateAs": family["parent"].name})
        == 7
    )


# --- core/batch --------------------------------------------------------------------------------


async def test_core_batch_runs_each_call_and_reports_each_error(wialon: Wialon, owner: WialonUser) -> None:
    sid = await wialon.login(owner)
    token = await wialon.create(sid)
    calls = [
        {"svc": "token/list", "params": {}},
        {"svc": "no/such"},
        {"svc": "token/update", "params": '{"callMode": "delete", "h": "short"}'},
        {"svc": "token/login", "params": {"token": token["h"]}},
        "not a call",
        {"svc": "core/batch", "params": []},
    ]
    results = await wialon.ok("core/batch", calls, sid)
    assert len(results) == 6
    assert token["h"] in {t["h"] for t in results[0]}
    assert results[1] == {"error": 2}
    assert error_of(results[2]) == 4
    assert results[3]["th"] == token["h"]
    assert error_of(results[4]) == 4
    assert error_of(results[5]) == 4
    # The object form, with flags 1: everything after the first failure gets 10.
    stopped = await wialon.ok(
        "core/batch",
        {
            "params": [{"svc": "token/list", "params": {}}, {"svc": "no/such"}, {"svc": "token/list"}],
            "flags": 1,
        },
        sid,
    )
    assert isinstance(stopped[0], list)
    assert stopped[1:] == [{"error": 2}, {"error": 10}]
    # A logout in a batch ends the session for the calls after it.
    after_logout = await wialon.ok("core/batch", [{"svc": "core/logout"}, {"svc": "token/list"}], sid)
    assert after_logout == [{"error": 0}, {"error": 1}]


# --- error paths, each with its exact code --------------------------------------------------------


@pytest.mark.parametrize(
    ("svc", "params", "sid", "code"),
    [
        # the envelope
        (None, {}, SID, 2),
        ("no/such", {}, SID, 2),
        ("TOKEN/LIST", {}, SID, 2),
        ("token/list", "{not json", SID, 4),
        ("token/list", "[{}]", SID, 4),
        ("token/list", "5", SID, 4),
        # sessions
        ("token/list", {}, None, 1),
        ("token/list", {}, "0" * 32, 1),
        ("token/list", {}, "x" * 500, 1),
        ("token/update", CREATE, None, 1),
        ("core/logout", {}, "nonsense", 1),
        # core/login
        ("core/login", {"user": "$USER", "password": "wrong"}, None, 8),
        ("core/login", {"user": "nobody-by-this-name", "password": "x"}, None, 8),
        ("core/login", {"user": "$USER"}, None, 4),
        ("core/login", {"user": 5, "password": "x"}, None, 4),
        ("core/login", [], None, 4),
        # token/login
        ("token/login", {}, None, 4),
        ("token/login", {"token": "short"}, None, 4),
        ("token/login", {"token": UNKNOWN_H + "0"}, None, 4),
        ("token/login", {"token": 5}, None, 4),
        ("token/login", {"token": UNKNOWN_H}, None, 7),
        ("token/login", {"token": "z" * 72}, None, 7),
        ("token/login", {"token": H, "fl": "all"}, None, 4),
        ("token/login", {"token": H, "operateAs": 7}, None, 4),
        ("token/login", {"token": H, "operateAs": "x" * 101}, None, 4),
        # token/update
        ("token/update", {**CREATE, "callMode": "replace"}, SID, 4),
        ("token/update", {k: v for k, v in CREATE.items() if k != "callMode"}, SID, 4),
        ("token/update", {**CREATE, "app": ""}, SID, 4),
        ("token/update", {k: v for k, v in CREATE.items() if k != "app"}, SID, 4),
        ("token/update", {k: v for k, v in CREATE.items() if k != "at"}, SID, 4),
        ("token/update", {k: v for k, v in CREATE.items() if k != "dur"}, SID, 4),
        ("token/update", {k: v for k, v in CREATE.items() if k != "fl"}, SID, 4),
        ("token/update", {k: v for k, v in CREATE.items() if k != "p"}, SID, 4),
        ("token/update", {**CREATE, "at": -1}, SID, 4),
        ("token/update", {**CREATE, "at": "0"}, SID, 4),
        ("token/update", {**CREATE, "dur": 8_640_001}, SID, 4),
        ("token/update", {**CREATE, "dur": 1.5}, SID, 4),
        ("token/update", {**CREATE, "fl": 1}, SID, 4),
        ("token/update", {**CREATE, "fl": -2}, SID, 4),
        ("token/update", {**CREATE, "fl": True}, SID, 4),
        ("token/update", {**CREATE, "userId": "abc"}, SID, 4),
        ("token/update", {**CREATE, "userId": 0}, SID, 4),
        ("token/update", {**CREATE, "userId": 2**62}, SID, 7),
        ("token/update", {**CREATE, "callMode": "update", "h": "short"}, SID, 4),
        ("token/update", {**CREATE, "callMode": "update"}, SID, 4),
        ("token/update", {**CREATE, "callMode": "update", "h": UNKNOWN_H}, SID, 7),
        ("token/update", {"callMode": "delete"}, SID, 4),
        ("token/update", {"callMode": "delete", "h": UNKNOWN_H}, SID, 7),
        ("token/update", {"callMode": "delete", "deleteAll": "maybe"}, SID, 4),
        ("token/update", CREATE, LIMITED, 7),
        ("token/update", {"callMode": "delete", "h": H}, LIMITED, 7),
        # token/list
        ("token/list", {"userId": [1]}, SID, 4),
        ("token/list", {"userId": 2**62}, SID, 7),
        ("token/list", {}, LIMITED, 7),
        # core/batch
        ("core/batch", {"params": "no list"}, SID, 4),
        ("core/batch", {"params": [], "flags": 2}, SID, 4),
        ("core/batch", [{"svc": "token/list"}] * 101, SID, 4),
    ],
)
async def test_error_codes(
    wialon: Wialon, owner: WialonUser, svc: str | None, params: Any, sid: str | None, code: int
) -> None:
    password_sid = await wialon.login(owner)
    token = await wialon.create(password_sid, fl=0x100)
    limited_sid = (await wialon.token_login(token["h"]))["eid"]
    text = orjson.dumps(params).decode() if not isinstance(params, str) else params
    text = text.replace('"$USER"', orjson.dumps(owner.name).decode()).replace('"$H"', f'"{token["h"]}"')
    fields = {"params": text}
    if svc is not None:
        fields["svc"] = svc
    if sid is not None:
        fields["sid"] = {SID: password_sid, LIMITED: limited_sid}.get(sid, sid)
    body = await wialon.send("POST", data=fields)
    assert error_of(body) == code, body


async def test_other_http_methods_repeated_fields_and_bodies_that_are_no_form(
    cluster: Cluster, wialon: Wialon, owner: WialonUser
) -> None:
    sid = await wialon.login(owner)
    list_call = {"svc": "token/list", "params": "{}", "sid": sid}
    assert error_of(await wialon.send("PUT", data=list_call)) == 4
    assert error_of(await wialon.send("DELETE", query=list_call)) == 4
    assert error_of(await wialon.send("GET", query=[("svc", "token/list"), ("svc", "core/logout")])) == 4
    # The body wins over the query string.
    assert isinstance(await wialon.send("POST", query={"svc": "no/such", "sid": "x"}, data=list_call), list)
    # A body that is not a form is not read: here the query string alone counts.
    as_json = {"Content-Type": "application/json"}
    assert error_of(await wialon.send("POST", data=orjson.dumps(list_call), headers=as_json)) == 2
    odd_form = {"Content-Type": "application/x-www-form-urlencoded; charset=no-such"}
    raw_form = b"svc=token%2Flist&params=%ff%fe&sid=" + sid.encode()
    assert error_of(await wialon.send("POST", data=raw_form, headers=odd_form)) == 4
    huge = io.BytesIO(b"svc=token%2Flist&sid=" + sid.encode() + b"&params=" + b"x" * (1 << 20))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert error_of(await wialon.send("POST", data=huge, headers=form)) == 4


# --- throttling ---------------------------------------------------------------------------------


async def test_failed_password_logins_are_throttled_per_account(
    cluster: Cluster, environment: dict[str, str]
) -> None:
    user = new_user(environment, "guessed")
    wrong = {"user": user.name, "password": "wrong"}
    async with wialon_client(cluster.gateway_url) as guesser:
        for _ in range(5):  # TOKENHUB_LOGIN_FAILURES_MAX
            assert await guesser.error("core/login", wrong) == 8
        refused = await guesser.call("core/login", {"user": user.name, "password": user.password})
        assert refused["error"] == 1003
        assert "try again" in refused["reason"]
    async with wialon_client(cluster.gateway_url) as elsewhere:  # the account, not the address
        assert await elsewhere.error("core/login", {"user": user.name, "password": user.password}) == 1003


async def test_unknown_tokens_are_throttled_per_address(cluster: Cluster, owner: WialonUser) -> None:
    async with wialon_client(cluster.gateway_url) as guesser:
        sid = await guesser.login(owner)
        token = await guesser.create(sid)
        expired = await guesser.create(sid, at=1, dur=1)
        for _ in range(10):  # a known token that cannot log in is no guess
            assert await guesser.error("token/login", {"token": expired["h"]}) == 7
        for _ in range(30):  # TOKENHUB_ADDRESS_FAILURES_MAX
            assert await guesser.error("token/login", {"token": UNKNOWN_H}) == 7
        assert await guesser.error("token/login", {"token": token["h"]}) == 1003
        assert await guesser.error("core/login", {"user": owner.name, "password": owner.password}) == 1003
    async with wialon_client(cluster.gateway_url) as neighbour:
        assert (await neighbour.token_login(token["h"]))["th"] == token["h"]


# --- what is stored -------------------------------------------------------------------------------


async def test_tokens_are_stored_as_a_hash_and_a_sealed_copy_and_audited(
    wialon: Wialon, owner: WialonUser, database_url: str
) -> None:
    sid = await wialon.login(owner)
    token = await wialon.create(sid, app="stored", p={"secret-looking": "value"})
    rows = await fetch(
        database_url, "SELECT * FROM tokens WHERE secret_hash = $1", lookup_hash(token["h"], DEV_PEPPER)
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["owner_id"], row["creator_id"], row["name"]) == (
        "wialon",
        owner.id,
        owner.id,
        "stored",
    )
    assert (
        Sealer.from_b64(DEV_SEAL_KEY).unseal(row["sealed_secret"], seal_context(row["secret_hash"]))
        == token["h"]
    )
    assert token["h"].encode() not in row["sealed_secret"]
    assert all(token["h"] not in str(value) for value in row.values() if not isinstance(value, bytes))
    await wialon.ok("token/update", {**CREATE, "callMode": "update", "h": token["h"], "dur": 5}, sid)
    await wialon.ok("token/update", {"callMode": "delete", "h": token["h"]}, sid)
    events = await fetch(
        database_url,
        "SELECT event, actor_id, subject_id, kind, client_addr, details FROM audit_log"
        " WHERE token_id = $1 ORDER BY id",
        row["id"],
    )
    assert [e["event"] for e in events] == ["created", "updated", "deleted"]
    assert all((e["actor_id"], e["subject_id"], e["kind"]) == (owner.id, owner.id, "wialon") for e in events)
    assert all(e["client_addr"] == wialon.address for e in events)
    assert all(token["h"] not in e["details"] for e in events)


# --- a backend that is down -------------------------------------------------------------------------


async def test_a_backend_that_is_down_gives_error_6(
    private_cluster: Cluster, environment: dict[str, str]
) -> None:
    user = new_user(environment, "outage")
    async with wialon_client(private_cluster.gateway_url) as w:
        sid = await w.login(user)
        token = await w.create(sid)
        private_cluster["registry"].stop(signal.SIGKILL)
        for svc, params, session in (
            ("token/list", {}, sid),
            ("token/login", {"token": token["h"]}, None),
            ("core/login", {"user": user.name, "password": user.password}, None),
        ):
            body = await w.call(svc, params, session)
            assert body["error"] == 6, (svc, body)
            assert "unavailable" in body["reason"]
        private_cluster["issuer"].stop(signal.SIGKILL)
        assert await w.error("token/list", {}, sid) == 6
        assert await w.error("core/logout", {}, sid) == 6
        assert await w.error("no/such", {}, sid) == 2  # decided without any backend


@pytest.mark.parametrize(
    ("job", "backdate"),
    [
        ("expire", "UPDATE tokens SET expires_at = now() - interval '1 minute' WHERE id = $1"),
        (
            "delete_idle",
            "UPDATE tokens SET created_at = now() - interval '101 days',"
            " last_used_at = now() - interval '101 days' WHERE id = $1",
        ),
    ],
)
async def test_a_session_dies_when_the_sweeper_expires_or_deletes_its_token(
    wialon: Wialon, owner: WialonUser, database_url: str, cluster: Cluster, job: str, backdate: str
) -> None:
    """The real sweeper (`python -m sweeper --once`) ends the token; the session opened with it
    must die with it, though the session itself still had minutes to live."""
    sid = await wialon.login(owner)
    token = await wialon.create(sid)
    rows = await fetch(
        database_url, "SELECT id FROM tokens WHERE secret_hash = $1", lookup_hash(token["h"], DEV_PEPPER)
    )
    session = (await wialon.token_login(token["h"]))["eid"]
    assert isinstance(await wialon.tokens(session), list)  # alive before the sweep
    await fetch(database_url, backdate, rows[0]["id"])

    sweep = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sweeper", "--once", env=cluster["sweeper"].env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await sweep.communicate()
    assert sweep.returncode == 0
    assert orjson.loads(out.decode().strip().splitlines()[-1])[job] >= 1

    assert await wialon.error("token/list", {}, session) == 1
    assert (await wialon.call("token/login", {"token": token["h"]}))["error"] == 7
