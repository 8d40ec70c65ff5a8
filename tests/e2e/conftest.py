from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import RedisTarget
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


@pytest.fixture(scope="module")
def cluster_on_each_redis(
    request: pytest.FixtureRequest,
    redis_target: RedisTarget,
    environment: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The four services, once against the run's one Redis (the shared `cluster` itself) and once
    against the private Redis Cluster: a test that takes this runs against both."""
    if not redis_target.cluster:
        yield request.getfixturevalue("cluster")
        return
    env = dict(environment, **redis_target.env)
    with running_cluster(env, tmp_path_factory.mktemp("cluster-on-redis-cluster-logs")) as running:
        yield running


@pytest.fixture
def private_cluster_on_each_redis(
    redis_target: RedisTarget, environment: dict[str, str], tmp_path: Path
) -> Iterator[Cluster]:
    """`private_cluster`, once against each Redis."""
    env = dict(
        environment,
        TOKENHUB_REDIS_PREFIX=f"{environment['TOKENHUB_REDIS_PREFIX']}{secrets.token_hex(3)}:",
        **redis_target.env,
    )
    with running_cluster(env, tmp_path) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
