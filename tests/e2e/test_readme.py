"""The README's shell examples work when pasted (issue 13, item 8): every ```sh block, in order, is
run as one shell session against a live stack of its own, so the document cannot drift from the
product. A block that cannot run here says why, just above it, in the README itself."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN, FreshDatabases, base_environment, run_cli
from tests.e2e.harness import Cluster, running_cluster

README = ROOT / "README.md"
SKIP_MARK = re.compile(r"<!-- not run by the README test: (?P<why>[^>]+?) -->\s*$")
BLOCK = re.compile(r"^```sh\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def shell_blocks(text: str) -> list[tuple[str, str | None]]:
    """Every ```sh block: its text, and why it is not run (None: it is)."""
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = SKIP_MARK.match(before)
        blocks.append((match["body"], mark["why"].strip() if mark else None))
    return blocks


def test_every_block_that_is_not_run_says_why() -> None:
    blocks = shell_blocks(README.read_text())
    assert len(blocks) >= 4
    skipped = [why for _, why in blocks if why is not None]
    assert all(len(why) > 10 for why in skipped), skipped
    assert len(skipped) <= 2, "most examples must run"


@pytest.fixture
def stack(
    fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Cluster]:
    """A stack with a database of its own: the README creates users and apps by fixed names."""
    env = base_environment(
        fresh_databases.dsn(fresh_databases.name()), redis_server, f"{redis_prefix}readme:"
    )
    assert run_cli(["migrate"], env).returncode == 0
    with running_cluster(env, tmp_path) as cluster:
        yield cluster


def test_the_readme_examples_run_against_a_live_stack(stack: Cluster) -> None:
    script = "\n".join(body for body, why in shell_blocks(README.read_text()) if why is None)
    env = dict(stack["gateway"].env)
    env["GATEWAY"] = stack.gateway_url.removeprefix("http://")
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    # What the examples print: a Zabbix token listing, a Wialon session, vouchers, a pair checked and
    # refreshed, then the revoked pair refused and the account's trail.
    assert '"name": "ci"' in out
    assert '"cabinetUserId"' in out
    for event in ("login_succeeded", "user_revoked", "user_disabled"):
        assert f'["{event}",' in out
