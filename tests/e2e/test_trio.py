"""The trio behind the gateway, as real processes over real HTTP with real Postgres and Redis."""

from __future__ import annotations

import re
import secrets
import signal

import aiohttp
import pytest

from shared.internal import KEY_REFUSED
from tests.conftest import ADMIN_PASSWORD, redis_for, run_cli
from tests.e2e.harness import Cluster, Service, http_status
from tests.e2e.zabbix_client import login, rpc

pytestmark = pytest.mark.e2e

UNAVAILABLE = {
    "code": -32500,
    "message": "Application error.",
    "data": "Service temporarily unavailable, try again later.",
}


@pytest.mark.parametrize("service", ["gateway", "issuer", "registry", "sweeper"])
async def test_every_service_has_probes_and_metrics(
    cluster: Cluster, http: aiohttp.ClientSession, service: Service
) -> None:
    base = cluster[service].url
    async with http.get(base + "/healthz") as r:
        assert r.status == 200
        assert (await r.json())["service"] == service
    async with http.get(base + "/readyz") as r:
        assert r.status == 200, await r.text()
        assert all((await r.json())["checks"].values())
    async with http.get(cluster[service].metrics_url) as r:
        assert r.status == 200
        assert "tokenhub_http_requests_total" in await r.text()


async def test_the_gateway_keeps_its_metrics_off_its_public_port(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """How busy each route is, and how often verifications fail, is for the operator's Prometheus,
    not for anyone who can reach the public port (TOKENHUB_METRICS_PUBLIC is off by default)."""
    async with http.get(cluster.gateway_url + "/metrics") as r:
        assert r.status == 404
        assert "tokenhub_" not in await r.text()
    async with http.get(cluster["gateway"].metrics_url) as r:
        assert r.status == 200
        assert "tokenhub_http_requests_total" in await r.text()
    # The metrics listener serves nothing else.
    metrics_base = cluster["gateway"].metrics_url.removesuffix("/metrics")
    for path in ("/healthz", "/api_jsonrpc.php", "/v1/tokens/check"):
        async with http.get(metrics_base + path) as r:
            assert r.status == 404


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("issuer", "POST", "/v1/sessions"),
        ("issuer", "POST", "/v1/sessions/resolve"),
        ("registry", "POST", "/v1/users/authenticate"),
        ("registry", "GET", "/v1/users/1"),
    ],
)
@pytest.mark.parametrize("key", [None, "wrong-key-of-enough-length"])
async def test_internal_endpoints_refuse_requests_without_the_internal_key(
    cluster: Cluster, http: aiohttp.ClientSession, service: Service, method: str, path: str, key: str | None
) -> None:
    headers = {} if key is None else {"X-TokenHub-Internal-Key": key}
    async with http.request(method, cluster[service].url + path, json={}, headers=headers) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == KEY_REFUSED


async def test_login_goes_through_issuer_and_registry_with_one_request_id(
    cluster_on_each_redis: Cluster, http: aiohttp.ClientSession, environment: dict[str, str]
) -> None:
    cluster = cluster_on_each_redis
    request_id = f"e2e-{secrets.token_hex(8)}"
    reply = await rpc(
        http,
        cluster.gateway_url,
        "user.login",
        {"username": "Admin", "password": ADMIN_PASSWORD},
        headers={"X-Request-Id": request_id},
    )
    session_id = reply["result"]
    assert re.fullmatch(r"[0-9a-f]{32}", session_id)

    # The issuer keeps the session in Redis, under a hash of the id, never the id itself.
    env = cluster["issuer"].env
    client = redis_for(env)
    try:
        pattern = f"{env['TOKENHUB_REDIS_PREFIX']}sess:zabbix:*"
        keys = [k.decode() async for k in client.scan_iter(match=pattern)]
    finally:
        await client.aclose()
    assert keys
    assert not any(session_id in k for k in keys)

    check = await rpc(http, cluster.gateway_url, "user.checkAuthentication", {"sessionid": session_id})
    assert check["result"]["userid"] == "1"
    assert check["result"]["username"] == "Admin"
    assert check["result"]["sessionid"] == session_id

    # Each service logged the same request: the id travelled gateway -> issuer -> registry. Every
    # service writes its access log line before it answers, so the lines are there by now.
    services: tuple[Service, ...] = ("gateway", "issuer", "registry")
    for service in services:
        lines = [line for line in cluster[service].log().splitlines() if request_id in line]
        assert lines, f"{service} never logged request {request_id}"
    # ...and no service logged the session id, nor the password of a login (a distinctive one here:
    # Admin's "zabbix" is also a word in logger names).
    name, password = f"canary-{secrets.token_hex(4)}", f"Canary-{secrets.token_hex(8)}"
    assert (
        run_cli(
            ["users", "add", name, "--role", "user", "--password-stdin"], environment, password
        ).returncode
        == 0
    )
    canary_session = await login(http, cluster.gateway_url, name, password)
    await rpc(http, cluster.gateway_url, "user.login", {"username": name, "password": password + "-wrong"})
    logs = cluster.logs()
    assert password not in logs
    assert session_id not in logs
    assert canary_session not in logs


