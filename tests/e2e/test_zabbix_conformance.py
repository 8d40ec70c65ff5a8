"""Transcripts recorded from a real Zabbix 6.0.14, replayed against TokenHub.

- the handbook's shared transcript (../shared/conformance/zabbix), 77 steps;
- our own (tests/conformance/zabbix/transcript-extra-6.0.14.jsonl), recorded from the real Zabbix
  started by `zabbix-up` with `record.py record scenario-extra.json URL`: validation edge cases,
  envelope rules and roles that the shared one does not cover.

Each replay gets a world of its own (users with fixed ids, provisioned with the real CLI in a
fresh database), then `record.py check` from the handbook's folder replays every step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FreshDatabases, base_environment, run_cli
from tests.e2e.harness import Cluster, running_cluster

pytestmark = pytest.mark.e2e

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "zabbix"
TRANSCRIPTS = {
    "shared": CONFORMANCE / "transcript-6.0.14.jsonl",
    "extra": Path(__file__).resolve().parents[1] / "conformance" / "zabbix" / "transcript-extra-6.0.14.jsonl",
}


def provision_world(env: dict[str, str]) -> None:
    """The users of world.json, in id order; Admin (id 1) is the bootstrap super admin."""
    world = json.loads((CONFORMANCE / "world.json").read_text())
    for name, user in sorted(world["users"].items(), key=lambda item: item[1]["id"]):
        if user["id"] == 1:
            continue
        result = run_cli(
            ["users", "add", name, "--role", user["role"], "--password-stdin"], env, user["password"]
        )
        assert result.returncode == 0, result.stderr
        assert int(result.stdout) == user["id"], (
            f"{name} got id {result.stdout.strip()}, the world says {user['id']}"
        )


@pytest.fixture
def zabbix_world(
    fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Cluster]:
    env = base_environment(fresh_databases.dsn(fresh_databases.name()), redis_server, redis_prefix + "zbx:")
    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    provision_world(env)
    with running_cluster(env, tmp_path) as cluster:
        yield cluster


@pytest.mark.parametrize("transcript", sorted(TRANSCRIPTS))
def test_transcript_of_zabbix_6_0_14_passes_every_step(zabbix_world: Cluster, transcript: str) -> None:
    path = TRANSCRIPTS[transcript]
    assert path.exists(), f"transcript missing: {path}"
    steps = sum(1 for line in path.read_text().splitlines() if line.strip())
    assert steps >= 77
    record_py = str(CONFORMANCE / "record.py")
    result = subprocess.run(
        [sys.executable, record_py, "check", str(path), zabbix_world.gateway_url + "/api_jsonrpc.php"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-1] == f"{steps} passed, 0 failed", (
        result.stdout + result.stderr
    )
    assert result.returncode == 0
