"""What every service's aiohttp app has in common: request ids, access logs, metrics, probes, run."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import Counter, Histogram
from pydantic import JsonValue

from shared.internal import DRAINING_HEADER, json_response
from shared.logging import (
    REQUEST_ID_HEADER,
    acceptable_request_id,
    new_request_id,
    request_id_var,
    setup_logging,
)
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS, exposition
from shared.settings import Service, Settings, SettingsError, env_name, load_settings
from shared.workers import is_worker, supervise

access_log = logging.getLogger("tokenhub.access")

# Answers whether each store or backend the service needs is reachable right now.
ReadinessCheck = Callable[[web.Application], Awaitable[dict[str, bool]]]
readiness_key: web.AppKey[ReadinessCheck] = web.AppKey("readiness")
# Optional: whether the service's own background work is still moving (the sweeper's loop).
liveness_key: web.AppKey[ReadinessCheck] = web.AppKey("liveness")
service_key = web.AppKey("service", str)
# A drain ends once no request has come for this long (seconds), or at TOKENHUB_DRAIN_SECONDS.
DRAIN_QUIET_S = 0.25


class Drain:
    """Whether the process is on its way out, and when it last got a request."""

    def __init__(self) -> None:
        self.started = False
        self.last_request = time.monotonic()


drain_key = web.AppKey("drain", Drain)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observability_middleware(service: str) -> Middleware:
    # The labelled series, resolved once per (route, method, status): prometheus_client's
    # `labels()` takes a lock and builds a key on every call, a visible share of a cached check.
    series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def metrics_for(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        # Any method name is valid HTTP: unknown ones share one label, so a client cannot grow
        # the series (and this dict) without bound.
        method = method if method in _METHODS else "OTHER"
        key = (route, method, status)
        found = series.get(key)
        if found is None:
            found = series[key] = (
                HTTP_REQUESTS.labels(service, route, method, str(status)),
                HTTP_LATENCY.labels(service, route),
            )
        return found

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER)
        request_id = incoming if acceptable_request_id(incoming) else new_request_id()
        assert request_id is not None
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        drain = request.app[drain_key]
        drain.last_request = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID_HEADER] = request_id
            if drain.started:
                # The next request on this connection would find the door closed: no keep-alive.
                response.headers[DRAINING_HEADER] = "1"
                response.force_close()
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        finally:
            elapsed = time.perf_counter() - started
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            requests, latency = metrics_for(route, request.method, status)
            requests.inc()
            latency.observe(elapsed)
            # Answered requests are counted in the metrics; their log line is DEBUG, since writing
            # one per request cost a fifth of the gateway's CPU. Refusals and failures stay visible.
            level = logging.DEBUG if status < 400 else logging.INFO if status < 500 else logging.WARNING
            if access_log.isEnabledFor(level):
                # The path only: query strings can carry secrets (Wialon's sid, tokens in params).
                access_log.log(
                    level,
                    "%s %s %d",
                    request.method,
                    request.path,
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
                )
            request_id_var.reset(token)

    return observe


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers and, where it has one, its own loop is not stuck."""
    liveness = request.app.get(liveness_key)
    checks = await liveness(request.app) if liveness is not None else {}
    alive = all(checks.values())
    body: dict[str, JsonValue] = {
        "status": "alive" if alive else "stalled",
        "service": request.app[service_key],
        "checks": dict[str, JsonValue](checks),
    }
    return json_response(body, 200 if alive else 503)


