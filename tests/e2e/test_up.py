"""`tokenhub up` (what `make run` calls): one command, four processes, stopped together."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TOKENHUB, FreshDatabases, base_environment
from tests.e2e.harness import PORT_VARIABLE, SERVICES, children, http_status, pid_alive
from tests.ports import free_port

pytestmark = pytest.mark.e2e


def test_up_creates_the_database_starts_four_services_and_stops_them_on_sigterm(
    fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = base_environment(fresh_databases.dsn(fresh_databases.name()), redis_server, redis_prefix)
    ports = {name: free_port() for name in SERVICES}
    env.update({PORT_VARIABLE[name]: str(port) for name, port in ports.items()})
    stderr_path = tmp_path / "up.log"
    with stderr_path.open("w") as stderr:
        up = subprocess.Popen([TOKENHUB, "up"], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline and http_status(f"http://127.0.0.1:{ports['gateway']}/healthz") != 200
        ):
            assert up.poll() is None, stderr_path.read_text()
            time.sleep(0.2)
        for name in SERVICES:  # the gateway's backends URLs followed the configured ports
            while (
                time.monotonic() < deadline and http_status(f"http://127.0.0.1:{ports[name]}/readyz") != 200
            ):
                time.sleep(0.2)
            assert http_status(f"http://127.0.0.1:{ports[name]}/readyz") == 200, (
                name,
                stderr_path.read_text(),
            )
        log = stderr_path.read_text()
        assert "created database" in log
        assert "applied 0001_initial" in log
        pids = {name: int(pid) for name, pid in re.findall(r"(\w+) \(pid (\d+)\)", log)}
        assert set(pids) == set(SERVICES)
        assert all(pid_alive(pid) for pid in pids.values())
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=30)
    assert code == 0
    assert not any(pid_alive(pid) for pid in pids.values())
    assert http_status(f"http://127.0.0.1:{ports['gateway']}/healthz") is None


def test_up_says_plainly_what_is_missing(redis_server: str, redis_prefix: str) -> None:
    closed = free_port()
    env = base_environment(
        f"postgresql://postgres@127.0.0.1:{closed}/tokenhub", f"redis://127.0.0.1:{closed}/0", "x:"
    )
    env["TOKENHUB_STORE_TIMEOUT"] = "1"
    result = subprocess.run(
        [TOKENHUB, "up"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "PostgreSQL does not answer at DATABASE_URL" in result.stderr
    assert "Redis does not answer at REDIS_URL" in result.stderr


def test_up_runs_the_workers_it_is_asked_for(
    fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = base_environment(fresh_databases.dsn(fresh_databases.name()), redis_server, redis_prefix)
    ports = {name: free_port() for name in SERVICES}
    env.update({PORT_VARIABLE[name]: str(port) for name, port in ports.items()})
    stderr_path = tmp_path / "up.log"
    with stderr_path.open("w") as stderr:
        up = subprocess.Popen(
            [TOKENHUB, "up", "--workers", "gateway=2,registry=2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while http_status(f"http://127.0.0.1:{ports['gateway']}/readyz") != 200:
            assert up.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, stderr_path.read_text()
            time.sleep(0.2)
        pids = {name: int(pid) for name, pid in re.findall(r"(\w+) \(pid (\d+)\)", stderr_path.read_text())}
        for name, expected in (("gateway", 2), ("registry", 2), ("issuer", 0), ("sweeper", 0)):
            assert len(children(pids[name])) == expected, name
            workers += children(pids[name])
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=60)
    assert code == 0
    assert not any(pid_alive(pid) for pid in workers)


def test_up_refuses_a_bad_workers_list_in_one_line(redis_server: str, redis_prefix: str) -> None:
    env = base_environment("postgresql://postgres@127.0.0.1:5432/postgres", redis_server, redis_prefix)
    result = subprocess.run(
        [TOKENHUB, "up", "--workers", "gateway=2,sweeper=3"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("tokenhub up: error: argument --workers: 'sweeper=3'")
    )
