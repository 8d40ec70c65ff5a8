"""Postgres plumbing for the services that own a connection pool (registry, sweeper) and the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeAlias, TypeVar, cast
from urllib.parse import unquote, urlsplit

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel, TypeAdapter

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


# Whatever runs a query: the pool (one statement, its own connection), a connection from it (inside
# the caller's transaction), or a connection of its own (the CLI's migrations).
Queryable: TypeAlias = "asyncpg.Pool | Connection | asyncpg.Connection"

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")


def row_as(model: type[M], row: asyncpg.Record) -> M:
    """A row as a typed model: asyncpg's Record hands out every column as Any, so rows are read
    through a model whose fields name the columns it needs."""
    return model.model_validate(cast(Mapping[str, object], dict(row)))


def rows_as(model: type[M], rows: Iterable[asyncpg.Record]) -> list[M]:
    return [row_as(model, row) for row in rows]


def row_into(adapter: TypeAdapter[V], row: asyncpg.Record) -> V:
    """`row_as` for any type pydantic validates (a dataclass that orjson writes as it is...)."""
    return adapter.validate_python(cast(Mapping[str, object], dict(row)))


async def fetch_value(
    db: Queryable, kind: type[V], query: str, *args: object, timeout: float | None = None
) -> V:
    """The first column of the first row, which the query guarantees is a `kind` (a count, an id
    RETURNING...); asyncpg's fetchval says Any, so it is checked here, once."""
    value = await _fetchval(db, query, args, timeout)
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__} from the query, got {type(value).__name__}")
    return value


async def fetch_optional(
    db: Queryable, kind: type[V], query: str, *args: object, timeout: float | None = None
) -> V | None:
    """`fetch_value` for a query that may find no row (or a NULL): then None."""
    value = await _fetchval(db, query, args, timeout)
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__} or NULL from the query, got {type(value).__name__}")
    return value


async def _fetchval(db: Queryable, query: str, args: tuple[object, ...], timeout: float | None) -> object:
    return await cast(Awaitable[object], db.fetchval(query, *args, timeout=timeout))


def _encode_json(value: object) -> str:
    return orjson.dumps(value).decode()


def _decode_json(text: str) -> object:
    return cast(object, orjson.loads(text))


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_encode_json, decoder=_decode_json, schema="pg_catalog")


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
        value = await fetch_optional(pool, int, "SELECT 1", timeout=timeout)
    except ANY_DATABASE_ERROR:
        return False
    return value == 1


# --- saying what is wrong, to a person -------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without its password, fit for a message."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def database_name(dsn: str) -> str:
    name = unquote(urlsplit(dsn).path.lstrip("/"))
    if not name:
        raise ValueError("DATABASE_URL names no database")
    return name


def database_problem(exc: BaseException, dsn: str) -> str | None:
    """What a Postgres error means to whoever runs TokenHub, and what to do about it, in one line;
    None if it is no fault of the database's or of DATABASE_URL's."""
    url = f"DATABASE_URL ({redact(dsn)})"
    try:
        name = database_name(dsn)
    except ValueError:
        return f"{url} names no database: end it with /tokenhub, for example"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"database {name} does not exist ({url}): run `tokenhub migrate` first, which creates it"
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedFunctionError):
        return f"database {name} has no TokenHub schema yet ({url}): run `tokenhub migrate` first"
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return f"PostgreSQL refused the login ({exc}): check the user and password in {url}"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return f"the user of {url} may not do this ({exc}): run it as the database's owner"
    if isinstance(exc, CONNECTION_ERRORS):
        return f"PostgreSQL does not answer at {url} ({type(exc).__name__}): start it, or set DATABASE_URL"
    return None


async def schema_problem(pool: asyncpg.Pool, dsn: str, timeout: float) -> str | None:
    """Why a service cannot work with this database at all (it does not exist, it is not migrated,
    the login is refused), in one line; None when it can, or when Postgres merely does not answer
    yet (a service starts anyway and reports "not ready" until it does)."""
    try:
        await fetch_optional(pool, int, "SELECT 1 FROM schema_migrations LIMIT 1", timeout=timeout)
    except ANY_DATABASE_ERROR as exc:
        if isinstance(exc, CONNECTION_ERRORS):
            return None
        return database_problem(exc, dsn)
    return None
