"""Which replica of a service gets the next internal call.

A service's URL setting names either one URL whose host resolves to several addresses (compose
`--scale`, a Kubernetes headless Service) or a comma-separated list of URLs. `Replicas` keeps the
set of endpoints those resolve to, re-resolving names every `resolve_interval` seconds so replicas
that come and go are followed without a restart, and picks one endpoint per call:

- least outstanding requests between two endpoints drawn at random (the "power of two choices"
  that Envoy's and Linkerd's balancers use): as good as scanning all of them, without every
  gateway piling onto the same momentarily idle replica;
- passive health: an endpoint that refuses a connection or times out is set aside for a back-off
  that doubles with each consecutive failure (1 s, 2 s, 4 s... at most 30 s), then tried again; one
  success clears it. Calls that were already in flight when it failed and fail with it are the same
  failure, not consecutive ones: a replica that dies with fifty calls in its hands is set aside for
  1 s, not 30. With every endpoint set aside, one that failed fast (its connection was
  refused or dropped: a restarting process) is tried anyway — Envoy's "panic" routing, which costs a
  refused connection at worst and lets a lone replica serve again the moment it is back. One that
  failed slowly (a timeout: a host gone silent, or one call too big for the timeout) gets one trial
  call at a time, and only while nothing else is outstanding there (a half-open circuit breaker):
  every other caller answers "try again" at once instead of waiting on a dead address, and a replica
  that was only slow once serves again with the next call.

Nothing here sends a request: the transport (`shared/internal.py`) asks for a pick and reports how
the call went.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

# How long a replica that said it is draining (it was told to stop) is left alone: longer than any
# drain, so it is gone or back by then.
DRAINING_SET_ASIDE_S = 10.0
# Back-off of an endpoint set aside: doubles per consecutive failure, within these bounds (seconds).
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0

REQUESTS = Counter(
    "tokenhub_backend_requests_total",
    "Internal calls sent, by target service and endpoint.",
    ["target", "endpoint"],
)
ERRORS = Counter(
    "tokenhub_backend_errors_total",
    "Internal calls to an endpoint that got no answer (refused, timed out, dropped).",
    ["target", "endpoint"],
)
EJECTIONS = Counter(
    "tokenhub_backend_ejections_total",
    "Times an endpoint was set aside after a failure.",
    ["target", "endpoint"],
)
RESOLVED = Gauge("tokenhub_backend_endpoints", "Endpoints a target service resolves to now.", ["target"])

# host, port -> the addresses it resolves to now.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_with_dns(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class Target:
    """One URL of the setting: scheme, host (a name or an address) and port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// URL: {url.strip()!r}")
        return cls(parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    @property
    def is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_targets(setting: str) -> list[Target]:
    """The URLs of a setting: one, or several separated by commas."""
    targets = [Target.parse(part) for part in setting.split(",") if part.strip()]
    if not targets:
        raise ValueError("no URL given")
    return targets


def base_url(scheme: str, address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}"


@dataclass(eq=False)
class Replica:
    """One replica's address, with what the balancer knows of it."""

    url: str
    outstanding: int = 0
    failures: int = 0  # consecutive
    # The last call sent (`Replicas.sent`'s number) when the last counted failure came: a call sent
    # no later than that failed with it.
    failed_after_call: int = 0
    set_aside_until: float = 0.0
    failed_slowly: bool = False  # its last failure was a timeout

    def available(self, now: float) -> bool:
        return self.set_aside_until <= now


@dataclass
class Replicas:
    target_name: str
    targets: Sequence[Target]
    resolve_interval: float = 5.0
    resolver: Resolver = resolve_with_dns
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    _replicas: dict[str, Replica] = field(default_factory=dict)
    _calls: int = 0  # calls sent so far, to every endpoint: numbers them in the order sent
    _task: asyncio.Task[None] | None = None

    @classmethod
    def from_setting(
        cls, target_name: str, setting: str, resolve_interval: float, resolver: Resolver = resolve_with_dns
    ) -> Replicas:
        return cls(target_name, parse_targets(setting), resolve_interval, resolver)

    @property
    def all(self) -> list[Replica]:
        return list(self._replicas.values())

    # --- the set ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve once now (a name that does not resolve yet is retried in the background), then
        keep re-resolving while the process runs."""
        await self.refresh()
        if any(not t.is_address for t in self.targets):
            self._task = asyncio.create_task(self._keep_resolving(), name=f"resolve {self.target_name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _keep_resolving(self) -> None:
        while True:
            await asyncio.sleep(self.resolve_interval)
            await self.refresh()

    async def refresh(self) -> None:
        urls: list[str] = []
        for target in self.targets:
            if target.is_address:
                urls.append(base_url(target.scheme, target.host, target.port))
                continue
            try:
                addresses = await self.resolver(target.host, target.port)
            except (OSError, TimeoutError) as exc:
                # Keep what this name resolved to before: DNS being down is not the replicas being down.
                log.warning("cannot resolve %s (%s): keeping its last addresses", target.host, exc)
                urls.extend(u for u in self._replicas if urlsplit(u).port == target.port)
                continue
            urls.extend(base_url(target.scheme, address, target.port) for address in addresses)
        self._replace(urls)

    def _replace(self, urls: Iterable[str]) -> None:
        # An endpoint that stays keeps its counters and its back-off; one that goes is forgotten
        # (calls in flight to it finish on their own).
        self._replicas = {url: self._replicas.get(url) or Replica(url) for url in dict.fromkeys(urls)}
        RESOLVED.labels(self.target_name).set(len(self._replicas))

    # --- picking ----------------------------------------------------------------------------------

    def pick(self, avoid: Replica | None = None) -> Replica | None:
        """An available endpoint with few calls outstanding, other than `avoid` if there is one;
        None when every endpoint is set aside."""
        now = self.clock()
        others = [e for e in self._replicas.values() if e is not avoid]
        candidates = [e for e in others if e.available(now)]
        if not candidates:
            fast = [e for e in others if not e.failed_slowly]
            idle_slow = [e for e in others if e.failed_slowly and e.outstanding == 0]
            triable = fast or idle_slow
            return min(triable, key=lambda e: e.set_aside_until) if triable else None
        if len(candidates) == 1:
            return candidates[0]
        first, second = self.rng.sample(candidates, 2)
        return first if first.outstanding <= second.outstanding else second

    def sent(self, endpoint: Replica) -> int:
        """A call goes to `endpoint`: its number, for `failed` should it fail."""
        endpoint.outstanding += 1
        REQUESTS.labels(self.target_name, endpoint.url).inc()
        self._calls += 1
        return self._calls

    def answered(self, endpoint: Replica, *, draining: bool = False) -> None:
        """The endpoint answered; `draining`: it said it is about to stop, so send it nothing new."""
        endpoint.outstanding -= 1
        endpoint.failures = 0
        endpoint.failed_slowly = False
        endpoint.set_aside_until = self.clock() + DRAINING_SET_ASIDE_S if draining else 0.0

    def abandoned(self, endpoint: Replica) -> None:
        """The caller gave up on the call (it was cancelled): no verdict on the endpoint."""
        endpoint.outstanding -= 1

    def failed(self, endpoint: Replica, *, slowly: bool, call: int | None = None) -> None:
        """The call got no answer (refused, dropped, or `slowly`: timed out): set the endpoint aside.
        `call` (its number from `sent`): a call sent before the endpoint's last failure was in flight
        when that failure came, and fails with it; it does not lengthen the back-off again."""
        endpoint.outstanding -= 1
        ERRORS.labels(self.target_name, endpoint.url).inc()
        if call is not None and call <= endpoint.failed_after_call:
            return
        endpoint.failed_after_call = self._calls
        endpoint.failures += 1
        endpoint.failed_slowly = slowly
        backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (endpoint.failures - 1))
        endpoint.set_aside_until = self.clock() + backoff
        EJECTIONS.labels(self.target_name, endpoint.url).inc()
        log.warning(
            "%s endpoint %s set aside for %.0f s after %d failure(s)",
            self.target_name,
            endpoint.url,
            backoff,
            endpoint.failures,
        )