async def test_wrong_password_and_logout(cluster_on_each_redis: Cluster, http: aiohttp.ClientSession) -> None:
    cluster = cluster_on_each_redis
    wrong = await rpc(http, cluster.gateway_url, "user.login", {"username": "Admin", "password": "nope"})
    # Texts and codes as a real Zabbix 6.0.14 answers them.
    assert wrong["error"] == {
        "code": -32602,
        "message": "Invalid params.",
        "data": "Incorrect user name or password or account is temporarily blocked.",
    }
    session_id = await login(http, cluster.gateway_url, "Admin", ADMIN_PASSWORD)
    assert (await rpc(http, cluster.gateway_url, "user.logout", [], auth=session_id))["result"] is True
    dead = await rpc(http, cluster.gateway_url, "user.checkAuthentication", {"sessionid": session_id})
    assert dead["error"]["data"] == "Session terminated, re-login, please."
    again = await rpc(http, cluster.gateway_url, "user.logout", [], auth=session_id)
    assert again["error"] == {
        "code": -32602,
        "message": "Invalid params.",
        "data": "Session terminated, re-login, please.",
    }


@pytest.mark.parametrize("stopped", ["registry", "issuer"])
async def test_a_stopped_backend_gives_a_dialect_error_then_recovers_without_restarting_the_gateway(
    private_cluster: Cluster, http: aiohttp.ClientSession, stopped: Service
) -> None:
    gateway_pid = private_cluster["gateway"].proc.pid if private_cluster["gateway"].proc else None
    await login(http, private_cluster.gateway_url, "Admin", ADMIN_PASSWORD)

    private_cluster[stopped].stop(signal.SIGKILL)
    for _ in range(3):  # also after the gateway's pooled connection to it has broken
        down = await rpc(
            http, private_cluster.gateway_url, "user.login", {"username": "Admin", "password": "x"}
        )
        assert down["error"] == UNAVAILABLE
    async with http.get(private_cluster.gateway_url + "/readyz") as r:
        assert r.status == 503
        assert (await r.json())["checks"][stopped] is False

    private_cluster[stopped].start()
    private_cluster[stopped].wait_ready()
    session_id = await login(http, private_cluster.gateway_url, "Admin", ADMIN_PASSWORD)
    assert re.fullmatch(r"[0-9a-f]{32}", session_id)
    gateway = private_cluster["gateway"].proc
    assert gateway is not None
    assert gateway.pid == gateway_pid
    assert gateway.poll() is None
    assert http_status(private_cluster.gateway_url + "/readyz") == 200


async def test_failed_logins_are_throttled_per_account(
    private_cluster_on_each_redis: Cluster, http: aiohttp.ClientSession, environment: dict[str, str]
) -> None:
    """After TOKENHUB_LOGIN_FAILURES_MAX (5) failures even the right password is refused for a while,
    and only for that account."""
    private_cluster = private_cluster_on_each_redis
    name, password = f"throttled-{secrets.token_hex(4)}", "Right-pass-123"
    assert (
        run_cli(
            ["users", "add", name, "--role", "user", "--password-stdin"], environment, password
        ).returncode
        == 0
    )
    url = private_cluster.gateway_url
    assert await login(http, url, name, password)
    for _ in range(5):
        reply = await rpc(http, url, "user.login", {"username": name, "password": "wrong"})
        assert reply["error"]["data"] == "Incorrect user name or password or account is temporarily blocked."
    blocked = await rpc(http, url, "user.login", {"username": name, "password": password})
    assert blocked["error"]["data"] == "Incorrect user name or password or account is temporarily blocked."
    assert await login(http, url, "Admin", ADMIN_PASSWORD)  # other accounts from this address still work

    env = private_cluster["issuer"].env
    client = redis_for(env)
    try:
        pattern = f"{env['TOKENHUB_REDIS_PREFIX']}fail:{{zabbix}}:account:*"
        # Admin's login forgave Admin's failures: only the throttled account still counts some.
        counters = [k async for k in client.scan_iter(match=pattern) if int(await client.hget(k, "n") or 0)]
    finally:
        await client.aclose()
    assert len(counters) == 1
    assert name.encode() not in counters[0]  # account names are hashed in keys
