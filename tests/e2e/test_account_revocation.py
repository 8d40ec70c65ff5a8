"""Account-wide revocation (issue 13, item 3), end to end through the gateway: `tokenhub users
disable / enable / revoke / api-key --revoke` reach every credential a user holds in every dialect
within the verification cache's bound (1 s), and each action is in the audit trail.

Each credential is used once before the action, so that the gateway holds a cached verification of
it: the action must reach past that cache, not wait for it to age.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import run_cli
from tests.e2e.harness import Cluster
from tests.e2e.hotspot_client import Hotspot, hotspot_client, random_loopback
from tests.e2e.wialon_client import Wialon, WialonUser, wialon_client
from tests.e2e.zabbix_client import rpc

PASSWORD = "Right-pass-123"
LOGIN_FAILED = "Incorrect user name or password or account is temporarily blocked."
BOUND_S = 1.0  # TOKENHUB_VERIFY_CACHE_TTL


@dataclass
class Holder:
    """One user holding a credential of every kind, and a probe per credential that says whether
    the gateway still honours it."""

    name: str
    user_id: int
    email: str
    app_id: str
    http: aiohttp.ClientSession
    wialon: Wialon
    hotspot: Hotspot
    url: str
    env: dict[str, str]
    held: dict[str, str] = field(default_factory=dict)

    async def chatapp(self, method: str, path: str, headers: dict[str, str]) -> int:
        async with self.http.request(method, self.url + path, headers=headers) as r:
            return r.status

    async def zabbix(self, auth: str) -> dict[str, Any]:
        return await rpc(self.http, self.url, "token.get", {"output": ["tokenid"]}, auth=auth)

    # Each probe: True while the credential is honoured.
    def probes(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        h = self.held

        async def access() -> bool:
            return await self.chatapp("GET", "/v1/tokens/check", {"Authorization": h["access"]}) == 200

        async def forward_auth() -> bool:
            return await self.chatapp("GET", "/v1/auth", {"Authorization": h["access"]}) == 204

        async def refresh() -> bool:
            # A refresh that works rotates the pair: keep the new one for the next probe.
            async with self.http.post(
                self.url + "/v1/tokens/refresh", headers={"Refresh": h["refresh"]}
            ) as r:
                if r.status != 200:
                    return False
                data = (await r.json())["data"]
            h["refresh"], h["access"] = data["refreshToken"], data["accessToken"]
            return True

        async def zabbix_session() -> bool:
            return "result" in await self.zabbix(h["zabbix_session"])

        async def zabbix_api_token() -> bool:
            return "result" in await self.zabbix(h["zabbix_token"])

        async def wialon_session() -> bool:
            return await self.wialon.error("token/list", {}, h["wialon_session"]) is None

        async def wialon_token_session() -> bool:
            return await self.wialon.error("token/list", {}, h["wialon_token_session"]) is None

        async def wialon_token_login() -> bool:
            return await self.wialon.error("token/login", {"token": h["wialon_token"]}) is None

        async def api_key() -> bool:
            return (await self.hotspot.call(h["api_key"], "gettokens", {"limit": 1})).status == 200

        return {
            "chatapp access token": access,
            "chatapp forward-auth": forward_auth,
            "chatapp refresh": refresh,
            "zabbix session": zabbix_session,
            "zabbix API token": zabbix_api_token,
            "wialon password session": wialon_session,
            "wialon token session": wialon_token_session,
            "wialon token login": wialon_token_login,
            "hotspot API key": api_key,
        }

    async def password_logins(self) -> dict[str, bool]:
        """Whether each dialect lets the user log in with the password now."""
        zabbix = await rpc(self.http, self.url, "user.login", {"username": self.name, "password": PASSWORD})
        body = {"email": self.email, "password": PASSWORD, "appId": self.app_id}
        async with self.http.post(self.url + "/v1/tokens", json=body) as r:
            chatapp = r.status == 200
        wialon = await self.wialon.error("core/login", {"user": self.name, "password": PASSWORD})
        return {"zabbix": "result" in zabbix, "chatapp": chatapp, "wialon": wialon is None}

    async def state(self) -> dict[str, bool]:
        return {name: await probe() for name, probe in self.probes().items()}


async def obtain(holder: Holder) -> None:
    """A credential of every kind, each used once (so the gateway has it cached)."""
    h = holder.held
    body = {"email": holder.email, "password": PASSWORD, "appId": holder.app_id}
    async with holder.http.post(holder.url + "/v1/tokens", json=body) as r:
        assert r.status == 200, await r.text()
        data = (await r.json())["data"]
    h["access"], h["refresh"] = data["accessToken"], data["refreshToken"]
    login = await rpc(holder.http, holder.url, "user.login", {"username": holder.name, "password": PASSWORD})
    h["zabbix_session"] = login["result"]
    created = await rpc(holder.http, holder.url, "token.create", {"name": "ci"}, auth=h["zabbix_session"])
    token_id = created["result"]["tokenids"][0]
    generated = await rpc(holder.http, holder.url, "token.generate", [token_id], auth=h["zabbix_session"])
    h["zabbix_token"] = generated["result"][0]["token"]
    user = WialonUser(holder.user_id, holder.name, PASSWORD)
    h["wialon_session"] = await holder.wialon.login(user)
    h["wialon_token"] = (await holder.wialon.create(h["wialon_session"]))["h"]
    h["wialon_token_session"] = (await holder.wialon.token_login(h["wialon_token"]))["eid"]
    key = run_cli(["users", "api-key", holder.name], holder.env)
    assert key.returncode == 0, key.stderr
    h["api_key"] = key.stdout.strip()
    assert await holder.state() == dict.fromkeys(holder.probes(), True)


@pytest.fixture
async def holder(cluster: Cluster, environment: dict[str, str]) -> AsyncIterator[Holder]:
    name = f"holder-{secrets.token_hex(4)}"
    email = f"{name}@example.com"
    added = run_cli(
        ["users", "add", name, "--role", "admin", "--password-stdin", "--email", email], environment, PASSWORD
    )
    assert added.returncode == 0, added.stderr
    app_id = f"app-{secrets.token_hex(3)}"
    assert run_cli(["apps", "add", app_id], environment).returncode == 0
    address = random_loopback()
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http,
        wialon_client(cluster.gateway_url, address) as wialon,
        hotspot_client(cluster.gateway_url, address) as hotspot,
    ):
        found = Holder(
            name, int(added.stdout), email, app_id, http, wialon, hotspot, cluster.gateway_url, environment
        )
        await obtain(found)
        yield found


async def refused_within(holder: Holder, names: list[str]) -> dict[str, float]:
    """Probe the named credentials until each is refused; how long each took (seconds)."""
    started = time.monotonic()
    took: dict[str, float] = {}
    probes = holder.probes()
    while len(took) < len(names) and time.monotonic() - started < 5:
        for name in names:
            if name not in took and not await probes[name]():
                took[name] = time.monotonic() - started
        await asyncio.sleep(0.02)
    assert set(took) == set(names), f"still honoured after 5 s: {set(names) - set(took)}"
    return took


def audit_events(holder: Holder) -> list[str]:
    result = run_cli(["audit", "--user", holder.name], holder.env)
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line)["event"] for line in result.stdout.splitlines()]


async def test_disable_refuses_every_credential_within_a_second_and_enable_lets_logins_back(
    holder: Holder,
) -> None:
    result = run_cli(["users", "disable", holder.name], holder.env)
    assert result.returncode == 0, result.stderr
    took = await refused_within(holder, list(holder.probes()))
    assert max(took.values()) <= BOUND_S, took
    print(f"disable: slowest credential refused after {max(took.values()):.3f} s: {took}")
    # A disabled account's right password gets what a wrong one gets, in every dialect.
    assert await holder.password_logins() == {"zabbix": False, "chatapp": False, "wialon": False}
    zabbix = await rpc(holder.http, holder.url, "user.login", {"username": holder.name, "password": PASSWORD})
    assert zabbix["error"]["data"] == LOGIN_FAILED

    assert run_cli(["users", "enable", holder.name], holder.env).returncode == 0
    assert await holder.password_logins() == {"zabbix": True, "chatapp": True, "wialon": True}
    # Disabling ended the sessions and pairs for good; the long-lived credentials were only
    # suspended, and work again.
    assert await holder.state() == {
        "chatapp access token": False,
        "chatapp forward-auth": False,
        "chatapp refresh": False,
        "zabbix session": False,
        "zabbix API token": True,
        "wialon password session": False,
        "wialon token session": False,
        "wialon token login": True,
        "hotspot API key": True,
    }
    events = audit_events(holder)
    assert {"user_disabled", "user_enabled", "login_succeeded", "login_failed"} <= set(events)
    assert events.index("user_disabled") < events.index("user_enabled")


async def test_revoke_ends_every_credential_within_a_second_but_not_the_password(holder: Holder) -> None:
    result = run_cli(["users", "revoke", holder.name], holder.env)
    assert result.returncode == 0, result.stderr
    assert "1 Zabbix API token(s) disabled, 1 Wialon token(s) and 1 API key(s) deleted" in result.stdout
    took = await refused_within(holder, list(holder.probes()))
    assert max(took.values()) <= BOUND_S, took
    print(f"revoke: slowest credential refused after {max(took.values()):.3f} s: {took}")
    # The account itself is not disabled: its owner logs in again (with a password, now changed
    # by the operator in a real incident) and gets fresh credentials.
    assert await holder.password_logins() == {"zabbix": True, "chatapp": True, "wialon": True}
    await asyncio.sleep(BOUND_S)  # past any cached verification
    assert not any((await holder.state()).values())
    # Its Zabbix API token is kept, disabled; its Wialon token and API key are gone.
    session = await rpc(
        holder.http, holder.url, "user.login", {"username": holder.name, "password": PASSWORD}
    )
    tokens = await rpc(holder.http, holder.url, "token.get", {"output": ["status"]}, auth=session["result"])
    assert tokens["result"] == [{"status": "1"}]
    user = WialonUser(holder.user_id, holder.name, PASSWORD)
    assert await holder.wialon.tokens(await holder.wialon.login(user)) == []
    assert "user_revoked" in audit_events(holder)


async def test_api_key_revoke_refuses_the_key_within_a_second(holder: Holder) -> None:
    result = run_cli(["users", "api-key", holder.name, "--revoke"], holder.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"revoked 1 API key(s) of {holder.name}"
    took = await refused_within(holder, ["hotspot API key"])
    assert took["hotspot API key"] <= BOUND_S
    assert (await holder.hotspot.call(holder.held["api_key"], "gettokens", {})).error_code == "unauthorized"
    # Nothing else of the user's is touched.
    state = await holder.state()
    assert state.pop("hotspot API key") is False
    assert all(state.values()), state
    assert "api_key_revoked" in audit_events(holder)


async def test_the_commands_name_an_unknown_user_in_one_line(environment: dict[str, str]) -> None:
    for command in (["disable"], ["enable"], ["revoke"], ["api-key", "--revoke"]):
        args = ["users", command[0], "nobody-by-this-name", *command[1:]]
        result = run_cli(args, environment)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip() == "tokenhub: error: no such user", result.stderr
