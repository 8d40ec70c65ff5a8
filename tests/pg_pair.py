"""A private Postgres pair for failover tests: a primary and a streaming standby of its own, the way
Patroni, pg_auto_failover or a managed Postgres run one, from the machine's own server binaries.

- the primary: `initdb` (trust for 127.0.0.1, replication included), free port, `wal_level=replica`,
  `synchronous_standby_names='standby1'` with `synchronous_commit=on`: a commit is acknowledged only
  once the standby has flushed it;
- the standby: `pg_basebackup -R` of the primary, connecting as `application_name=standby1`;
- both started with `pg_ctl` (so the postmaster is a daemon, as in production), as the `postgres`
  account when the tests run as root (the binaries refuse root), in a temporary directory owned by
  it; stopped at the end by `pg_ctl stop -m immediate`, and any process left of a killed server by
  its own PID.

`kill_primary` is a crash (kill -9 of the postmaster); `promote_standby` is what failover tooling
does next: it clears the standby's `synchronous_standby_names` (copied from the primary: left alone,
the new primary would wait for a standby that does not exist and no commit would return) and runs
`pg_ctl promote`. Missing binaries skip the test that asked, saying which.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.harness import children, pid_alive
from tests.ports import free_port

POSTGRES_ACCOUNT = "postgres"
BINARIES = ("initdb", "pg_ctl", "pg_basebackup", "postgres", "psql")
STANDBY_NAME = "standby1"  # the application_name the primary waits for


def find_bin_dir() -> Path | None:
    """The newest installed server's binaries (Debian's layout first, then PATH), or None."""
    debian = Path("/usr/lib/postgresql").glob("*/bin/initdb")
    installed = sorted(
        (path.parent for path in debian if path.parent.parent.name.isdigit()),
        key=lambda bin_dir: int(bin_dir.parent.name),
    )
    if installed:
        return installed[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb is not None else None


def missing_binaries() -> str | None:
    """Why a pair cannot be made here, or None when it can."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) on this machine"
    absent = [name for name in BINARIES if not (bin_dir / name).exists()]
    if absent:
        return f"{bin_dir} lacks {', '.join(absent)}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(POSTGRES_ACCOUNT)
        except KeyError:
            return f"running as root, and there is no {POSTGRES_ACCOUNT!r} account to run PostgreSQL as"
    return None


