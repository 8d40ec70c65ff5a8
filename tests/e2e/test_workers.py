"""Several processes of one service on one machine, sharing its port (`*_WORKERS`), and how a
service stops: draining first, then finishing what it holds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.e2e.harness import Cluster, children, pid_alive, running_cluster
from tests.e2e.zabbix_client import login, rpc


def served_by(log: Path, path: str) -> Counter[str]:
    """Which worker wrote the access line of each request for `path`."""
    workers: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "tokenhub.access" and entry["msg"] == f"GET {path} 200":
                workers[entry.get("worker", "none")] += 1
    return workers


@pytest.fixture
def two_workers_each(environment: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    env = dict(environment, GATEWAY_WORKERS="2", REGISTRY_WORKERS="2", ISSUER_WORKERS="2")
    with running_cluster(env, tmp_path, services=("registry", "issuer", "gateway")) as cluster:
        yield cluster


async def test_two_workers_share_the_port_and_one_that_dies_is_replaced(
    two_workers_each: Cluster, tmp_path: Path
) -> None:
    gateway = two_workers_each["gateway"]
    assert gateway.proc is not None
    workers = children(gateway.proc.pid)
    assert len(workers) == 2
    # A new connection per request: the kernel spreads connections, not requests.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        # The service is ready once one worker listens; the spread is measured once both have served.
        deadline = time.monotonic() + 10
        while set(before := served_by(tmp_path / "gateway.log", "/healthz")) != {"0", "1"}:
            assert time.monotonic() < deadline, f"one worker never served: {before}"
            async with http.get(gateway.url + "/healthz") as r:
                assert r.status == 200
        for _ in range(200):
            async with http.get(gateway.url + "/healthz") as r:
                assert r.status == 200
        share = served_by(tmp_path / "gateway.log", "/healthz") - before
        assert set(share) == {"0", "1"}, share
        assert min(share.values()) >= 40, share

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while len(replaced := children(gateway.proc.pid)) < 2 or workers[0] in replaced:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            await asyncio.sleep(0.1)
        assert workers[1] in replaced
        # Both services behind it run two workers too, and a login goes through all of them.
        session = await login(http, gateway.url, "Admin", ADMIN_PASSWORD)
        assert "result" in await rpc(http, gateway.url, "token.get", {"countOutput": True}, session)

    gateway.stop()
    assert gateway.proc.returncode == 0
    assert not any(pid_alive(pid) for pid in replaced)
