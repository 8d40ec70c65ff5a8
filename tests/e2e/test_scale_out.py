"""Scaling out with real processes on loopback: every service as several replicas, each internal call
balanced per request, gateways that share nothing but the revocation channel."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app as create_gateway
from shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD
from tests.e2e.harness import ServiceProcess, Topology, running_topology
from tests.e2e.test_chatapp import add_account, add_app, make
from tests.e2e.zabbix_client import login, rpc

CACHE_BOUND_S = 1.0  # TOKENHUB_VERIFY_CACHE_TTL's default and ceiling


def served(replica: ServiceProcess, route: str) -> int:
    """How many requests `replica` answered on `route`, from its own /metrics."""
    with urllib.request.urlopen(replica.metrics_url, timeout=5) as response:  # noqa: S310 (loopback only)
        text = response.read().decode()
    pattern = re.compile(r"^tokenhub_http_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
    return int(sum(float(value) for labels, value in pattern.findall(text) if f'route="{route}"' in labels))


def own_prefix(environment: dict[str, str]) -> dict[str, str]:
    return dict(
        environment, TOKENHUB_REDIS_PREFIX=f"{environment['TOKENHUB_REDIS_PREFIX']}so{secrets.token_hex(3)}:"
    )


@pytest.fixture
def three_registries(environment: dict[str, str], tmp_path: Path) -> Iterator[Topology]:
    with running_topology(own_prefix(environment), tmp_path, registries=3) as topology:
        yield topology


async def test_token_gets_spread_evenly_over_a_list_of_registries(
    three_registries: Topology, http: aiohttp.ClientSession
) -> None:
    url = three_registries.gateways[0].url
    session = await login(http, url, "Admin", ADMIN_PASSWORD)
    created = await rpc(http, url, "token.create", {"name": f"spread-{secrets.token_hex(3)}"}, session)
    token_id = created["result"]["tokenids"][0]
    route = "/v1/zabbix-tokens/query"
    before = [served(r, route) for r in three_registries.registries]
    calls = 3000
    in_flight = asyncio.Semaphore(20)

    async def get() -> None:
        async with in_flight:
            reply = await rpc(http, url, "token.get", {"tokenids": [token_id], "output": ["name"]}, session)
            assert len(reply["result"]) == 1, reply

    await asyncio.gather(*(get() for _ in range(calls)))
    spread = [served(r, route) - b for r, b in zip(three_registries.registries, before, strict=True)]
    assert sum(spread) == calls
    assert all(850 <= n <= 1150 for n in spread), spread
    # The gateway's own view, per endpoint, on its /metrics.
    async with http.get(three_registries.gateways[0].metrics_url) as response:
        text = await response.text()
    for registry in three_registries.registries:
        line = f'tokenhub_backend_requests_total{{endpoint="{registry.url}",target="registry"}}'
        assert line in text, registry.url
        assert float(text.split(line, 1)[1].split()[0]) >= 850


async def test_a_token_deleted_through_one_gateway_is_refused_at_another_within_the_cache_bound(
    environment: dict[str, str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with running_topology(own_prefix(environment), tmp_path, gateways=2) as topology:
        a, b = (g.url for g in topology.gateways)
        session = await login(http, a, "Admin", ADMIN_PASSWORD)
        created = await rpc(http, a, "token.create", {"name": f"two-gw-{secrets.token_hex(3)}"}, session)
        token_id = created["result"]["tokenids"][0]
        secret = (await rpc(http, a, "token.generate", [token_id], session))["result"][0]["token"]

        async def honoured_at_b() -> bool:
            reply = await rpc(http, b, "token.get", {"output": ["tokenid"], "tokenids": [token_id]}, secret)
            return "result" in reply

        assert await honoured_at_b()  # now in B's verification cache
        assert await honoured_at_b()
        assert "result" in await rpc(http, a, "token.delete", [token_id], session)
        deleted_at = time.monotonic()
        while await honoured_at_b():
            assert time.monotonic() - deleted_at < CACHE_BOUND_S, "B still honours a deleted token"
            await asyncio.sleep(0.02)


async def test_two_issuers_behind_two_gateways_keep_one_daily_quota_exactly(
    environment: dict[str, str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    env = own_prefix(environment)
    account = add_account(env)
    app_id = add_app(env, "--daily-quota", "100")
    with running_topology(
        env, tmp_path, issuers=2, gateways=2, extra_env={"TOKENHUB_BACKEND_TIMEOUT": "20"}
    ) as topology:
        gateways = [g.url for g in topology.gateways]
        # Until each issuer has checked the password once (and cached the check), as a client's first
        # calls would: otherwise a thousand right passwords queue for one check each.
        warm_up = 0
        while not all(served(issuer, "/v1/pairs") for issuer in topology.issuers):
            assert (await make(http, gateways[warm_up % 2], account, app_id)).status == 200
            warm_up += 1
            assert warm_up < 20, "the gateways send every make to one issuer"
        replies = await asyncio.gather(*(make(http, gateways[i % 2], account, app_id) for i in range(1000)))
        statuses = [r.status for r in replies]
        assert statuses.count(200) + warm_up == 100, sorted(set(statuses))
        # The rest are refused for the quota. (A password proved right holds no throttle attempt, so
        # none waits behind the others' and none is told to try again.)
        assert statuses.count(429) == 1000 - statuses.count(200), sorted(set(statuses))
        assert {r.body["error"]["code"] for r in replies if r.status != 200} == {"ApiTokensLimitError"}


class Names:
    """A resolver with a table the test edits: replicas behind one made-up name, as DNS gives them
    for compose `--scale` or a Kubernetes headless Service."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return list(self.table[host])


