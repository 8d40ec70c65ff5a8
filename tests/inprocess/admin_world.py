"""A small world for the admin API's in-process tests: a few users per role, made through the admin
API itself (signed in as the bootstrap super admin), each run's names unique."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from tests.conftest import ADMIN_PASSWORD
from tests.inprocess.conftest import Trio

PASSWORD = "correct horse battery staple"


async def call(
    trio: Trio, method: str, path: str, token: str | None = None, json: Any = None, **query: str
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = await trio.gateway.request(
        method, "/admin/v1" + path, headers=headers, json=json, params=query or None
    )
    assert response.content_type == "application/json" or response.status == 204, await response.text()
    body: Any = None if response.status == 204 else await response.json()
    if response.status >= 400:
        assert isinstance(body, dict)
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message"}, body
    return response.status, body


async def sign_in(trio: Trio, username: str, password: str = PASSWORD) -> str:
    status, body = await call(trio, "POST", "/sessions", json={"username": username, "password": password})
    assert status == 201, body
    token: str = body["session"]
    return token


@dataclass(frozen=True)
class Member:
    id: int
    username: str
    token: str


@dataclass(frozen=True)
class World:
    root: str  # the super admin's session
    super_admin: Member
    admin: Member  # with `user` below it
    user: Member
    other_admin: Member  # with `stranger` below it
    stranger: Member
    tag: str


async def make_user(trio: Trio, by: str, name: str, role: str, parent_id: int | None = None) -> Member:
    body: dict[str, Any] = {
        "username": name,
        "role": role,
        "password": PASSWORD,
        "email": f"{name}@example.org",
    }
    if parent_id is not None:
        body["parent_id"] = parent_id
    status, made = await call(trio, "POST", "/users", by, json=body)
    assert status == 201, made
    return Member(made["user"]["id"], name, await sign_in(trio, name))


async def make_world(trio: Trio) -> World:
    tag = secrets.token_hex(3)
    root = await sign_in(trio, "Admin", ADMIN_PASSWORD)
    # One tree: the super admin at its root (so `/users/tree?root=` shows the whole world), the two
    # admins below it, a user below each.
    super_admin = await make_user(trio, root, f"sa-{tag}", "super_admin", 0)
    admin = await make_user(trio, root, f"ad-{tag}", "admin", super_admin.id)
    user = await make_user(trio, admin.token, f"us-{tag}", "user")
    other_admin = await make_user(trio, root, f"oa-{tag}", "admin", super_admin.id)
    stranger = await make_user(trio, other_admin.token, f"st-{tag}", "user")
    return World(root, super_admin, admin, user, other_admin, stranger, tag)


async def zabbix(trio: Trio, method: str, params: Any, auth: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
    if auth is not None:
        body["auth"] = auth
    response = await trio.gateway.post(
        "/api_jsonrpc.php", json=body, headers={"Content-Type": "application/json-rpc"}
    )
    reply: dict[str, Any] = await response.json(content_type=None)
    return reply


async def zabbix_api_token(trio: Trio, username: str, name: str) -> tuple[int, str]:
    """A generated Zabbix API token of the user: (id, secret)."""
    session = (await zabbix(trio, "user.login", {"username": username, "password": PASSWORD}))["result"]
    token_id = int((await zabbix(trio, "token.create", {"name": name}, session))["result"]["tokenids"][0])
    generated = await zabbix(trio, "token.generate", [str(token_id)], session)
    return token_id, generated["result"][0]["token"]
