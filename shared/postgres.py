"""Postgres plumbing for the services that own a connection pool (registry, sweeper) and the CLI."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

# What `pool.acquire()` hands out; subscriptable only for the type checker.
if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:
    Connection = PoolConnectionProxy

# Errors that mean "the database did not answer", as opposed to "the query was wrong".
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
# Anything the server or the connection can throw at a query.
ANY_DATABASE_ERROR: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool: our code never changes session
    state (no SET, LISTEN, advisory locks or cursors outside a transaction). asyncpg's default
    reset costs a round trip on every release, as much as a small query."""


async def create_pool(dsn: str, max_size: int, timeout: float) -> asyncpg.Pool:
    """A pool that opens no connection up front, so a service starts (and reports "not ready")
    while Postgres is still coming up, and recovers by itself once it is back."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=timeout,
        command_timeout=timeout * 3,
        # The same bound on the server's side: a statement whose client has gone stops there too.
        server_settings={"statement_timeout": str(int(timeout * 3 * 1000))},
        init=_init_connection,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def ping(pool: asyncpg.Pool, timeout: float) -> bool:
    try:
        value = await pool.fetchval("SELECT 1", timeout=timeout)
    except ANY_DATABASE_ERROR:
        return False
    return bool(value == 1)