async def test_replicas_behind_one_name_share_the_load_and_a_new_one_joins(
    environment: dict[str, str], tmp_path: Path
) -> None:
    hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    env = own_prefix(environment)
    with running_topology(env, tmp_path, registry_hosts=hosts, gateways=0) as topology:
        port = topology.registries[0].port
        names = Names({"registry.tokenhub.test": list(hosts)})
        settings = Settings.model_validate(
            {
                "DATABASE_URL": env["DATABASE_URL"],
                "REDIS_URL": env["REDIS_URL"],
                "TOKENHUB_REDIS_PREFIX": env["TOKENHUB_REDIS_PREFIX"],
                "TOKENHUB_REGISTRY_URL": f"http://registry.tokenhub.test:{port}",
                "TOKENHUB_ISSUER_URL": topology.issuers[0].url,
                "TOKENHUB_RESOLVE_INTERVAL": "1",
            }
        )
        gateway = TestServer(await create_gateway(settings, resolver=names), host="127.0.0.1")
        await gateway.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                url = str(gateway.make_url("")).rstrip("/")
                session = await login(http, url, "Admin", ADMIN_PASSWORD)
                created = await rpc(
                    http, url, "token.create", {"name": f"dns-{secrets.token_hex(3)}"}, session
                )
                token_id = created["result"]["tokenids"][0]
                route = "/v1/zabbix-tokens/query"
                in_flight = asyncio.Semaphore(20)

                async def get() -> None:
                    async with in_flight:
                        reply = await rpc(http, url, "token.get", {"tokenids": [token_id]}, session)
                        assert len(reply["result"]) == 1, reply

                before = [served(r, route) for r in topology.registries]
                await asyncio.gather(*(get() for _ in range(3000)))
                spread = [served(r, route) - b for r, b in zip(topology.registries, before, strict=True)]
                assert sum(spread) == 3000
                assert all(850 <= n <= 1150 for n in spread), spread

                # A fourth replica, announced by the name: it serves within the resolve interval + 5 s.
                newcomer = ServiceProcess(
                    "registry",
                    port,
                    dict(topology.registries[0].env, TOKENHUB_HOST="127.0.0.4"),
                    tmp_path / "registry-new.log",
                    host="127.0.0.4",
                )
                newcomer.start()
                try:
                    newcomer.wait_ready()
                    names.table["registry.tokenhub.test"].append("127.0.0.4")
                    announced = time.monotonic()
                    while served(newcomer, route) == 0:
                        assert time.monotonic() - announced < settings.resolve_interval + 5
                        await get()
                finally:
                    newcomer.stop()
        finally:
            await gateway.close()
