"""The Wialon dialect on the in-process trio: logins, a token's life, batches and the registry's
contract for Wialon tokens, in milliseconds. Everything acts as the bootstrap Admin and deletes
what it creates (the trio is shared by the whole run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from shared.contracts.registry.wialon_tokens import CreateToken, DeleteTokens, ListTokens, TokenLogin
from shared.errors import BadCredentials, Refused
from tests.conftest import ADMIN_PASSWORD
from tests.inprocess.conftest import Trio

PATH = "/wialon/ajax.html"
ADMIN_ID = 1
CREATE: dict[str, Any] = {"callMode": "create", "app": "in-process", "at": 0, "dur": 0, "fl": -1, "p": "{}"}


async def call(trio: Trio, svc: str, params: Any = None, sid: str | None = None) -> Any:
    """One service call, form-encoded as browsers send it; the reply must be Wialon's: HTTP 200 and
    exactly application/json."""
    fields = {"svc": svc}
    if params is not None:
        fields["params"] = orjson.dumps(params).decode()
    if sid is not None:
        fields["sid"] = sid
    response = await trio.gateway.post(PATH, data=fields)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    return orjson.loads(await response.read())


@pytest.fixture
async def sid(trio: Trio) -> AsyncIterator[str]:
    """A password session of Admin's; whatever tokens the test leaves are deleted after it."""
    reply = await call(trio, "core/login", {"user": "Admin", "password": ADMIN_PASSWORD})
    session: str = reply["eid"]
    yield session
    await trio.registry.delete_wialon_tokens(DeleteTokens(actor_id=ADMIN_ID, all=True))
    await call(trio, "core/logout", {}, session)


async def test_core_login_answers_the_user_and_a_wrong_password_is_8(trio: Trio) -> None:
    reply = await call(trio, "core/login", {"user": "Admin", "password": ADMIN_PASSWORD})
    assert reply["au"] == "Admin"
    assert reply["user"]["nm"] == "Admin"
    assert reply["user"]["id"] == ADMIN_ID
    assert reply["classes"]["user"] == 1
    assert await call(trio, "core/logout", [], reply["eid"]) == {"error": 0}
    assert await call(trio, "core/logout", [], reply["eid"]) == {"error": 1}
    assert await call(trio, "core/login", {"user": "Admin", "password": "wrong"}) == {"error": 8}


async def test_the_envelope_refuses_unknown_services_and_bad_params(trio: Trio, sid: str) -> None:
    assert await call(trio, "core/nothing", {}, sid) == {"error": 2}
    response = await trio.gateway.post(PATH, data={"svc": "token/list", "params": "{", "sid": sid})
    assert orjson.loads(await response.read()) == {"error": 4, "reason": '"params" is not valid JSON'}
    assert await call(trio, "token/list", {}, "no-such-session") == {"error": 1}
    assert await call(trio, "token/update", {**CREATE, "fl": 3}, sid) == {
        "error": 4,
        "reason": '"fl" must be -1 or a combination of the access flags 0x100 to 0x4000',
    }


async def test_a_token_is_created_listed_updated_and_deleted(trio: Trio, sid: str) -> None:
    created = await call(trio, "token/update", {**CREATE, "items": [5, 6], "p": '{"k": [1]}'}, sid)
    assert set(created) == {"h", "app", "at", "ct", "dur", "fl", "items", "p"}
    assert (created["app"], created["fl"], created["items"], created["dur"]) == ("in-process", -1, [5, 6], 0)
    assert created["at"] == created["ct"]
    assert orjson.loads(created["p"]) == {"k": [1]}

    [listed] = await call(trio, "token/list", {}, sid)
    assert listed == {**created, "ll": 0}

    changed = {**CREATE, "callMode": "update", "h": created["h"], "app": "renamed", "dur": 60, "fl": 0x100}
    updated = await call(trio, "token/update", changed, sid)
    assert (updated["h"], updated["app"], updated["dur"], updated["fl"]) == (
        created["h"],
        "renamed",
        60,
        0x100,
    )
    assert updated["ct"] == created["ct"]
    assert updated["items"] == []

    deleted = await call(trio, "token/update", {"callMode": "delete", "h": created["h"]}, sid)
    assert deleted == updated
    assert await call(trio, "token/list", {}, sid) == []
    assert await call(trio, "token/update", {"callMode": "delete", "h": created["h"]}, sid) == {"error": 7}


async def test_token_login_opens_a_session_with_the_token_s_flags(trio: Trio, sid: str) -> None:
    created = await call(trio, "token/update", {**CREATE, "fl": 0x100, "p": '{"a": 1}'}, sid)
    reply = await call(trio, "token/login", {"token": created["h"]})
    assert reply["th"] == created["h"]
    assert reply["au"] == "Admin"
    assert orjson.loads(reply["token"]) == {
        "app": "in-process",
        "ct": created["ct"],
        "at": created["at"],
        "dur": 0,
        "fl": 0x100,
        "p": '{"a":1}',
        "items": [],
    }
    limited = reply["eid"]
    # A session of a token without every right manages no tokens, but it is a session.
    refused = {"error": 7, "reason": "the session's token may not manage tokens"}
    assert await call(trio, "token/list", {}, limited) == refused
    avl = await trio.gateway.get("/avl_evts", params={"sid": limited})
    assert orjson.loads(await avl.read())["events"] == []
    # The login is the token's last use.
    [listed] = await call(trio, "token/list", {}, sid)
    assert listed["ll"] > 0
    # Deleting the token ends its sessions.
    await call(trio, "token/update", {"callMode": "delete", "deleteAll": 1}, sid)
    assert await call(trio, "core/logout", {}, limited) == {"error": 1}


async def test_a_batch_answers_each_call_and_stops_at_a_failure_with_flags_1(trio: Trio, sid: str) -> None:
    calls = [
        {"svc": "token/list", "params": {}},
        {"svc": "core/nothing"},
        {"svc": "token/list", "params": "{}"},
    ]
    assert await call(trio, "core/batch", calls, sid) == [[], {"error": 2}, []]
    stopped = await call(trio, "core/batch", {"params": calls, "flags": 1}, sid)
    assert stopped == [[], {"error": 2}, {"error": 10}]


async def test_the_registry_contract_refuses_flags_wider_than_the_actor_s(trio: Trio) -> None:
    narrow = CreateToken(actor_id=ADMIN_ID, actor_flags=0x300, app="narrow", flags=0x400)
    with pytest.raises(Refused) as refused:
        await trio.registry.create_wialon_token(narrow)
    assert refused.value.reason == "flags"
    token = await trio.registry.create_wialon_token(narrow.model_copy(update={"flags": 0x200}))
    try:
        assert (token.flags, token.app, token.owner_id, token.creator_id) == (
            0x200,
            "narrow",
            ADMIN_ID,
            ADMIN_ID,
        )
        assert await trio.registry.list_wialon_tokens(ListTokens(actor_id=ADMIN_ID)) == [token]
        logged_in = await trio.registry.authenticate_wialon_token(TokenLogin(secret=token.secret))
        assert logged_in.user.username == "Admin"
        assert logged_in.token.id == token.id
        assert logged_in.token.last_used_at is not None
    finally:
        deleted = await trio.registry.delete_wialon_tokens(
            DeleteTokens(actor_id=ADMIN_ID, secret=token.secret)
        )
    assert [t.id for t in deleted] == [token.id]
    with pytest.raises(BadCredentials):
        await trio.registry.authenticate_wialon_token(TokenLogin(secret=token.secret))
