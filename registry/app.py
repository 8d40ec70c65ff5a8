"""The registry service: Postgres-backed users, apps, long-lived tokens and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from registry.admin import AdminStore
from registry.keys import (
    admin_store_key,
    settings_key,
    store_key,
    voucher_store_key,
    wialon_tokens_key,
    zabbix_tokens_key,
)
from registry.routes import setup_routes
from registry.store import Store, translate
from registry.vouchers import VoucherStore
from registry.wialon_tokens import WialonTokens
from registry.zabbix_tokens import ZabbixTokens
from shared.internal import domain_error_middleware, internal_key_middleware
from shared.postgres import create_pool, forget_connections, schema_problem
from shared.secrets import Sealer
from shared.settings import Settings
from shared.web import CannotStart, base_app

# Connections the admin API's pool opens at most (per registry process): people at a console, not
# machines, call it.
ADMIN_POOL_MAX = 4


@web.middleware
async def database_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Driver errors become domain errors here, once, for every route. One that means the primary is
    lost to the pool (it died, or the connection is to a standby) also drops the pool's connections:
    the next request connects to whichever host is the primary by then."""
    try:
        return await handler(request)
    except Exception as exc:
        domain_error = translate(exc)
        if domain_error is None:
            raise
        await forget_connections(request.app[store_key].pool, exc)
        await forget_connections(request.app[admin_store_key].pool, exc)
        raise domain_error from exc


async def postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    pool = await create_pool(settings.database_url, settings.db_pool_max, settings.store_timeout)
    problem = await schema_problem(pool, settings.database_url, settings.store_timeout)
    if problem is not None:
        await pool.close()
        raise CannotStart(problem)
    app[store_key] = Store(pool, settings.pepper, settings.store_timeout)
    app[voucher_store_key] = VoucherStore(pool, settings.pepper, Sealer.from_b64(settings.seal_key))
    app[zabbix_tokens_key] = ZabbixTokens(pool, settings.pepper)
    app[wialon_tokens_key] = WialonTokens(pool, settings.pepper, Sealer.from_b64(settings.seal_key))
    # The admin API's queries have optional filters: a small pool of their own that plans each run
    # for its values, while the dialects' hot paths keep their cached plans (shared/postgres.py).
    admin_pool = await create_pool(
        settings.database_url,
        min(ADMIN_POOL_MAX, settings.db_pool_max),
        settings.store_timeout,
        custom_plans=True,
    )
    app[admin_store_key] = AdminStore(admin_pool, Sealer.from_b64(settings.seal_key))
    yield
    await admin_pool.close()
    await pool.close()


async def readiness(app: web.Application) -> dict[str, bool]:
    return {"postgres": await app[store_key].ping()}


async def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = base_app(
        "registry",
        settings,
        readiness,
        internal_key_middleware(settings.internal_key),
        domain_error_middleware,
        database_error_middleware,
    )
    app[settings_key] = settings
    app.cleanup_ctx.append(postgres)
    setup_routes(app)
    return app
