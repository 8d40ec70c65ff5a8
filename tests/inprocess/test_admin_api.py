"""The admin API's behaviour on the in-process trio: users, credentials ending, tokens in one keyset
listing, vouchers, audit, summary, bad input. Small worlds, made per test."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio

from shared.redis import sweeper_last_pass_key
from tests.inprocess.admin_world import (
    PASSWORD,
    call,
    make_user,
    make_world,
    sign_in,
    zabbix,
    zabbix_api_token,
)
from tests.inprocess.conftest import Trio


async def test_a_created_user_signs_in_and_a_generated_password_is_shown_once(trio: Trio) -> None:
    world = await make_world(trio)
    status, made = await call(
        trio, "POST", "/users", world.admin.token, json={"username": f"new-{world.tag}"}
    )
    assert status == 201
    assert made["user"]["parent_id"] == world.admin.id
    assert made["password"]
    await sign_in(trio, f"new-{world.tag}", made["password"])
    status, listed = await call(trio, "GET", f"/users/{made['user']['id']}", world.admin.token)
    assert status == 200
    assert "password" not in listed
    status, reset = await call(trio, "POST", f"/users/{made['user']['id']}/password", world.admin.token)
    assert status == 200
    assert reset["password"] != made["password"]
    status, refused = await call(
        trio, "POST", "/sessions", json={"username": f"new-{world.tag}", "password": made["password"]}
    )
    assert status == 401
    assert refused["error"]["code"] == "bad_credentials"


async def test_disabling_a_user_refuses_every_credential_and_enabling_lets_it_sign_in(trio: Trio) -> None:
    world = await make_world(trio)
    _, secret = await zabbix_api_token(trio, world.user.username, f"api-{world.tag}")
    assert "result" in await zabbix(trio, "token.get", {"output": ["name"]}, secret)
    status, body = await call(trio, "POST", f"/users/{world.user.id}/disable", world.admin.token)
    assert status == 200
    assert body["status"] == "disabled"
    assert (await zabbix(trio, "token.get", {"output": ["name"]}, secret))["error"][
        "data"
    ] == "Not authorized."
    assert (await call(trio, "GET", "/summary", world.user.token))[0] == 401
    status, _ = await call(
        trio, "POST", "/sessions", json={"username": world.user.username, "password": PASSWORD}
    )
    assert status == 401
    assert (await call(trio, "POST", f"/users/{world.user.id}/enable", world.admin.token))[0] == 200
    await sign_in(trio, world.user.username)
    # Who did it, to whom, from where.
    _, events = await call(
        trio, "GET", "/audit", world.admin.token, user_id=str(world.user.id), event="user_disabled"
    )
    (disabled,) = events["items"]
    assert (disabled["actor_id"], disabled["subject_id"]) == (world.admin.id, world.user.id)
    assert disabled["client_addr"] == "127.0.0.1"
    assert disabled["details"] == {"was": "active", "via": "admin"}


async def test_revoking_a_user_ends_its_sessions_and_disables_its_api_tokens(trio: Trio) -> None:
    world = await make_world(trio)
    _, secret = await zabbix_api_token(trio, world.user.username, f"api-{world.tag}")
    status, body = await call(trio, "POST", f"/users/{world.user.id}/revoke", world.admin.token)
    assert status == 200
    assert body["zabbix_tokens"] == 1
    assert (await call(trio, "GET", "/summary", world.user.token))[0] == 401
    assert "error" in await zabbix(trio, "token.get", {"output": ["name"]}, secret)


async def test_sign_in_is_throttled_like_every_password_login(trio: Trio) -> None:
    world = await make_world(trio)
    name = f"th-{world.tag}"
    await make_user(trio, world.admin.token, name, "user")
    for _ in range(5):
        status, _ = await call(trio, "POST", "/sessions", json={"username": name, "password": "wrong"})
        assert status == 401
    response = await trio.gateway.post("/admin/v1/sessions", json={"username": name, "password": PASSWORD})
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["error"]["code"] == "throttled"
    # A throttle's refusal names a login, not an account: a super_admin's to see.
    _, blocked = await call(trio, "GET", "/audit", world.root, event="login_blocked", limit="200")
    assert any(e["kind"] == "admin" and e["details"].get("login") == name for e in blocked["items"])


async def test_sign_out_ends_the_session(trio: Trio) -> None:
    world = await make_world(trio)
    assert (await call(trio, "DELETE", "/sessions/current", world.user.token))[0] == 204
    assert (await call(trio, "GET", "/summary", world.user.token))[0] == 401


async def test_bulk_revoke_then_the_zabbix_api_refuses_the_token(trio: Trio) -> None:
    world = await make_world(trio)
    token_id, secret = await zabbix_api_token(trio, world.user.username, f"find-me-{world.tag}")
    status, page = await call(trio, "GET", "/tokens", world.admin.token, q=f"find-me-{world.tag}")
    assert status == 200
    assert [t["id"] for t in page["items"]] == [token_id]
    assert page["items"][0]["status"] == "active"
    assert page["items"][0]["owner"] == world.user.username
    status, done = await call(
        trio, "POST", "/tokens/revoke", world.admin.token, json={"ids": [token_id, 2**62]}
    )
    assert status == 200
    assert done == {"done": [token_id], "not_found": [2**62]}
    assert (await zabbix(trio, "token.get", {"output": ["name"]}, secret))["error"][
        "data"
    ] == "Not authorized."
    _, page = await call(
        trio, "GET", "/tokens", world.admin.token, q=f"find-me-{world.tag}", status="disabled"
    )
    assert [t["id"] for t in page["items"]] == [token_id]
    status, done = await call(trio, "POST", "/tokens/delete", world.admin.token, json={"ids": [token_id]})
    assert done["done"] == [token_id]
    _, page = await call(trio, "GET", "/tokens", world.admin.token, q=f"find-me-{world.tag}")
    assert page["items"] == []


async def test_keyset_paging_is_stable_across_inserts(trio: Trio) -> None:
    world = await make_world(trio)
    status, made = await call(trio, "POST", "/vouchers", world.user.token, json={"count": 7})
    assert status == 201
    assert len(made) == 7
    seen: list[int] = []
    status, page = await call(trio, "GET", "/tokens", world.user.token, limit="3")
    seen += [t["id"] for t in page["items"]]
    # New tokens arrive between pages: they are newer than the cursor, so no page repeats or skips one.
    await call(trio, "POST", "/vouchers", world.user.token, json={"count": 2})
    while page["next_cursor"] is not None:
        status, page = await call(
            trio, "GET", "/tokens", world.user.token, limit="3", cursor=page["next_cursor"]
        )
        assert status == 200
        seen += [t["id"] for t in page["items"]]
    assert len(seen) == 7 == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    codes = {
        t["name"] for t in (await call(trio, "GET", "/tokens", world.user.token, kind="voucher"))[1]["items"]
    }
    assert {v["token"] for v in made} <= codes


async def test_vouchers_batch_filter_annul_delete(trio: Trio) -> None:
    world = await make_world(trio)
    status, made = await call(
        trio, "POST", "/vouchers", world.user.token, json={"count": 3, "lifetime": 3600, "u_id": "desk"}
    )
    codes = [v["token"] for v in made]
    assert status == 201
    assert all(len(c) == 10 for c in codes)
    assert (await call(trio, "POST", "/vouchers", world.user.token, json={"count": 101}))[0] == 422
    status, annulled = await call(
        trio, "POST", "/vouchers/annul", world.user.token, json={"codes": codes[:1]}
    )
    assert annulled == {"done": codes[:1], "not_found": []}
    _, repaid = await call(trio, "GET", "/vouchers", world.user.token, repaid="true", u_id="desk")
    assert [v["token"] for v in repaid] == codes[:1]
    _, live = await call(trio, "GET", "/vouchers", world.user.token, repaid="false", validity="true")
    assert {v["token"] for v in live} == set(codes[1:])
    status, deleted = await call(
        trio, "POST", "/vouchers/delete", world.user.token, json={"codes": codes[1:2]}
    )
    assert deleted["done"] == codes[1:2]
    # Another operator's vouchers are not found (the hotspot dialect's scope).
    _, theirs = await call(trio, "POST", "/vouchers/delete", world.stranger.token, json={"codes": codes[2:]})
    assert theirs == {"done": [], "not_found": codes[2:]}
    _, left = await call(trio, "GET", "/vouchers", world.user.token)
    assert {v["token"] for v in left} == {codes[0], codes[2]}


async def test_vouchers_are_listed_newest_first_and_pages_neither_skip_nor_repeat(trio: Trio) -> None:
    world = await make_world(trio)
    _, older = await call(trio, "POST", "/vouchers", world.user.token, json={"count": 3})
    _, newer = await call(trio, "POST", "/vouchers", world.user.token, json={"count": 2, "u_id": "desk"})
    # The batch just made is the first page.
    _, first = await call(trio, "GET", "/vouchers", world.user.token, limit="2")
    assert {v["token"] for v in first} == {v["token"] for v in newer}
    _, second = await call(trio, "GET", "/vouchers", world.user.token, limit="2", offset="2")
    _, third = await call(trio, "GET", "/vouchers", world.user.token, limit="2", offset="4")
    paged = [v["token"] for v in first + second + third]
    assert len(paged) == len(set(paged)) == 5
    assert set(paged[2:]) == {v["token"] for v in older}
    _, everything = await call(trio, "GET", "/vouchers", world.user.token)
    assert [v["token"] for v in everything] == paged
    # The super_admin's listing (every operator's) and a u_id lookup are newest first too.
    _, all_of_them = await call(trio, "GET", "/vouchers", world.root, limit="2")
    assert {v["token"] for v in all_of_them} == {v["token"] for v in newer}
    _, by_ref = await call(trio, "GET", "/vouchers", world.user.token, u_id="desk")
    assert {v["token"] for v in by_ref} == {v["token"] for v in newer}


async def test_audit_filters_newest_first_with_failed_logins(trio: Trio) -> None:
    world = await make_world(trio)
    for _ in range(2):
        status, _ = await call(
            trio, "POST", "/sessions", json={"username": world.user.username, "password": "wrong"}
        )
        assert status == 401
    status, page = await call(
        trio, "GET", "/audit", world.admin.token, user_id=str(world.user.id), event="login_failed"
    )
    assert status == 200
    assert len(page["items"]) == 2
    assert all(e["subject_id"] == world.user.id and e["kind"] == "admin" for e in page["items"])
    _, first = await call(trio, "GET", "/audit", world.admin.token, user_id=str(world.user.id), limit="1")
    _, second = await call(
        trio,
        "GET",
        "/audit",
        world.admin.token,
        user_id=str(world.user.id),
        limit="1",
        cursor=first["next_cursor"],
    )
    assert (first["items"][0]["at"], first["items"][0]["id"]) > (
        second["items"][0]["at"],
        second["items"][0]["id"],
    )
    # Another admin's user's events are out of reach.
    _, other = await call(trio, "GET", "/audit", world.other_admin.token, user_id=str(world.user.id))
    assert other["items"] == []


async def test_audit_rows_name_the_accounts_the_caller_reaches(trio: Trio) -> None:
    world = await make_world(trio)
    names = {world.admin.id: world.admin.username, world.user.id: world.user.username}
    _, page = await call(trio, "GET", "/audit", world.admin.token, user_id=str(world.user.id))
    assert page["items"]
    for row in page["items"]:
        assert row["subject_name"] == names.get(row["subject_id"]), row
        assert row["actor_name"] == names.get(row["actor_id"]), row
    # The admin's own creation, by the super admin above it: the admin does not reach that account,
    # so its row has the id alone; the super admin sees both names.
    _, own = await call(trio, "GET", "/audit", world.admin.token, user_id=str(world.admin.id))
    created = [r for r in own["items"] if r["event"] == "user_created" and r["subject_id"] == world.admin.id]
    assert created
    assert all(r["actor_name"] is None and r["subject_name"] == world.admin.username for r in created)
    _, seen = await call(trio, "GET", "/audit", world.root, user_id=str(world.admin.id))
    by_root = [r for r in seen["items"] if r["id"] in {c["id"] for c in created}]
    assert by_root
    assert all(r["actor_name"] == "Admin" for r in by_root)


async def test_summary_counts_what_the_caller_reaches(trio: Trio) -> None:
    world = await make_world(trio)
    await call(trio, "POST", "/vouchers", world.user.token, json={"count": 4})
    await zabbix_api_token(trio, world.user.username, f"api-{world.tag}")
    await call(trio, "POST", "/sessions", json={"username": world.user.username, "password": "wrong"})
    status, summary = await call(trio, "GET", "/summary", world.admin.token)
    assert status == 200
    counts = {(c["kind"], c["status"]): c["count"] for c in summary["tokens"]}
    assert counts == {("voucher", "active"): 4, ("zabbix", "active"): 1}
    assert len(summary["hourly"]) == 24
    assert summary["hourly"][-1]["issued"] == 5
    assert summary["hourly"][-1]["failed_logins"] == 1
    _, theirs = await call(trio, "GET", "/summary", world.other_admin.token)
    assert theirs["tokens"] == []
    # The sweeper's last pass, as the sweeper records it (tests/db/test_sweeper.py checks that).
    client = redis.asyncio.Redis.from_url(trio.settings.redis_url)
    try:
        await client.set(sweeper_last_pass_key(trio.settings.redis_prefix), 1_800_000_000)
    finally:
        await client.aclose()
    _, later = await call(trio, "GET", "/summary", world.user.token)
    assert later["sweeper_last_pass"] == "2027-01-15T08:00:00Z"


async def test_apps_quota_and_usage(trio: Trio) -> None:
    world = await make_world(trio)
    app_id = f"app-{world.tag}"
    status, made = await call(trio, "POST", "/apps", world.root, json={"app_id": app_id, "daily_quota": 5})
    assert status == 201
    assert made["daily_quota"] == 5
    status, changed = await call(trio, "PATCH", f"/apps/{app_id}", world.root, json={"daily_quota": 7})
    assert status == 200
    assert changed["daily_quota"] == 7
    response = await trio.gateway.post(
        "/v1/tokens",
        json={"email": f"{world.user.username}@example.org", "password": PASSWORD, "appId": app_id},
    )
    assert response.status in (200, 201), await response.text()
    status, usage = await call(trio, "GET", f"/apps/{app_id}/usage", world.admin.token)
    assert status == 200
    assert [(a["user_id"], a["used"]) for a in usage["accounts"]] == [(world.user.id, 1)]
    _, theirs = await call(trio, "GET", f"/apps/{app_id}/usage", world.other_admin.token)
    assert theirs["accounts"] == []


async def test_bad_input_is_a_json_4xx(trio: Trio) -> None:
    world = await make_world(trio)
    token = world.admin.token
    cases: list[tuple[str, str, Any, dict[str, str], int]] = [
        ("GET", "/tokens", None, {"limit": "0"}, 422),
        ("GET", "/tokens", None, {"limit": "many"}, 422),
        ("GET", "/tokens", None, {"cursor": "bm90LWEtY3Vyc29y"}, 422),
        ("GET", "/tokens", None, {"kind": "kerberos"}, 422),
        ("GET", "/tokens", None, {"nonsense": "1"}, 422),
        ("GET", "/tokens", None, {"created_after": "yesterday"}, 422),
        ("GET", "/users", None, {"cursor": "!!"}, 422),
        ("POST", "/tokens/revoke", {"ids": []}, {}, 422),
        ("POST", "/tokens/revoke", {"ids": list(range(1, 102))}, {}, 422),
        ("POST", "/users", {"username": ""}, {}, 422),
        ("PUT", f"/users/{world.user.id}/role", {"role": "emperor"}, {}, 422),
        ("GET", "/users/99999999999999999999", None, {}, 404),
        ("GET", "/users/9223372036854775807", None, {}, 404),
    ]
    for method, path, body, query, expected in cases:
        status, reply = await call(trio, method, path, token, json=body, **query)
        assert status == expected, (method, path, body, query, reply)
    response = await trio.gateway.post(
        "/admin/v1/users", data=b"{not json", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_json"
    status, _ = await call(trio, "POST", "/users", world.admin.token, json={"username": world.user.username})
    assert status == 409
    response = await trio.gateway.request("DELETE", f"/admin/v1/users/{world.user.id}")
    assert response.status == 405
    assert response.headers["Allow"] == "GET"
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert (await call(trio, "GET", "/nothing/here", token))[0] == 404
    huge = io.BytesIO(b'{"username": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    response = await trio.gateway.post(
        "/admin/v1/users", data=huge, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"


async def test_the_token_listing_filters_by_each_column(trio: Trio) -> None:
    world = await make_world(trio)
    started = datetime.now(UTC)
    session = (await zabbix(trio, "user.login", {"username": world.user.username, "password": PASSWORD}))[
        "result"
    ]
    soon = int(time.time()) + 3600
    ending = await zabbix(
        trio, "token.create", {"name": f"ending-{world.tag}", "expires_at": str(soon)}, session
    )
    ending_id = int(ending["result"]["tokenids"][0])
    _, secret = await zabbix_api_token(trio, world.user.username, f"used-{world.tag}")
    assert "result" in await zabbix(trio, "token.get", {"output": ["name"]}, secret)  # sets its last use
    await call(trio, "POST", "/vouchers", world.admin.token, json={"count": 1})

    async def ids(**query: str) -> set[str]:
        status, page = await call(trio, "GET", "/tokens", world.admin.token, limit="200", **query)
        assert status == 200, page
        return {t["name"] for t in page["items"] if t["kind"] == "zabbix"} | {
            t["kind"] for t in page["items"] if t["kind"] == "voucher"
        }

    mine = {f"ending-{world.tag}", f"used-{world.tag}"}
    assert await ids(created_after=started.isoformat()) == mine | {"voucher"}
    assert await ids(created_before=started.isoformat()) == set()
    assert await ids(owner_id=str(world.user.id)) == mine
    assert await ids(owner_id=str(world.admin.id)) == {"voucher"}
    assert await ids(kind="voucher") == {"voucher"}
    later = datetime.fromtimestamp(soon + 60, UTC).isoformat()
    assert await ids(expires_before=later) == {f"ending-{world.tag}"}
    assert await ids(expires_after=started.isoformat(), kind="zabbix") == {f"ending-{world.tag}"}
    assert await ids(used_after=started.isoformat()) == {f"used-{world.tag}"}
    assert await ids(q="ENDING-") == {f"ending-{world.tag}"}  # case-insensitive substring
    assert await ids(q="%") == set()  # LIKE's wildcards are plain characters
    status, _ = await call(trio, "GET", "/tokens", world.admin.token, used_after="2026-01-01T00:00:00")
    assert status == 422  # a time without its zone
    assert ending_id in {
        t["id"] for t in (await call(trio, "GET", "/tokens", world.admin.token, status="active"))[1]["items"]
    }
