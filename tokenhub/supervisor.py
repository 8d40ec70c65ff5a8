"""`tokenhub up`: the four services as child processes of one command, stopped together.

Fail-fast on purpose: if one service dies, the rest are stopped and `up` exits non-zero, so a
process manager (systemd, a terminal) sees the failure instead of a half-running TokenHub.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

from shared.settings import Service, Settings

SERVICES: tuple[Service, ...] = ("registry", "issuer", "gateway", "sweeper")
STOP_GRACE_S = 10.0


def child_environment(settings: Settings, environ: dict[str, str]) -> dict[str, str]:
    """The parent's environment, plus backend URLs that follow the configured ports unless set."""
    env = dict(environ)
    env.setdefault("TOKENHUB_ISSUER_URL", f"http://127.0.0.1:{settings.issuer_port}")
    env.setdefault("TOKENHUB_REGISTRY_URL", f"http://127.0.0.1:{settings.registry_port}")
    return env


def up(settings: Settings, environ: dict[str, str]) -> int:
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    env = child_environment(settings, environ)
    children = {name: subprocess.Popen([sys.executable, "-m", name], env=env) for name in SERVICES}
    print(
        "tokenhub up: "
        + ", ".join(f"{name} (pid {proc.pid})" for name, proc in children.items())
        + f"; gateway on http://{settings.host}:{settings.gateway_port}",
        file=sys.stderr,
        flush=True,
    )
    status = 0
    while not stop_requested:
        dead = [(name, proc.returncode) for name, proc in children.items() if proc.poll() is not None]
        if dead:
            for name, code in dead:
                print(f"tokenhub up: {name} exited with status {code}; stopping the others", file=sys.stderr)
            status = 1
            break
        time.sleep(0.2)
    _stop_all(list(children.values()))
    return status


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in children:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
