"""The sweeper process: its periodic loop, and a small HTTP app for probes and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from shared.postgres import (
    CONNECTION_ERRORS,
    READ_ONLY_ERRORS,
    create_pool,
    forget_connections,
    ping,
    schema_problem,
)
from shared.redis import AnyRedis, prepare, redis_client
from shared.settings import Settings
from shared.web import CannotStart, base_app, liveness_key
from sweeper.jobs import Sweeper

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    # Monotonic time the last pass ended (well or not); the probe calls the loop stalled when
    # none has ended for three intervals and a minute.
    last_pass_end: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None


settings_key: web.AppKey[Settings] = web.AppKey("settings")
sweeper_key = web.AppKey("sweeper", Sweeper)
loop_state_key = web.AppKey("loop_state", LoopState)


def connect_redis(settings: Settings) -> AnyRedis:
    return redis_client(settings, socket_timeout=settings.store_timeout)


async def stores(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    pool = await create_pool(settings.database_url, 2, settings.store_timeout)
    problem = await schema_problem(pool, settings.database_url, settings.store_timeout)
    if problem is not None:
        await pool.close()
        raise CannotStart(problem)
    redis = connect_redis(settings)
    await prepare(redis)
    app[sweeper_key] = Sweeper(pool, redis, settings)
    yield
    await redis.aclose()
    await pool.close()


async def sweep_forever(app: web.Application) -> None:
    sweeper, settings, state = app[sweeper_key], app[settings_key], app[loop_state_key]
    while True:
        try:
            await sweeper.run_pass()
        except (*CONNECTION_ERRORS, *READ_ONLY_ERRORS) as exc:
            # A failover, say: the next pass runs on whichever host is the primary by then, and
            # finds again whatever this one left (each batch is its own transaction).
            await forget_connections(sweeper.pool, exc)
            log.warning("sweep pass interrupted, the database did not answer: %s", type(exc).__name__)
        except Exception:
            log.exception("sweep pass failed")
        state.last_pass_end = time.monotonic()
        await asyncio.sleep(settings.sweep_interval)


async def loop(app: web.Application) -> AsyncIterator[None]:
    state = app[loop_state_key] = LoopState()
    state.task = asyncio.create_task(sweep_forever(app))
    yield
    state.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await state.task


async def readiness(app: web.Application) -> dict[str, bool]:
    return {"postgres": await ping(app[sweeper_key].pool, app[settings_key].store_timeout)}


async def liveness(app: web.Application) -> dict[str, bool]:
    """The loop is alive while its task runs and a pass ended within three intervals (and a
    minute of slack for a long pass)."""
    settings, state = app[settings_key], app[loop_state_key]
    stalled = time.monotonic() - state.last_pass_end > 3 * settings.sweep_interval + 60
    running = state.task is not None and not state.task.done()
    return {"loop": running and not stalled}


async def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = base_app("sweeper", settings, readiness)
    app[settings_key] = settings
    app[liveness_key] = liveness
    app.cleanup_ctx.extend([stores, loop])
    return app
