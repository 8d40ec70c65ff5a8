"""One stack for the fault tests: a private Postgres and Redis, migrated with `tokenhub migrate`,
the four services against them, and the accounts the load uses. Module-scoped because building it
costs seconds; a function-scoped fixture puts every part back up before each test, so a test that
fails half-way through an outage does not leave the next one a broken stack."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import base_environment, run_cli
from tests.e2e.harness import SERVICES, Cluster, running_cluster
from tests.faults.load import Credentials
from tests.faults.stores import PrivatePostgres, PrivateRedis

# The gateway's wait for an internal call (TOKENHUB_BACKEND_TIMEOUT): every answer bound derives from it.
BACKEND_TIMEOUT = 3.0
PEPPER = "faults-pepper-of-this-test-run"


@dataclass(frozen=True)
class Stack:
    cluster: Cluster
    postgres: PrivatePostgres
    redis: PrivateRedis
    env: dict[str, str]
    credentials: Credentials

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres.create()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis.create(tmp_path_factory.mktemp("faults-redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fault_environment(private_postgres: PrivatePostgres, private_redis: PrivateRedis) -> dict[str, str]:
    env = base_environment(private_postgres.dsn("tokenhub"), private_redis.url, "faults:")
    env.update(
        TOKENHUB_PEPPER=PEPPER,
        TOKENHUB_BACKEND_TIMEOUT=str(BACKEND_TIMEOUT),
        # The sweeper works all the time, so a kill -9 is likely to land in the middle of a pass.
        TOKENHUB_SWEEP_INTERVAL="0.5",
        # Refused and failed requests are still logged at INFO; the test reads them.
        TOKENHUB_LOG_LEVEL="INFO",
    )
    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    return env


@pytest.fixture(scope="module")
def fault_cluster(
    fault_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with running_cluster(fault_environment, tmp_path_factory.mktemp("faults-logs")) as cluster:
        yield cluster


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = run_cli(list(args), env, stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def _zabbix_api_token(gateway_url: str, username: str, password: str) -> str:
    """An API token made the way a Zabbix user makes one: log in, token.create, token.generate."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def rpc(method: str, params: object, auth: str | None = None) -> object:
            body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1, "auth": auth}
            if auth is None:
                del body["auth"]
            headers = {"Content-Type": "application/json-rpc"}
            async with http.post(gateway_url + "/api_jsonrpc.php", json=body, headers=headers) as r:
                reply = await r.json(content_type=None)
            assert "result" in reply, reply
            return reply["result"]

        session = await rpc("user.login", {"username": username, "password": password})
        assert isinstance(session, str)
        created = await rpc("token.create", {"name": "faults-load"}, session)
        assert isinstance(created, dict)
        generated = await rpc("token.generate", created["tokenids"], session)
        assert isinstance(generated, list)
        token: str = generated[0]["token"]
        return token


@pytest.fixture(scope="module")
async def fault_stack(
    fault_cluster: Cluster,
    fault_environment: dict[str, str],
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
) -> Stack:
    env = fault_environment
    password = f"Faults-{secrets.token_hex(6)}"
    tag = secrets.token_hex(3)

    def accounts() -> tuple[str, int, str, str, str]:
        email = f"chat-{tag}@example.com"
        chat_id = int(
            _cli(
                env,
                "users",
                "add",
                f"chat-{tag}",
                "--role",
                "user",
                "--email",
                email,
                "--password-stdin",
                stdin=password,
            )
        )
        app_id = f"app-{tag}"
        # Far above what the load makes: the quota is not what these tests are about.
        _cli(env, "apps", "add", app_id, "--daily-quota", "1000000")
        _cli(env, "users", "add", f"zbx-{tag}", "--role", "user", "--password-stdin", stdin=password)
        _cli(env, "users", "add", f"hotspot-{tag}", "--role", "admin")
        api_key = _cli(env, "users", "api-key", f"hotspot-{tag}")
        return email, chat_id, app_id, f"zbx-{tag}", api_key

    email, chat_id, app_id, zabbix_user, api_key = await asyncio.to_thread(accounts)
    credentials = Credentials(
        chatapp_email=email,
        chatapp_password=password,
        chatapp_user_id=chat_id,
        chatapp_app_id=app_id,
        zabbix_api_token=await _zabbix_api_token(fault_cluster.gateway_url, zabbix_user, password),
        hotspot_api_key=api_key,
    )
    return Stack(fault_cluster, private_postgres, private_redis, env, credentials)


@pytest.fixture
async def stack(fault_stack: Stack) -> Stack:
    """The module's stack with every part up: whatever an earlier test left stopped is started."""
    await asyncio.to_thread(_everything_up, fault_stack)
    return fault_stack


def _everything_up(stack: Stack) -> None:
    if not stack.postgres.running:
        stack.postgres.start()
    if not stack.redis.running:
        stack.redis.start()
    for name in SERVICES:
        service = stack.cluster[name]
        if service.proc is None or service.proc.poll() is not None:
            service.start()
    for name in SERVICES:
        stack.cluster[name].wait_ready()


def log_sizes(cluster: Cluster) -> dict[str, int]:
    return {name: _size(cluster[name].log_path) for name in SERVICES}


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
