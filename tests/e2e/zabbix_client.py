"""A minimal JSON-RPC caller for the gateway's Zabbix endpoint, as a curl script would do it."""

from __future__ import annotations

from typing import Any

import aiohttp

HEADERS = {"Content-Type": "application/json-rpc"}


async def rpc(
    http: aiohttp.ClientSession,
    gateway_url: str,
    method: str,
    params: Any,
    auth: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
    if auth is not None:
        body["auth"] = auth
    async with http.post(
        gateway_url + "/api_jsonrpc.php", json=body, headers={**HEADERS, **(headers or {})}
    ) as r:
        assert r.status == 200, await r.text()
        reply: dict[str, Any] = await r.json(content_type=None)
        return reply


async def login(http: aiohttp.ClientSession, gateway_url: str, username: str, password: str) -> str:
    reply = await rpc(http, gateway_url, "user.login", {"username": username, "password": password})
    assert "result" in reply, reply
    session_id: str = reply["result"]
    return session_id
