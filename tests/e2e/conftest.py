from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.harness import Cluster, running_cluster


@pytest.fixture(scope="session")
def cluster(environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The four services, shared by the tests that do not stop any of them."""
    with running_cluster(environment, tmp_path_factory.mktemp("cluster-logs")) as running:
        yield running


@pytest.fixture
def private_cluster(environment: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    """Four services of the test's own, for tests that stop or kill one of them or need Redis
    state of their own (a key prefix inside the run's, so the run's cleanup covers it)."""
    env = dict(
        environment, TOKENHUB_REDIS_PREFIX=f"{environment['TOKENHUB_REDIS_PREFIX']}{secrets.token_hex(3)}:"
    )
    with running_cluster(env, tmp_path) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
