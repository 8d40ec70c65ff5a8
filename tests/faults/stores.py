"""A Postgres server and a Redis server of the fault tests' own, so that a test may stop them.

The run's shared servers (127.0.0.1:5432, :6379) are never touched. Each server here is a child
process started by this module, stopped by its own PID, and its files live in a temporary
directory that is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

# Only the `postgres` account may own the files when we run as root: initdb and postgres refuse root.
POSTGRES_ACCOUNT = "postgres"


def postgres_bin_dir() -> Path:
    """The newest installed server's binaries (Debian's layout first, then whatever PATH has)."""
    installed = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if path.parent.parent.name.isdigit()
    ]
    if installed:
        return max(installed, key=lambda bin_dir: int(bin_dir.parent.name))
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("the fault tests need PostgreSQL's server binaries (initdb, postgres)")
    return Path(initdb).parent


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class PrivatePostgres:
    root: Path
    port: int
    bin_dir: Path
    account: str | None  # who the server runs as; None: the user running the tests
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls) -> PrivatePostgres:
        account = POSTGRES_ACCOUNT if os.geteuid() == 0 else None
        # Not under pytest's tmp_path: its parent directories are private to the user running
        # pytest, and the server runs as another account.
        root = Path(tempfile.mkdtemp(prefix="tokenhub-faults-pg-"))
        server = cls(root, free_port(), postgres_bin_dir(), account)
        try:
            server.socket_dir.mkdir()
            if account is not None:
                shutil.chown(root, account, account)
                shutil.chown(server.socket_dir, account, account)
            initdb = subprocess.run(
                [
                    str(server.bin_dir / "initdb"),
                    "--pgdata",
                    str(server.data_dir),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ],
                cwd=root,
                user=account,
                group=account,
                extra_groups=[] if account is not None else None,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if initdb.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sockets"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        assert not self.running, "the private Postgres is already running"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.socket_dir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # The machine does not crash during a test; only the server process stops.
                    "-c",
                    "fsync=off",
                    "-c",
                    "shared_buffers=16MB",
                ],
                cwd=self.root,
                user=self.account,
                group=self.account,
                extra_groups=[] if self.account is not None else None,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{_tail(self.log_path)}")
            probe = subprocess.run(
                [
                    str(self.bin_dir / "pg_isready"),
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ],
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready after {timeout}s:\n{_tail(self.log_path)}")

    def stop(self, sig: int = signal.SIGQUIT) -> None:
        """SIGQUIT is Postgres's immediate shutdown: every connection drops at once and the next
        start replays the WAL, as after a crash; SIGINT (fast) would first write a checkpoint."""
        _stop(self.proc, sig)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateRedis:
    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path) -> PrivateRedis:
        return cls(root, free_port())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        assert not self.running, "the private Redis is already running"
        with self.log_path.open("ab") as log:
            # No persistence: a restarted server is empty, the harshest case for the issuer's state.
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready(timeout)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}:\n{_tail(self.log_path)}"
                )
            if self._pong():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server not ready after {timeout}s:\n{_tail(self.log_path)}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)
