"""The Zabbix dialect on the in-process trio: a login and a token's life, in milliseconds."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_PASSWORD
from tests.inprocess.conftest import Trio


async def rpc(trio: Trio, method: str, params: Any, auth: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
    if auth is not None:
        body["auth"] = auth
    response = await trio.gateway.post(
        "/api_jsonrpc.php", json=body, headers={"Content-Type": "application/json-rpc"}
    )
    assert response.status == 200
    reply: dict[str, Any] = await response.json(content_type=None)
    return reply


async def test_login_then_a_token_is_created_and_listed(trio: Trio) -> None:
    session = (await rpc(trio, "user.login", {"username": "Admin", "password": ADMIN_PASSWORD}))["result"]
    created = await rpc(trio, "token.create", {"name": "in-process"}, session)
    token_id = created["result"]["tokenids"][0]
    listed = await rpc(trio, "token.get", {"tokenids": [token_id], "output": ["name"]}, session)
    assert listed["result"] == [{"name": "in-process"}]
