"""A private Redis Cluster for the tests: six `redis-server` processes of the machine's binary (three
masters, one replica each), joined with `redis-cli --cluster create`, stopped by PID.

Ports are free ports below 55535 (a cluster node also listens on its port + 10000, the cluster bus),
and below the kernel's ephemeral range where it allows, so no outgoing connection takes one first.
`cluster-node-timeout` is short (2 s by default), so that a killed master's replica is promoted in
about three seconds and a failover test stays short.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import bindable, ephemeral_low

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"
NODE_TIMEOUT_MS = 2000
# The cluster bus listens on port + 10000, which must stay a valid port.
HIGHEST_PORT = 65535 - 10000


def missing_binaries() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    missing = [name for name in (REDIS_SERVER, REDIS_CLI) if shutil.which(name) is None]
    return f"{' and '.join(missing)} not found on PATH" if missing else None


def free_cluster_port(taken: set[int]) -> int:
    """A free port whose bus port (+10000) is free too, both below the ephemeral range where it
    allows (so that no outgoing connection takes one between this check and the server's bind),
    and always below 55535."""
    highest = min(HIGHEST_PORT, ephemeral_low() - 10000) - 1
    lowest = 10000 if highest > 12000 else 20000
    highest = highest if highest > 12000 else HIGHEST_PORT - 1
    for _ in range(1000):
        port = random.randint(lowest, highest)
        if port in taken or port + 10000 in taken:
            continue
        if bindable(port) and bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def cli(port: int, *args: str, timeout: float = 10.0) -> str:
    result = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.stdout


def info_field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key == name:
            return value
    return None


@dataclass
class Node:
    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, node_timeout_ms: int) -> None:
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / f"nodes-{self.port}.conf"),
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Only the process this fixture started, by its PID."""
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def role(self) -> str | None:
        return info_field(cli(self.port, "info", "replication"), "role")


@dataclass
class RedisCluster:
    nodes: list[Node]
    node_timeout_ms: int
    directory: Path
    replicas: int = 1
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """What REDIS_URL names: any one node (here the first live one)."""
        node = next(n for n in self.nodes if n.alive)
        return f"redis://127.0.0.1:{node.port}/0"

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def masters(self) -> list[Node]:
        return [n for n in self.nodes if n.alive and n.role() == "master"]

    def state_ok(self, via: Node | None = None) -> bool:
        """cluster_state:ok as every live node (or `via`) sees it."""
        nodes = [via] if via is not None else [n for n in self.nodes if n.alive]
        return all(info_field(cli(n.port, "cluster", "info"), "cluster_state") == "ok" for n in nodes)

    def wait_ok(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state_ok() and self._replicas_linked():
                return
            time.sleep(0.1)
        raise TimeoutError(f"Redis Cluster not ok after {timeout}s:\n{self.logs()}")

    def _replicas_linked(self) -> bool:
        """Every slot range has its replicas as every live node answers CLUSTER SLOTS (what clients
        learn the topology from; Redis lists a replica there only once it has replicated data)."""
        for node in self.nodes:
            if not node.alive:
                continue
            ranges = _cluster_slots(node.port)
            if not ranges or any(len(r) - 3 < self.replicas for r in ranges):
                return False
        return True

    def cluster_nodes(self) -> list[list[str]]:
        """CLUSTER NODES as a live node sees it, one list of fields per node."""
        node = next(n for n in self.nodes if n.alive)
        return [line.split() for line in cli(node.port, "cluster", "nodes").splitlines() if line.strip()]

    def master_of_slot(self, slot: int) -> Node:
        """The master that serves `slot` now, as a live node sees the cluster."""
        for fields in self.cluster_nodes():
            if "master" not in fields[2].split(","):
                continue
            for span in fields[8:]:
                if span.startswith("["):  # a slot being migrated
                    continue
                low, _, high = span.partition("-")
                if int(low) <= slot <= int(high or low):
                    return self.node(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        raise LookupError(f"no master serves slot {slot}")

    def replica_of(self, master: Node) -> Node:
        master_id = cli(master.port, "cluster", "myid").strip()
        for fields in self.cluster_nodes():
            if fields[3] == master_id and "slave" in fields[2].split(","):
                return self.node(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        raise LookupError(f"no replica of {master.address}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.directory.glob("redis-*.log"))
        )


@contextlib.contextmanager
def running_redis_cluster(
    directory: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS
) -> Iterator[RedisCluster]:
    """Start `masters * (1 + replicas)` nodes, join them, wait for cluster_state:ok; stop them all by
    PID on the way out."""
    taken: set[int] = set()
    nodes = []
    for _ in range(masters * (1 + replicas)):
        port = free_cluster_port(taken)
        taken |= {port, port + 10000}
        nodes.append(Node(port, directory))
    cluster = RedisCluster(nodes, node_timeout_ms, directory, replicas)
    try:
        for node in nodes:
            node.start(node_timeout_ms)
            assert node.proc is not None
            cluster.pids.append(node.proc.pid)
        for node in nodes:
            _wait_answers(node, cluster)
        created = subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(n.address for n in nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        for master in cluster.masters():  # data to replicate: see _replicas_linked
            low = int(master_ranges(master.port)[0][0])
            cli(master.port, "set", key_in_slot(low), "1")
        cluster.wait_ok()
        yield cluster
    finally:
        cluster.stop()


def _wait_answers(node: Node, cluster: RedisCluster, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.alive:
            raise RuntimeError(f"redis-server on {node.port} exited:\n{cluster.logs()}")
        if cli(node.port, "ping").strip() == "PONG":
            return
        time.sleep(0.05)
    raise TimeoutError(f"redis-server on {node.port} does not answer:\n{cluster.logs()}")


def _cluster_slots(port: int) -> list[list[str]]:
    """CLUSTER SLOTS in redis-cli's flat output: [low, high, master..., replica...] per range, each
    node as "host:port"."""
    lines = cli(port, "cluster", "slots").splitlines()
    ranges: list[list[str]] = []
    i = 0
    while i + 1 < len(lines):
        if not lines[i].strip().isdigit():
            break
        current = [lines[i].strip(), lines[i + 1].strip()]
        i += 2
        # Each node: host, port, id (and, from Redis 7, a possibly empty map of extra fields).
        while i + 2 < len(lines) and not _is_range_start(lines, i):
            host, node_port = lines[i].strip(), lines[i + 1].strip()
            current.append(f"{host}:{node_port}")
            i += 3
            while i < len(lines) and not lines[i].strip():
                i += 1
        ranges.append(current)
    return ranges


def _is_range_start(lines: list[str], i: int) -> bool:
    return lines[i].strip().isdigit() and i + 1 < len(lines) and lines[i + 1].strip().isdigit()


def master_ranges(port: int) -> list[tuple[int, int]]:
    """The slot ranges a master serves, from its own CLUSTER NODES line."""
    for line in cli(port, "cluster", "nodes").splitlines():
        fields = line.split()
        if len(fields) > 2 and "myself" in fields[2]:
            spans = [s.partition("-") for s in fields[8:] if not s.startswith("[")]
            return [(int(low), int(high or low)) for low, _, high in spans]
    return []


def key_in_slot(slot: int) -> str:
    """A key that hashes to `slot`."""
    from redis.crc import key_slot

    i = 0
    while key_slot(f"k{i}".encode()) != slot:
        i += 1
    return f"k{i}"
