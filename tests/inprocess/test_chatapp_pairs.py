"""ChatApp's pairs on the in-process trio: make, check, refresh (and reuse), revoke, forward-auth.
The same behaviour as tests/e2e/test_chatapp.py, in milliseconds; concurrency, restarts and
outages stay there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from tests.inprocess.chatapp_world import (
    INVALID_TOKEN,
    Account,
    add_account,
    add_app,
    call,
    check,
    make,
    refresh,
)
from tests.inprocess.conftest import Trio

PAIR_FIELDS = {"cabinetUserId", "accessToken", "accessTokenEndTime", "refreshToken", "refreshTokenEndTime"}


def assert_pair(data: Mapping[str, object], who: Account) -> None:
    assert set(data) == PAIR_FIELDS
    assert data["cabinetUserId"] == who.user_id
    assert isinstance(data["accessToken"], str)
    assert data["accessToken"].startswith("th_at_")
    assert isinstance(data["refreshToken"], str)
    assert data["refreshToken"].startswith("th_rt_")


async def eventually_refused(trio: Trio, token: str) -> None:
    """A revocation reaches the gateway's verification cache within a second (by pub/sub)."""
    deadline = time.monotonic() + 1.0
    while (reply := await check(trio, token)).status == 200:
        assert time.monotonic() < deadline, "a revoked token is still honoured after 1 s"
        await asyncio.sleep(0.01)
    assert (reply.status, reply.body) == (401, INVALID_TOKEN)


async def test_make_then_check_at_the_apps_lifetimes_with_the_quota_in_headers(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio, daily_quota=10, access_ttl=600, refresh_ttl=900)
    before = int(time.time())
    made = await make(trio, who, app)
    after = int(time.time())
    assert_pair(made.data, who)
    ends = made.data["accessTokenEndTime"]
    assert isinstance(ends, int)
    assert before + 600 <= ends <= after + 600
    refresh_ends = made.data["refreshTokenEndTime"]
    assert isinstance(refresh_ends, int)
    assert before + 900 <= refresh_ends <= after + 900
    assert (made.headers["X-RateLimit-Limit"], made.headers["X-RateLimit-Remaining"]) == ("10", "9")

    checked = await check(trio, made.text("accessToken"))
    assert checked.data == {"cabinetUserId": who.user_id, "appId": app, "accessTokenEndTime": ends}
    bearer = await check(trio, "Bearer " + made.text("accessToken"))
    assert bearer.data == checked.data


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio)
    first = await make(trio, who, app)
    second = await refresh(trio, first.text("refreshToken"))
    assert_pair(second.data, who)
    assert second.text("accessToken") != first.text("accessToken")
    by_body = await call(
        trio, "POST", "/v1/tokens/refresh", json={"refreshToken": second.text("refreshToken")}
    )
    assert_pair(by_body.data, who)

    replay = await refresh(trio, first.text("refreshToken"))
    assert (replay.status, replay.body) == (401, INVALID_TOKEN)
    for token in (first.text("accessToken"), second.text("accessToken"), by_body.text("accessToken")):
        await eventually_refused(trio, token)
    dead = await refresh(trio, by_body.text("refreshToken"))
    assert (dead.status, dead.body) == (401, INVALID_TOKEN)


async def test_delete_revokes_the_callers_family_only(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio)
    mine, other = await make(trio, who, app), await make(trio, who, app)
    access = {"Authorization": mine.text("accessToken")}
    assert (await check(trio, mine.text("accessToken"))).status == 200  # now in the gateway's cache

    revoked = await call(trio, "DELETE", "/v1/tokens", headers=access)
    assert (revoked.status, revoked.body) == (200, {"success": True, "data": {}})
    await eventually_refused(trio, mine.text("accessToken"))
    assert (await check(trio, other.text("accessToken"))).data["cabinetUserId"] == who.user_id
    again = await call(trio, "DELETE", "/v1/tokens", headers=access)
    assert (again.status, again.body) == (401, INVALID_TOKEN)
    assert again.headers["WWW-Authenticate"] == "Bearer"


async def test_forward_auth_names_the_user_and_app_or_refuses(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio)
    pair = await make(trio, who, app)
    for authorization in (pair.text("accessToken"), "Bearer " + pair.text("accessToken")):
        reply = await call(trio, "GET", "/v1/auth", headers={"Authorization": authorization})
        assert (reply.status, reply.body) == (204, None)
        assert reply.headers["X-TokenHub-User-Id"] == str(who.user_id)
        assert reply.headers["X-TokenHub-App-Id"] == app
    for authorization in ("", "Bearer nonsense", pair.text("refreshToken"), "th_at_" + "0" * 32 + "a" * 43):
        refused = await call(trio, "GET", "/v1/auth", headers={"Authorization": authorization})
        assert (refused.status, refused.body) == (401, INVALID_TOKEN)
        assert "X-TokenHub-User-Id" not in refused.headers
