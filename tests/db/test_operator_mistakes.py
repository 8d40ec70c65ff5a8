"""An operator's mistakes get one line that says what is wrong and what to do, and a non-zero exit;
never a traceback (issue 13, item 8). Tried as a new user would: every CLI command and every service,
with a setting that cannot work, a database that does not exist or is not migrated, a port in use."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from tests.conftest import ROOT, FreshDatabases, base_environment, run_cli

CLI_COMMANDS = [
    ["users", "add", "someone", "--role", "user"],
    ["users", "api-key", "Admin"],
    ["users", "api-key", "Admin", "--revoke"],
    ["users", "disable", "Admin"],
    ["users", "enable", "Admin"],
    ["users", "revoke", "Admin"],
    ["apps", "add", "app1"],
    ["audit"],
]
SERVICES = ["gateway", "issuer", "registry", "sweeper"]


def one_line(stderr: str) -> str:
    """The one line a person reads: the only one, but for a service's JSON log line of starting."""
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("{")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def run_service(name: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A service that must refuse to start: it exits by itself, well before the timeout."""
    return subprocess.run(
        [sys.executable, "-m", name],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def unmigrated(fresh_databases: FreshDatabases, redis_server: str) -> dict[str, str]:
    """An environment whose database exists but holds no TokenHub schema."""
    name = fresh_databases.name()

    async def create() -> None:
        conn = await asyncpg.connect(fresh_databases.server_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return base_environment(fresh_databases.dsn(name), redis_server, "unused:")


@pytest.fixture
def missing(fresh_databases: FreshDatabases, redis_server: str) -> dict[str, str]:
    """An environment whose database does not exist (named, never created)."""
    return base_environment(fresh_databases.dsn(fresh_databases.name()), redis_server, "unused:")


@pytest.mark.parametrize(
    ("database", "why"), [("missing", "does not exist"), ("unmigrated", "has no TokenHub schema yet")]
)
def test_every_command_against_a_database_it_cannot_use_says_run_migrate(
    request: pytest.FixtureRequest, database: str, why: str
) -> None:
    env: dict[str, str] = request.getfixturevalue(database)
    with ThreadPoolExecutor(len(CLI_COMMANDS)) as pool:
        results = list(pool.map(lambda args: run_cli(args, env, stdin="pw\n"), CLI_COMMANDS))
    for args, result in zip(CLI_COMMANDS, results, strict=True):
        assert result.returncode == 1, (args, result.stderr)
        line = one_line(result.stderr)
        assert why in line, args
        assert "run `tokenhub migrate` first" in line, args


@pytest.mark.parametrize("service", ["registry", "sweeper"])
def test_a_service_whose_database_is_missing_or_unmigrated_says_so_and_exits(
    missing: dict[str, str], unmigrated: dict[str, str], service: str
) -> None:
    for env, why in ((missing, "does not exist"), (unmigrated, "has no TokenHub schema yet")):
        result = run_service(service, {**env, "REGISTRY_PORT": "0", "SWEEPER_PORT": "0"})
        assert result.returncode == 1, result.stderr
        line = one_line(result.stderr)
        assert line.startswith(f"{service}: database ")
        assert why in line
        assert "run `tokenhub migrate` first" in line


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TOKENHUB_SEAL_KEY", "", "TOKENHUB_SEAL_KEY: the seal key must be 32 bytes"),
        ("TOKENHUB_SEAL_KEY", "not base64!", "TOKENHUB_SEAL_KEY: is not valid base64"),
        ("GATEWAY_PORT", "eighty", "GATEWAY_PORT: Input should be a valid integer"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: must be a redis://"),
        ("DATABASE_URL", "tokenhub", "DATABASE_URL: must be a postgresql:// URL"),
        ("TOKENHUB_TRUSTED_PROXIES", "10.0.0.1/8", "TOKENHUB_TRUSTED_PROXIES: 10.0.0.1/8 has host bits set"),
    ],
)
def test_bad_settings_are_one_line_naming_the_variable_everywhere(
    environment: dict[str, str], variable: str, value: str, says: str
) -> None:
    env = {**environment, variable: value}
    commands = (["up"], ["migrate"], ["users", "add", "x", "--role", "user"])
    # Each process spends its time importing; side by side, the seven take the time of about two.
    with ThreadPoolExecutor(len(commands) + len(SERVICES)) as pool:
        cli = [pool.submit(run_cli, args, env) for args in commands]
        services = [pool.submit(run_service, service, env) for service in SERVICES]
    for args, done in zip(commands, cli, strict=True):
        result = done.result()
        assert result.returncode == 2, (args, result.stderr)
        assert one_line(result.stderr).startswith(f"tokenhub: error: bad settings: {says}"), result.stderr
    for service, done in zip(SERVICES, services, strict=True):
        result = done.result()
        assert result.returncode == 2, (service, result.stderr)
        assert one_line(result.stderr).startswith(f"{service}: bad settings: {says}"), result.stderr


def test_a_seal_key_is_never_echoed(environment: dict[str, str]) -> None:
    secret_looking = "c2VjcmV0LXNlYWwta2V5LXRoYXQtaXMtdG9vLXNob3J0"  # base64, but not 32 bytes
    result = run_cli(["migrate"], {**environment, "TOKENHUB_SEAL_KEY": secret_looking})
    assert result.returncode == 2
    assert secret_looking not in result.stderr


def test_a_port_in_use_names_the_variable(environment: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for service, variable in (("issuer", "ISSUER_PORT"), ("gateway", "GATEWAY_METRICS_PORT")):
            result = run_service(
                service,
                {
                    **environment,
                    variable: str(port),
                    "GATEWAY_PORT": "0",
                    "ISSUER_PORT": str(port) if variable == "ISSUER_PORT" else "0",
                },
            )
            assert result.returncode == 1, result.stderr
            line = one_line(result.stderr)
            assert line.startswith(f"{service}: cannot listen on 127.0.0.1:{port}"), result.stderr
            assert f"set {variable} to a free port" in line


def test_a_postgres_that_does_not_answer_is_one_line(environment: dict[str, str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    env = {
        **environment,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/tokenhub",
        "TOKENHUB_STORE_TIMEOUT": "1",
    }
    result = run_cli(["users", "add", "x", "--role", "user"], env)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert (
        f"PostgreSQL does not answer at DATABASE_URL (postgresql://postgres@127.0.0.1:{port}/tokenhub)"
        in line
    )
