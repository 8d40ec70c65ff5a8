"""The issuer service: short-lived credentials, sessions, quotas and throttles, all in Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from issuer.accounts import Accounts
from issuer.keys import (
    accounts_key,
    logins_key,
    pairs_key,
    redis_key,
    registry_key,
    sessions_key,
    settings_key,
    throttle_key,
)
from issuer.logins import Logins
from issuer.pair_store import CredentialCache, PairStore
from issuer.pairs import Pairs
from issuer.redis_keys import ATTEMPT_LEASE_MARGIN_S, REDIS_POOL_MAX, RedisKeys
from issuer.routes import ROUTES
from issuer.scripts import REDIS_DOWN
from issuer.sessions import Sessions
from issuer.throttle import FailureThrottle
from issuer.trail import SecurityTrail
from shared.contracts.issuer import ISSUER_API
from shared.contracts.registry import RegistryClient
from shared.contracts.server import add_api_routes
from shared.errors import Unavailable
from shared.internal import InternalClient, domain_error_middleware, internal_key_middleware
from shared.redis import prepare
from shared.redis import redis_client as connect_redis
from shared.settings import Settings
from shared.web import base_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def redis_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Redis not answering becomes `Unavailable` here, once, for every route."""
    try:
        return await handler(request)
    except REDIS_DOWN as exc:
        # The kind of failure goes to the log (a refused connection, a timeout, CLUSTERDOWN...).
        raise Unavailable(f"redis did not answer ({type(exc).__name__})") from exc


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    client = connect_redis(
        settings,
        # Far above what the gateways' connection limits let in at once: redis-py's default (100)
        # answered a burst of parallel logins "too many connections". (A blocking pool would queue
        # them instead, at ~16 µs more per command: a quarter of the cost of a refresh.) Per node in
        # a cluster.
        max_connections=REDIS_POOL_MAX,
        socket_timeout=settings.store_timeout,
        health_check_interval=30,
    )
    await prepare(client)
    app[redis_key] = client
    yield
    await client.aclose()


async def registry_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    client = RegistryClient(
        InternalClient("registry", settings.registry_url, settings.internal_key, settings.backend_timeout)
    )
    await client.transport.start()
    app[registry_key] = client
    yield
    await client.transport.close()


async def domain_objects(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    keys = RedisKeys(settings.redis_prefix)
    throttle = FailureThrottle(
        app[redis_key],
        keys,
        settings.pepper,
        limits={"account": settings.login_failures_max, "address": settings.address_failures_max},
        default_limit=settings.login_failures_max,
        window=settings.login_failure_window,
        # Every check an attempt guards ends within the backend timeout, settled or not.
        lease=settings.backend_timeout + ATTEMPT_LEASE_MARGIN_S,
    )
    trail = SecurityTrail(app[registry_key])
    logins = Logins(throttle, app[registry_key], trail)
    app[throttle_key] = throttle
    app[logins_key] = logins
    app[sessions_key] = Sessions(app[redis_key], keys, app[registry_key], settings.pepper, logins)
    pair_store = PairStore(app[redis_key], keys, settings.pepper)
    app[accounts_key] = Accounts(app[redis_key], keys, pair_store)
    app[pairs_key] = Pairs(
        pair_store,
        CredentialCache(app[redis_key], keys, settings.credential_cache_ttl),
        app[registry_key],
        logins,
        trail,
    )
    yield
    await throttle.close()


async def readiness(app: web.Application) -> dict[str, bool]:
    try:
        redis_ok = await app[redis_key].ping()
    except REDIS_DOWN:
        redis_ok = False
    return {"redis": redis_ok}


async def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = base_app(
        "issuer",
        settings,
        readiness,
        internal_key_middleware(settings.internal_key),
        domain_error_middleware,
        redis_error_middleware,
    )
    app[settings_key] = settings
    app.cleanup_ctx.extend([redis_client, registry_client, domain_objects])
    add_api_routes(app, ISSUER_API, ROUTES)
    return app
