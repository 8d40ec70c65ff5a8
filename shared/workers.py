"""Several processes of one service on one machine, sharing its port.

Python runs one event loop per process; a service with `<SERVICE>_WORKERS=N` (N > 1) starts N
copies of itself that each listen on the same address with SO_REUSEPORT, so the kernel spreads new
connections over them and a box with more cores than services uses them. The process started by
the operator only supervises: it passes SIGTERM and SIGINT on, restarts a worker that dies on its
own, and exits when they are all gone. A worker that exits with an error status within
`EARLY_EXIT_S` of starting (bad settings, a port it cannot use) is not restarted: its one-line error
is the answer, and the others are stopped, as `tokenhub up` does with services. One killed by a
signal is always started again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

# Set in each worker's environment: its number (0, 1, ...). Its presence makes `serve` listen
# instead of supervising.
WORKER_VARIABLE = "TOKENHUB_WORKER"
EARLY_EXIT_S = 5.0
# How long the workers get to finish what they hold after SIGTERM before they are killed: above
# each worker's own bound on draining and shutting down.
STOP_GRACE_S = 30.0


def is_worker() -> bool:
    return WORKER_VARIABLE in os.environ


def supervise(service: str, workers: int) -> int:
    """Run `python -m <service>` `workers` times until told to stop; the exit status to end with."""
    stop: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def start(index: int) -> tuple[subprocess.Popen[bytes], float]:
        env = dict(os.environ, **{WORKER_VARIABLE: str(index)})
        return subprocess.Popen([sys.executable, "-m", service], env=env), time.monotonic()

    running = {index: start(index) for index in range(workers)}
    status = 0
    while not stop:
        for index, (proc, started) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            if time.monotonic() - started < EARLY_EXIT_S and code > 0:
                sys.stderr.write(f"{service}: worker {index} could not start (status {code}); stopping\n")
                status = code
                stop.append(0)
                break
            sys.stderr.write(f"{service}: worker {index} exited with status {code}; starting it again\n")
            running[index] = start(index)
        time.sleep(0.2)
    for proc, _ in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc, _ in running.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return status