async def readyz(request: web.Request) -> web.Response:
    if request.app[drain_key].started:
        return json_response({"status": "draining", "checks": {}}, 503)
    checks = await request.app[readiness_key](request.app)
    ready = all(checks.values())
    body: dict[str, JsonValue] = {
        "status": "ready" if ready else "not ready",
        "checks": dict[str, JsonValue](checks),
    }
    return json_response(body, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def base_app(
    service: Service,
    settings: Settings,
    readiness: ReadinessCheck,
    *extra_middlewares: Middleware,
    serve_metrics: bool = True,
) -> web.Application:
    """An application with the probes, metrics and observability every service shares. A public
    listener passes `serve_metrics=False` and serves /metrics elsewhere (`metrics_listener`)."""
    app = web.Application(
        middlewares=[observability_middleware(service), *extra_middlewares],
        client_max_size=settings.max_body_bytes,
    )
    app[service_key] = service
    app[readiness_key] = readiness
    app[drain_key] = Drain()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if serve_metrics:
        app.router.add_get("/metrics", metrics)
    return app


def metrics_listener(
    host: str, port: int, variable: str, *, shared: bool = False
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that serves /metrics alone on a port of its own (0: none; `variable` is the
    setting that names it), for a service whose main port is public: Prometheus scrapes it on the
    internal network. `shared`: several workers listen on it (each scrape sees one of them)."""

    async def listen(app: web.Application) -> AsyncIterator[None]:
        if not port:
            yield
            return
        scrape = web.Application()
        scrape.router.add_get("/metrics", metrics)
        runner = web.AppRunner(scrape, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=shared or None).start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno in _LISTEN_ERRORS:
                raise CannotListen(variable, host, port, exc) from None
            raise
        yield
        await runner.cleanup()

    return listen


def serve(service: Service, factory: Callable[[Settings], Awaitable[web.Application]]) -> None:
    """Entry point of `python -m <service>`: settings once, JSON logs, uvloop, serve until SIGTERM.
    Settings it cannot use, or a port it cannot listen on, end it with one line saying which
    setting to change, and a non-zero status; never a traceback."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"{service}: bad settings: {exc}\n")
        raise SystemExit(2) from None
    setup_logging(service, settings.log_level)
    port = settings.port_of(service)
    workers = settings.workers_of(service)
    if workers > 1 and not is_worker():
        logging.getLogger(service).info("starting %d workers on %s:%d", workers, settings.host, port)
        raise SystemExit(supervise(service, workers))

    async def start() -> web.Application:
        app = await factory(settings)
        app.on_startup.append(stop_on_signals(settings.drain_seconds))
        return app

    logging.getLogger(service).info("starting on %s:%d", settings.host, port)
    try:
        web.run_app(
            start(),
            host=settings.host,
            port=port,
            access_log=None,
            print=None,
            handle_signals=False,  # stop_on_signals: drain first
            # What a replica holds when it stops accepting gets this long to finish.
            shutdown_timeout=5,
            reuse_port=workers > 1 or None,
            loop=uvloop.new_event_loop(),
        )
    except CannotStart as exc:
        sys.stderr.write(f"{service}: {exc}\n")
        raise SystemExit(1) from None
    except OSError as exc:
        if exc.errno not in _LISTEN_ERRORS:
            raise
        sys.stderr.write(
            f"{service}: {CannotListen(env_name(f'{service}_port'), settings.host, port, exc)}\n"
        )
        raise SystemExit(1) from None


def stop_on_signals(drain_seconds: float) -> Callable[[web.Application], Awaitable[None]]:
    """On SIGTERM or SIGINT: drain, then stop. While draining, the service answers as usual, but
    /readyz says 503 (orchestrators stop routing to it), every reply carries DRAINING_HEADER and
    closes its connection (internal callers set the replica aside). Once no request has come for
    DRAIN_QUIET_S, or after `drain_seconds`, it stops accepting, gives what it holds
    `shutdown_timeout` to finish, and exits. A second signal stops it at once."""

    async def install(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        drain = app[drain_key]
        log = logging.getLogger(app[service_key])

        def stop() -> None:
            raise web.GracefulExit()

        def wait_for_quiet(deadline: float) -> None:
            now = time.monotonic()
            if now >= deadline or now - drain.last_request >= DRAIN_QUIET_S:
                log.info("drained; stopping")
                stop()
            loop.call_later(0.05, wait_for_quiet, deadline)

        def begin() -> None:
            if drain.started:
                stop()
            drain.started = True
            log.info("stopping: draining for at most %.1f s", drain_seconds)
            drain.last_request = time.monotonic()
            wait_for_quiet(time.monotonic() + drain_seconds)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, begin)

    return install


# Why a socket cannot listen, as far as an operator can do something about it.
_LISTEN_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


class CannotStart(Exception):
    """Why a service cannot start, in the one line its operator reads."""


class CannotListen(CannotStart):
    def __init__(self, variable: str, host: str, port: int, cause: OSError) -> None:
        super().__init__(
            f"cannot listen on {host}:{port} ({cause.strerror}): set {variable} to a free port, "
            "or TOKENHUB_HOST to an address of this machine"
        )
