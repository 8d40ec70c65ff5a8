"""The one load generator of `make bench`: wrk (C, one thread), driven by a Lua script per scenario.

An asyncio generator in Python tops out near the rate of the bare aiohttp hello-world it is meant
to measure, which made the "ceiling" the generator's own; wrk on one thread costs a fraction of a
core at the same rate, so the hello-world's figure is the server's. Every scenario runs with the
same thread count and connections, after a warm-up run, bounded in time and in count, on loopback.

A scenario is a request (static, or with one number drawn per request), the text every good answer
contains, and optionally Lua of its own (the refresh scenario rotates a pool of refresh tokens).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

WARMUP_SECONDS = 1.0
# wrk's default of 2 s would count a 10,000-voucher createtokens as a timeout.
TIMEOUT_SECONDS = 30
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# CPU seconds used so far by each watched process group ("gateway", "postgres", ...).
CpuProbe = Callable[[], dict[str, float]]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    # CPU time per answered request, in microseconds, by process group (wrk included): where the
    # two cores went, which is what limits the rate once wrk is not the bottleneck.
    cpu_us: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Scenario:
    """One request shape. `body` may hold `{n}`: a number drawn per request from `draw` (inclusive),
    zero-padded to `pad` digits. `expect` is plain text every good answer's body contains."""

    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    draw: tuple[int, int] | None = None
    pad: int = 0
    expect: str = ""
    # Lua defining `request()` and `check(body)` itself, for scenarios that keep state per request.
    custom_lua: str = ""


def lua_string(text: str) -> str:
    """A Lua long-bracket literal holding `text` verbatim (no escapes are interpreted inside)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def _request_lua(s: Scenario) -> str:
    headers = "".join(f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}\n" for k, v in s.headers.items())
    setup = f"wrk.method = {lua_string(s.method)}\nwrk.path = {lua_string(s.path)}\n{headers}"
    if s.draw is None:
        setup += f"wrk.body = {lua_string(s.body)}\n"
        request = ""  # wrk sends the prepared request as is: the cheapest way
    else:
        head, _, tail = s.body.partition("{n}")
        low, high = s.draw
        request = (
            "function request()\n"
            f"  local n = string.format('%0{s.pad}d', math.random({low}, {high}))\n"
            f"  return wrk.format(nil, nil, nil, {lua_string(head)} .. n .. {lua_string(tail)})\n"
            "end\n"
        )
    check = f"function check(body)\n  return string.find(body, {lua_string(s.expect)}, 1, true) ~= nil\nend\n"
    return setup + request + check


# Counts answers per thread, stops at the request bound, and prints one JSON line at the end.
_COMMON_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
answered, bad = 0, 0
function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 or not check(body) then bad = bad + 1 end
  if answered >= MAX_REQUESTS then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local flagged = 0
  for _, t in ipairs(threads) do flagged = flagged + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %d, "us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, flagged + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def script(s: Scenario, max_requests: int) -> str:
    body = s.custom_lua or _request_lua(s)
    return f"MAX_REQUESTS = {max_requests}\n{body}{_COMMON_LUA}"


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("make bench needs wrk (Debian: apt-get install wrk); `make bench` installs it")
    return found


def run_wrk(url: str, lua: str, *, connections: int, seconds: float) -> dict[str, int]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
        f.write(lua)
        f.flush()
        out = subprocess.run(
            [
                wrk_binary(),
                "--threads=1",
                f"--connections={connections}",
                f"--duration={max(1, round(seconds))}s",
                f"--timeout={TIMEOUT_SECONDS}s",
                f"--script={f.name}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + TIMEOUT_SECONDS + 30,
            check=False,
        )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    result: dict[str, int] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def measure(
    name: str,
    base_url: str,
    scenario: Scenario,
    *,
    connections: int,
    duration: float,
    max_requests: int,
    warmup: bool = True,
    probe: CpuProbe | None = None,
) -> Result:
    """Warm up (connections, caches, plans), then measure one bounded run."""
    lua = script(scenario, max_requests)
    if warmup:
        run_wrk(base_url, lua, connections=connections, seconds=WARMUP_SECONDS)
    before = probe() if probe else {}
    wrk_before = _children_cpu()
    r = run_wrk(base_url, lua, connections=connections, seconds=duration)
    if r["requests"] >= max_requests and r["us"] < duration * 0.9e6:
        # Stopped by the count before the clock: fine for a scenario sized by count, not for a rate.
        print(f"note: {name} stopped at its bound of {max_requests:,} requests", file=sys.stderr)
    used = {"wrk": _children_cpu() - wrk_before}
    if probe:
        used |= {group: seconds - before.get(group, 0.0) for group, seconds in probe().items()}
    requests = max(r["requests"], 1)
    return Result(
        name,
        r["requests"],
        r["errors"],
        r["us"] / 1e6,
        r["p50_us"] / 1e3,
        r["p99_us"] / 1e3,
        {group: round(seconds * 1e6 / requests, 1) for group, seconds in used.items() if seconds > 0},
    )
