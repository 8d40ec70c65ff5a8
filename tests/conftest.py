"""Real stores for every test run, never mocks.

Postgres: TEST_DATABASE_URL (a server where we may create databases) if set, else the local server,
else a testcontainers Postgres when a Docker engine is there. Each run gets its own freshly created
database, dropped afterwards. Redis: TEST_REDIS_URL, else local, else testcontainers; each run
gets its own key prefix, and its keys are deleted afterwards.

Redis Cluster: a private one of six redis-server processes (tests/redis_cluster.py), started once
for the run by the first test that asks for it and stopped by PID at the end. Tests that must pass
against both stores take `redis_target`, parametrised "single" and "cluster".
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis
import redis.asyncio
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from shared.redis import AnyRedis
from tests.redis_cluster import RedisCluster, missing_binaries, running_redis_cluster

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOKENHUB = str(VENV_BIN / "tokenhub")
ADMIN_PASSWORD = "zabbix"  # what the Zabbix conformance world expects of the bootstrap Admin

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def _postgres_answers(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
    finally:
        client.close()


def _docker_available() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A DSN to a maintenance database on a server where this run may create databases."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        yield explicit
    elif _postgres_answers(LOCAL_POSTGRES):
        yield LOCAL_POSTGRES
    elif _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
    else:
        pytest.fail("no Postgres: set TEST_DATABASE_URL, start the local server, or run a Docker engine")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    explicit = os.environ.get("TEST_REDIS_URL")
    if explicit:
        yield explicit
    elif _redis_answers(LOCAL_REDIS):
        yield LOCAL_REDIS
    elif _docker_available():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
    else:
        pytest.fail("no Redis: set TEST_REDIS_URL, start the local server, or run a Docker engine")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A private Redis Cluster (three masters, one replica each) for the whole run; tests that kill
    a node start one of their own (`running_redis_cluster`)."""
    missing = missing_binaries()
    if missing is not None:
        pytest.skip(f"no Redis Cluster can be started: {missing}")
    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


RedisMode = Literal["single", "cluster"]


@dataclass(frozen=True)
class RedisTarget:
    """The Redis a parametrised test runs against: REDIS_URL and TOKENHUB_REDIS_CLUSTER."""

    mode: RedisMode
    url: str

    @property
    def cluster(self) -> bool:
        return self.mode == "cluster"

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url, "TOKENHUB_REDIS_CLUSTER": "true" if self.cluster else "false"}

    def client(self) -> AnyRedis:
        return redis_for(self.env)


def redis_for(env: Mapping[str, str]) -> AnyRedis:
    """A client of the Redis a service with this environment uses (one Redis, or a cluster)."""
    if env.get("TOKENHUB_REDIS_CLUSTER") == "true":
        return AsyncRedisCluster.from_url(env["REDIS_URL"])
    return redis.asyncio.Redis.from_url(env["REDIS_URL"])


# Module scope, not session: a session-scoped parameter makes pytest regroup the whole run by it
# (every cluster-mode test of every module last) and keeps the services built on it alive to the end.
@pytest.fixture(scope="module", params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> RedisTarget:
    """Each test that takes this runs twice: against the run's one Redis, and against the private
    Redis Cluster (started only when a test asks for it)."""
    mode: RedisMode = request.param
    if mode == "single":
        return RedisTarget(mode, request.getfixturevalue("redis_server"))
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return RedisTarget(mode, cluster.url)


async def subscribe(pubsub: PubSub, channel: str, timeout: float = 5) -> None:
    """Subscribe and wait for the server's confirmation, so that nothing published after this
    returns can be missed."""
    await pubsub.subscribe(channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        message = await pubsub.get_message(timeout=left)
        if message is not None and message["type"] == "subscribe":
            return
    raise AssertionError(f"no confirmation of the subscription to {channel} within {timeout} s")


async def next_message(pubsub: PubSub, timeout: float) -> dict[str, Any] | None:
    """The next published message (not a subscribe confirmation) within `timeout` seconds, or None.

    One `get_message(timeout=...)` is not enough: it also returns None, early, when what it read
    was the connection's health-check PONG."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        message: dict[str, Any] | None = await pubsub.get_message(
            ignore_subscribe_messages=True, timeout=left
        )
        if message is not None:
            return message
    return None


class FreshDatabases:
    """Creates uniquely named databases on the test server and drops them all at the end."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.created: list[str] = []

    def name(self) -> str:
        name = f"tokenhub_test_{secrets.token_hex(6)}"
        self.created.append(name)
        return name

    def dsn(self, name: str) -> str:
        return with_database(self.server_dsn, name)

    def drop_all(self) -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(self.server_dsn)
            try:
                for name in self.created:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


@pytest.fixture(scope="session")
def fresh_databases(postgres_server: str) -> Iterator[FreshDatabases]:
    databases = FreshDatabases(postgres_server)
    yield databases
    databases.drop_all()


def base_environment(database_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """The environment a TokenHub process gets in tests: the parent's, minus TokenHub settings
    that could leak in from the developer's shell, plus the run's own stores."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TOKENHUB_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TOKENHUB_REDIS_PREFIX=redis_prefix,
        TOKENHUB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONUNBUFFERED="1",
    )
    return env


def run_cli(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOKENHUB, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="session")
def redis_prefix(redis_server: str) -> Iterator[str]:
    prefix = f"test:{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def database_url(fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str) -> str:
    """This run's database, migrated once with the real CLI (`tokenhub migrate`)."""
    dsn = fresh_databases.dsn(fresh_databases.name())
    result = run_cli(["migrate"], base_environment(dsn, redis_server, redis_prefix))
    assert result.returncode == 0, result.stderr
    return dsn


@pytest.fixture(scope="session")
def environment(database_url: str, redis_server: str, redis_prefix: str) -> dict[str, str]:
    return base_environment(database_url, redis_server, redis_prefix)


# A private primary and synchronous standby of a test's own, for the failover tests.
from tests.pg_pair import pg_pair  # noqa: E402, F401
