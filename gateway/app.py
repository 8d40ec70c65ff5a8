"""The gateway: the only public service. It speaks the dialects and owns no state that matters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.backends import Backends
from gateway.console import setup_console
from gateway.keys import backends_key, settings_key, verification_cache_key, verification_counter_key
from gateway.routes import setup_routes
from gateway.verification_cache import running_cache
from gateway.verification_stats import running_counter
from shared.balancer import Resolver, resolve_with_dns
from shared.settings import Settings
from shared.web import base_app, metrics_listener


def backends(resolver: Resolver) -> Callable[[web.Application], AsyncIterator[None]]:
    async def connect(app: web.Application) -> AsyncIterator[None]:
        clients = Backends.from_settings(app[settings_key], resolver)
        await clients.start()
        app[backends_key] = clients
        yield
        await clients.close()

    return connect


async def verification_cache(app: web.Application) -> AsyncIterator[None]:
    async with running_cache(app[settings_key]) as cache:
        app[verification_cache_key] = cache
        yield


async def verification_counter(app: web.Application) -> AsyncIterator[None]:
    """Verifications per hour, flushed to Redis every few seconds and once more at shutdown."""
    async with running_counter(app[settings_key]) as counter:
        app[verification_counter_key] = counter
        yield


async def readiness(app: web.Application) -> dict[str, bool]:
    clients = app[backends_key]
    issuer, registry = await asyncio.gather(
        clients.issuer.transport.ready(), clients.registry.transport.ready()
    )
    return {"issuer": issuer, "registry": registry}


async def create_app(
    settings: Settings | None = None, *, resolver: Resolver = resolve_with_dns
) -> web.Application:
    """`resolver` says which addresses the backend URLs' host names stand for: DNS, unless a test
    puts several replicas behind one made-up name."""
    settings = settings or Settings()
    app = base_app("gateway", settings, readiness, serve_metrics=settings.metrics_public)
    app[settings_key] = settings
    app.cleanup_ctx.extend(
        [
            # First: a port it cannot listen on stops the start before anything else is opened.
            metrics_listener(
                settings.host,
                settings.gateway_metrics_port,
                "GATEWAY_METRICS_PORT",
                shared=settings.gateway_workers > 1,
            ),
            backends(resolver),
            verification_cache,
            verification_counter,
        ]
    )
    setup_routes(app)
    setup_console(app)
    return app
