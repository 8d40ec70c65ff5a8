"""Starts the real services as child processes on free loopback ports, and stops them by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.ports import free_port

Service = Literal["gateway", "issuer", "registry", "sweeper"]
SERVICES: tuple[Service, ...] = ("registry", "issuer", "gateway", "sweeper")
PORT_VARIABLE: dict[Service, str] = {
    "gateway": "GATEWAY_PORT",
    "issuer": "ISSUER_PORT",
    "registry": "REGISTRY_PORT",
    "sweeper": "SWEEPER_PORT",
}


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class ServiceProcess:
    name: Service
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where its /metrics is: the gateway serves them on a port of their own, not the public one."""
        port = self.env["GATEWAY_METRICS_PORT"] if self.name == "gateway" else self.port
        return f"http://{self.host}:{port}/metrics"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.name], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if http_status(self.url + "/readyz") == 200:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    services: dict[Service, ServiceProcess] = field(default_factory=dict)

    def __getitem__(self, name: Service) -> ServiceProcess:
        return self.services[name]

    @property
    def gateway_url(self) -> str:
        return self["gateway"].url

    def logs(self) -> str:
        return "\n".join(s.log() for s in self.services.values())


def cluster_environment(base_env: dict[str, str], ports: dict[Service, int]) -> dict[str, str]:
    env = dict(base_env)
    env.update({PORT_VARIABLE[name]: str(port) for name, port in ports.items()})
    env["GATEWAY_METRICS_PORT"] = str(free_port())
    env["TOKENHUB_ISSUER_URL"] = f"http://127.0.0.1:{ports['issuer']}"
    env["TOKENHUB_REGISTRY_URL"] = f"http://127.0.0.1:{ports['registry']}"
    # A short backend timeout keeps outage tests quick; it is still far above a healthy call.
    env.setdefault("TOKENHUB_BACKEND_TIMEOUT", "3")
    # DEBUG: every request's access line, which the tests read to follow request ids.
    env.setdefault("TOKENHUB_LOG_LEVEL", "DEBUG")
    return env


@contextlib.contextmanager
def running_cluster(
    base_env: dict[str, str], log_dir: Path, services: tuple[Service, ...] = SERVICES
) -> Iterator[Cluster]:
    """The services (all four by default) on free ports, stopped by PID on the way out."""
    ports = {name: free_port() for name in SERVICES}
    env = cluster_environment(base_env, ports)
    cluster = Cluster(
        {name: ServiceProcess(name, ports[name], env, log_dir / f"{name}.log") for name in services}
    )
    try:
        for service in cluster.services.values():
            service.start()
        for service in cluster.services.values():
            service.wait_ready()
        yield cluster
    finally:
        for service in cluster.services.values():
            service.stop()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command may hold spaces and parentheses: the fields after its closing one.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Topology:
    """Several replicas of each service, as an operator scaling out runs them."""

    registries: list[ServiceProcess]
    issuers: list[ServiceProcess]
    gateways: list[ServiceProcess]

    @property
    def processes(self) -> list[ServiceProcess]:
        return [*self.registries, *self.issuers, *self.gateways]

    def logs(self) -> str:
        return "\n".join(p.log() for p in self.processes)


def replica_urls(replicas: list[ServiceProcess]) -> str:
    return ",".join(r.url for r in replicas)


@contextlib.contextmanager
def running_topology(
    base_env: dict[str, str],
    log_dir: Path,
    *,
    registries: int = 1,
    issuers: int = 1,
    gateways: int = 1,
    registry_hosts: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> Iterator[Topology]:
    """Replicas on free loopback ports; clients reach them through comma-separated URL lists. With
    `registry_hosts`, the registries listen on those addresses (one each) on one shared port, the
    way replicas behind one DNS name do. Stopped by PID on the way out."""
    env = {**base_env, "TOKENHUB_BACKEND_TIMEOUT": "3", "TOKENHUB_LOG_LEVEL": "DEBUG", **(extra_env or {})}

    def process(name: Service, index: int, port: int, host: str = "127.0.0.1", **more: str) -> ServiceProcess:
        own = dict(env, TOKENHUB_HOST=host, **{PORT_VARIABLE[name]: str(port)}, **more)
        return ServiceProcess(name, port, own, log_dir / f"{name}-{index}.log", host=host)

    if registry_hosts:
        shared_port = free_port()
        registry_list = [process("registry", i, shared_port, host) for i, host in enumerate(registry_hosts)]
    else:
        registry_list = [process("registry", i, free_port()) for i in range(registries)]
    registry_url = replica_urls(registry_list)
    issuer_list = [
        process("issuer", i, free_port(), TOKENHUB_REGISTRY_URL=registry_url) for i in range(issuers)
    ]
    gateway_list = [
        process(
            "gateway",
            i,
            free_port(),
            TOKENHUB_REGISTRY_URL=registry_url,
            TOKENHUB_ISSUER_URL=replica_urls(issuer_list),
            GATEWAY_METRICS_PORT=str(free_port()),
        )
        for i in range(gateways)
    ]
    topology = Topology(registry_list, issuer_list, gateway_list)
    try:
        for group in (registry_list, issuer_list, gateway_list):
            for replica in group:
                replica.start()
            for replica in group:
                replica.wait_ready()
        yield topology
    finally:
        for replica in topology.processes:
            replica.stop()
