"""The admin API's authorization matrix: every route of gateway/admin/api.py's table, for every kind of
caller (anonymous, a `user`, the `admin` it belongs to, a `super_admin`, another admin, and that other
admin's user), allowed or refused, and listings holding exactly what the caller reaches. One table
drives it all; a route missing from the table fails the first test.

The world is one per module, small (six accounts); what a case would destroy (a target account, a
voucher, the caller's own session) is made fresh for that case.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.admin.api import ROUTES
from tests.inprocess.admin_world import PASSWORD, Member, World, call, make_user, make_world, sign_in
from tests.inprocess.conftest import Trio

CALLERS = ("anonymous", "user", "admin", "super_admin", "other_admin", "stranger")
# Whom each caller reaches among the world's accounts (users below `admin`: `user`; below
# `other_admin`: `stranger`).
REACH = {
    "user": {"user"},
    "admin": {"admin", "user"},
    "super_admin": {"super_admin", "admin", "user", "other_admin", "stranger"},
    "other_admin": {"other_admin", "stranger"},
    "stranger": {"stranger"},
}
# Vouchers follow the hotspot dialect: an operator its own, a super_admin everyone's.
VOUCHER_REACH = {name: {name} for name in REACH} | {"super_admin": set(REACH["super_admin"])}


@dataclass
class Ctx:
    trio: Trio
    world: World
    started: datetime
    app_id: str

    def member(self, name: str) -> Member:
        member: Member = getattr(self.world, name)
        return member

    def name_of(self, user_id: int) -> str | None:
        for name in REACH["super_admin"]:
            if self.member(name).id == user_id:
                return name
        return None

    async def target(self) -> int:
        """A fresh account below `admin`, to act on."""
        made = await make_user(self.trio, self.world.admin.token, f"t-{secrets.token_hex(4)}", "user")
        return made.id

    async def voucher(self) -> tuple[int, str]:
        """A fresh voucher of `user`: (token id, code)."""
        _, made = await call(self.trio, "POST", "/vouchers", self.world.user.token, json={"count": 1})
        code = made[0]["token"]
        _, page = await call(self.trio, "GET", "/tokens", self.world.user.token, kind="voucher", limit="5")
        ids = [t["id"] for t in page["items"] if t["name"] == code]
        return ids[0], code


Request = tuple[str, Any, dict[str, str]]  # path (below /admin/v1), JSON body, query
Check = Callable[[Ctx, str, Any], Awaitable[None] | None]


@dataclass(frozen=True)
class Case:
    make: Callable[[Ctx], Awaitable[Request]]
    # Expected status per caller; a caller not named gets `default`.
    status: dict[str, int] = field(default_factory=dict)
    default: int = 200
    check: Check | None = None  # called with (ctx, caller, reply) when the call succeeded
    fresh_session: bool = False  # the case ends the caller's session: use a new one


# --- listing checks: exactly what the caller reaches -----------------------------------------------


def users_check(ctx: Ctx, caller: str, reply: Any) -> None:
    seen = {ctx.name_of(u["id"]) for u in reply["items"]} - {None}
    assert seen == REACH[caller]


def tree_check(ctx: Ctx, caller: str, reply: Any) -> None:
    def walk(nodes: list[dict[str, Any]]) -> set[int]:
        return {n["id"] for n in nodes} | {i for n in nodes for i in walk(n["children"])}

    seen = {ctx.name_of(i) for i in walk(reply)} - {None}
    assert seen == REACH[caller]


def tokens_check(ctx: Ctx, caller: str, reply: Any) -> None:
    owners = {ctx.name_of(t["owner_id"]) for t in reply["items"]}
    assert None not in owners  # nothing but the world's tokens since it began
    assert owners == REACH[caller]


def vouchers_check(ctx: Ctx, caller: str, reply: Any) -> None:
    owners = {ctx.name_of(v["owner_id"]) for v in reply} - {None}
    assert owners == VOUCHER_REACH[caller]


async def audit_check(ctx: Ctx, caller: str, reply: Any) -> None:
    assert reply["items"]
    if caller == "super_admin":
        return
    # Only events by or about the accounts the caller reaches (the world's, and those made below it
    # since: the users listing, pinned to the world above, says which).
    _, users = await call(ctx.trio, "GET", "/users", ctx.member(caller).token, limit="200")
    reached = {u["id"] for u in users["items"]}
    for event in reply["items"]:
        about = {event["actor_id"], event["subject_id"]} - {None}
        assert about & reached, event


def summary_check(ctx: Ctx, caller: str, reply: Any) -> None:
    assert len(reply["hourly"]) == 24


def bulk(allowed: set[str]) -> Check:
    def check(ctx: Ctx, caller: str, reply: Any) -> None:
        if caller in allowed:
            assert reply["done"], reply
            assert not reply["not_found"], reply
        else:
            assert not reply["done"], reply  # out of reach is "not found", never told apart
            assert reply["not_found"], reply

    return check


# --- request makers ---------------------------------------------------------------------------------


async def none(ctx: Ctx) -> Request:
    return ("", None, {})


def fixed(path: str, body: Any = None, **query: str) -> Callable[[Ctx], Awaitable[Request]]:
    async def make(ctx: Ctx) -> Request:
        return (path.format(app_id=ctx.app_id), body, query)

    return make


def on_target(suffix: str, body: Any = None) -> Callable[[Ctx], Awaitable[Request]]:
    async def make(ctx: Ctx) -> Request:
        return (f"/users/{await ctx.target()}{suffix}", body, {})

    return make


def on_voucher_id(path: str) -> Callable[[Ctx], Awaitable[Request]]:
    async def make(ctx: Ctx) -> Request:
        token_id, _ = await ctx.voucher()
        return (path, {"ids": [token_id]}, {})

    return make


def on_voucher_code(path: str) -> Callable[[Ctx], Awaitable[Request]]:
    async def make(ctx: Ctx) -> Request:
        _, code = await ctx.voucher()
        return (path, {"codes": [code]}, {})

    return make


async def new_user(ctx: Ctx) -> Request:
    return ("/users", {"username": f"n-{secrets.token_hex(4)}", "role": "user"}, {})


async def new_app(ctx: Ctx) -> Request:
    return ("/apps", {"app_id": f"m-{secrets.token_hex(4)}"}, {})


async def sign_in_body(ctx: Ctx) -> Request:
    return ("/sessions", None, {})  # the body is the caller's own credentials (see the test)


async def world_users(ctx: Ctx) -> Request:
    # The world's accounts only (their names hold its tag): the run's database holds many more.
    return ("/users", None, {"q": ctx.world.tag, "limit": "200"})


async def world_tree(ctx: Ctx) -> Request:
    return ("/users/tree", None, {"root": str(ctx.world.super_admin.id)})


async def world_tokens(ctx: Ctx) -> Request:
    return ("/tokens", None, {"created_after": ctx.started.isoformat(), "limit": "200"})


async def world_audit(ctx: Ctx) -> Request:
    return ("/audit", None, {"since": ctx.started.isoformat(), "limit": "200"})


MANAGES_TARGET = {"admin": 200, "super_admin": 200}
ON_TARGET = {"user": 404, "other_admin": 404, "stranger": 404} | MANAGES_TARGET

MATRIX: dict[tuple[str, str], Case] = {
    ("POST", "/sessions"): Case(sign_in_body, default=201),
    ("DELETE", "/sessions/current"): Case(fixed("/sessions/current"), default=204, fresh_session=True),
    ("GET", "/summary"): Case(fixed("/summary"), check=summary_check),
    ("GET", "/users"): Case(world_users, check=users_check),
    ("POST", "/users"): Case(new_user, {"user": 403, "stranger": 403}, default=201),
    ("GET", "/users/tree"): Case(world_tree, check=tree_check),
    ("GET", r"/users/{user_id:\d{1,19}}"): Case(on_target(""), ON_TARGET),
    ("PUT", r"/users/{user_id:\d{1,19}}/role"): Case(on_target("/role", {"role": "guest"}), ON_TARGET),
    ("POST", r"/users/{user_id:\d{1,19}}/disable"): Case(on_target("/disable"), ON_TARGET),
    ("POST", r"/users/{user_id:\d{1,19}}/enable"): Case(on_target("/enable"), ON_TARGET),
    ("POST", r"/users/{user_id:\d{1,19}}/revoke"): Case(on_target("/revoke"), ON_TARGET),
    ("POST", r"/users/{user_id:\d{1,19}}/password"): Case(on_target("/password"), ON_TARGET),
    ("GET", "/tokens"): Case(world_tokens, check=tokens_check),
    ("POST", "/tokens/revoke"): Case(
        on_voucher_id("/tokens/revoke"), check=bulk({"user", "admin", "super_admin"})
    ),
    ("POST", "/tokens/delete"): Case(
        on_voucher_id("/tokens/delete"), check=bulk({"user", "admin", "super_admin"})
    ),
    ("GET", "/apps"): Case(fixed("/apps")),
    ("POST", "/apps"): Case(new_app, {"super_admin": 201}, default=403),
    ("PATCH", "/apps/{app_id}"): Case(
        fixed("/apps/{app_id}", {"daily_quota": 9}), {"super_admin": 200}, default=403
    ),
    ("GET", "/apps/{app_id}/usage"): Case(fixed("/apps/{app_id}/usage")),
    ("GET", "/vouchers"): Case(fixed("/vouchers", limit="200"), check=vouchers_check),
    ("POST", "/vouchers"): Case(fixed("/vouchers", {"count": 1}), default=201),
    ("POST", "/vouchers/annul"): Case(
        on_voucher_code("/vouchers/annul"), check=bulk({"user", "super_admin"})
    ),
    ("POST", "/vouchers/delete"): Case(
        on_voucher_code("/vouchers/delete"), check=bulk({"user", "super_admin"})
    ),
    ("GET", "/audit"): Case(world_audit, check=audit_check),
}


def test_every_admin_route_is_in_the_matrix() -> None:
    routes = {(r.method, r.path) for r in ROUTES}
    assert routes == set(MATRIX), routes ^ set(MATRIX)


@pytest.fixture(scope="module")
async def ctx(trio: Trio) -> Ctx:
    started = datetime.now(UTC)
    world = await make_world(trio)
    app_id = f"matrix-{world.tag}"
    status, _ = await call(trio, "POST", "/apps", world.root, json={"app_id": app_id})
    assert status == 201
    # A voucher for everyone, so that every token listing has something of each account.
    for name in REACH["super_admin"]:
        status, _ = await call(trio, "POST", "/vouchers", getattr(world, name).token, json={"count": 1})
        assert status == 201
    return Ctx(trio, world, started, app_id)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", list(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
async def test_matrix(ctx: Ctx, route: tuple[str, str], caller: str) -> None:
    case = MATRIX[route]
    method = route[0]
    path, body, query = await case.make(ctx)
    if route == ("POST", "/sessions"):
        if caller == "anonymous":
            body = {"username": ctx.world.user.username, "password": "not it"}
            expected = 401
        else:
            body = {"username": ctx.member(caller).username, "password": PASSWORD}
            expected = 201
        status, reply = await call(ctx.trio, method, path, json=body)
        assert status == expected, reply
        return
    token = None
    if caller != "anonymous":
        token = ctx.member(caller).token
        if case.fresh_session:
            token = await sign_in(ctx.trio, ctx.member(caller).username)
    status, reply = await call(ctx.trio, method, path, token, json=body, **query)
    expected = 401 if caller == "anonymous" else case.status.get(caller, case.default)
    assert status == expected, (caller, reply)
    if status < 300 and case.check is not None:
        checked = case.check(ctx, caller, reply)
        if checked is not None:
            await checked


async def test_guests_and_disabled_accounts_cannot_sign_in(trio: Trio) -> None:
    world = await make_world(trio)
    guest = await make_user(trio, world.admin.token, f"g-{world.tag}", "user")
    assert (await call(trio, "PUT", f"/users/{guest.id}/role", world.admin.token, json={"role": "guest"}))[
        0
    ] == 200
    status, _ = await call(trio, "POST", "/sessions", json={"username": guest.username, "password": PASSWORD})
    assert status == 401
    assert (await call(trio, "POST", f"/users/{world.user.id}/disable", world.admin.token))[0] == 200
    status, _ = await call(
        trio, "POST", "/sessions", json={"username": world.user.username, "password": PASSWORD}
    )
    assert status == 401


async def test_nobody_changes_their_own_role_or_status_and_an_admin_cannot_make_admins(trio: Trio) -> None:
    world = await make_world(trio)
    for suffix, body in (("/role", {"role": "super_admin"}), ("/disable", None)):
        for member in (world.user, world.admin, world.super_admin):
            status, _ = await call(
                trio,
                "PUT" if suffix == "/role" else "POST",
                f"/users/{member.id}{suffix}",
                member.token,
                json=body,
            )
            assert status == 409
    status, _ = await call(
        trio, "POST", "/users", world.admin.token, json={"username": f"x-{world.tag}", "role": "admin"}
    )
    assert status == 403
    status, _ = await call(
        trio, "PUT", f"/users/{world.user.id}/role", world.admin.token, json={"role": "admin"}
    )
    assert status == 403
    # A user may end its own credentials and renew its own password.
    assert (await call(trio, "POST", f"/users/{world.user.id}/password", world.user.token))[0] == 200