def started_at(pid: int) -> int | None:
    """When the process began (clock ticks after boot, from /proc), or None if it is gone: a PID
    and this tell one process from a later one that got the same PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields after the command's closing parenthesis; starttime is the 22nd field overall.
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class Node:
    """One server of the pair: its data directory, port and log."""

    name: str
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / self.name

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@{self.address}/{database}"

    def postmaster_pid(self) -> int | None:
        """The PID in postmaster.pid, if the file is there and that process lives."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def log(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class PgPair:
    root: Path
    bin_dir: Path
    account: str | None  # who the servers run as; None: whoever runs the tests
    primary: Node
    standby: Node
    # Processes of a killed postmaster (its backends, walsender...), as (PID, start time): they exit
    # by themselves once they see it gone; whatever is left at the end is stopped by these PIDs.
    orphans: list[tuple[int, int]] = field(default_factory=list)
    # Nodes whose postmaster was killed: their postmaster.pid is stale, never to be signalled again.
    killed: set[str] = field(default_factory=set)

    @classmethod
    def create(cls) -> PgPair:
        """Both servers made and running, the standby streaming synchronously."""
        reason = missing_binaries()
        if reason is not None:
            pytest.skip(f"no private Postgres pair: {reason}")
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        account = POSTGRES_ACCOUNT if os.geteuid() == 0 else None
        # Not under pytest's tmp_path: its parents are private to the user running pytest.
        root = Path(tempfile.mkdtemp(prefix="tokenhub-pg-pair-"))
        primary, standby = Node("primary", root, free_port()), Node("standby", root, free_port())
        pair = cls(root, bin_dir, account, primary, standby)
        try:
            (root / "sockets").mkdir()
            if account is not None:
                shutil.chown(root, account, account)
                shutil.chown(root / "sockets", account, account)
            pair._make_primary()
            pair._start(pair.primary)
            pair._make_standby()
            pair._start(pair.standby)
            pair.wait_streaming()
        except BaseException:
            pair.remove()
            raise
        return pair

    # --- running the binaries as the account -----------------------------------------------------

    def _run(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            cwd=self.root,
            user=self.account,
            group=self.account,
            extra_groups=[] if self.account is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            command = " ".join(args)
            raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _ctl(self, node: Node, *args: str) -> None:
        self._run("pg_ctl", "--pgdata", str(node.data_dir), *args, timeout=60)

    def _append_conf(self, node: Node, lines: list[str]) -> None:
        """Settings appended to the node's postgresql.auto.conf (the last line of a name wins)."""
        with (node.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("".join(f"{line}\n" for line in lines))

    def _make_primary(self) -> None:
        node = self.primary
        self._run(
            "initdb",
            "--pgdata",
            str(node.data_dir),
            "--username",
            "postgres",
            "--auth",  # trust for local and 127.0.0.1, replication connections included
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        self._append_conf(
            node,
            [
                "listen_addresses = '127.0.0.1'",
                f"port = {node.port}",
                f"unix_socket_directories = '{self.root / 'sockets'}'",
                "wal_level = replica",
                "max_wal_senders = 5",
                "wal_keep_size = '64MB'",
                "hot_standby = on",
                # A commit returns once the standby has flushed it: what the pair is for.
                f"synchronous_standby_names = '{STANDBY_NAME}'",
                "synchronous_commit = on",
                # The machine does not crash during a test; only server processes die.
                "fsync = off",
                "shared_buffers = '16MB'",
                "max_connections = 60",
            ],
        )

    def _make_standby(self) -> None:
        node = self.standby
        self._run(
            "pg_basebackup",
            "--pgdata",
            str(node.data_dir),
            "--dbname",
            f"host=127.0.0.1 port={self.primary.port} user=postgres application_name={STANDBY_NAME}",
            "--write-recovery-conf",
            "--wal-method",
            "stream",
            "--checkpoint",
            "fast",
            "--no-sync",
        )
        self._append_conf(
            node,
            [
                f"port = {node.port}",
                # Named here whatever -R wrote: the primary waits for this application_name.
                f"primary_conninfo = 'host=127.0.0.1 port={self.primary.port} user=postgres "
                f"application_name={STANDBY_NAME}'",
                "wal_receiver_status_interval = '1s'",
                "wal_retrieve_retry_interval = '1s'",
            ],
        )

    def _start(self, node: Node) -> None:
        try:
            self._ctl(node, "--log", str(node.log_path), "--wait", "start")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{node.name} log:\n{node.log()}") from None

    def _sql(self, node: Node, query: str) -> str:
        return self._run(
            "psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres", "-c", query
        ).strip()

    def wait_streaming(self, timeout: float = 60.0) -> None:
        """Until the primary sees the standby as its synchronous standby."""
        query = "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'"
        deadline = time.monotonic() + timeout
        while self._sql(self.primary, query) != "sync":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby never became synchronous:\n{self.standby.log()}")
            time.sleep(0.1)

    # --- the DSNs a test hands out -----------------------------------------------------------------

    def multi_host_dsn(self, database: str = "tokenhub") -> str:
        """Both hosts, the primary first, asking for the one that accepts writes."""
        return (
            f"postgresql://postgres@{self.primary.address},{self.standby.address}/{database}"
            "?target_session_attrs=read-write"
        )

    def migrate(self, env: dict[str, str], database: str = "tokenhub") -> dict[str, str]:
        """`tokenhub migrate` (the real CLI) with DATABASE_URL naming the primary, which creates the
        database; `env` with DATABASE_URL naming both hosts, for every TokenHub process of the test."""
        from tests.conftest import run_cli  # here: tests/conftest.py imports this module

        migrated = run_cli(["migrate"], {**env, "DATABASE_URL": self.primary.dsn(database)})
        assert migrated.returncode == 0, migrated.stderr
        return {**env, "DATABASE_URL": self.multi_host_dsn(database)}

    # --- failing over ------------------------------------------------------------------------------

    def kill_primary(self) -> int:
        """kill -9 of the primary's postmaster (its PID from postmaster.pid); the PID."""
        pid = self.primary.postmaster_pid()
        assert pid is not None, "the primary is not running"
        for child in children(pid):
            start = started_at(child)
            if start is not None:
                self.orphans.append((child, start))
        os.kill(pid, signal.SIGKILL)
        self.killed.add(self.primary.name)
        return pid

    def promote_standby(self) -> None:
        """What failover tooling does: no synchronous standby to wait for any more, then promote."""
        self._append_conf(self.standby, ["synchronous_standby_names = ''"])
        self._ctl(self.standby, "reload")
        self._ctl(self.standby, "--wait", "promote")

    # --- cleaning up -------------------------------------------------------------------------------

    def stop(self) -> None:
        for node in (self.primary, self.standby):
            if node.name not in self.killed and node.postmaster_pid() is not None:
                try:
                    self._ctl(node, "--mode", "immediate", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    pid = node.postmaster_pid()
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self._orphans_left() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self._orphans_left():
            os.kill(pid, signal.SIGKILL)

    def _orphans_left(self) -> list[int]:
        return [pid for pid, start in self.orphans if started_at(pid) == start]

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pg_pair() -> Iterator[PgPair]:
    """A fresh primary and synchronous standby of the test's own, stopped and removed afterwards."""
    pair = PgPair.create()
    try:
        yield pair
    finally:
        pair.remove()
