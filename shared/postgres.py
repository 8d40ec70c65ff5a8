"""Postgres plumbing for the services that own a connection pool (registry, sweeper) and the CLI.

DATABASE_URL may name several hosts, as libpq's multi-host URLs do
(`postgresql://h1:5432,h2:5432/tokenhub?target_session_attrs=read-write`): every connection, the
pools' and the CLI's, goes to the first of them that accepts writes, each host tried within the
connect timeout of its own (`Hosts`). A pool whose primary vanished or turned read-only drops its
connections (`forget_connections`), so the next acquire finds whichever host is the primary now.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import orjson
from asyncpg.connect_utils import SessionAttribute
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel, TypeAdapter

log = logging.getLogger(__name__)

# What `pool.acquire()` hands out; subscriptable only for the type checker.
if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:
    Connection = PoolConnectionProxy

# Errors that mean "the database did not answer", as opposed to "the query was wrong". Among them:
# no host is a primary (NoPrimary, an OSError; or asyncpg's TargetServerAttributeNotMatched when one
# host is named with target_session_attrs), a server that is starting, shutting down or crashed
# (57P0x), and asyncpg's InternalClientError: its protocol caught between two states by a server
# that died under it ("cannot switch to state 12; another operation (2) is in progress" when a
# backend's last words, FATAL "unexpected postmaster exit", arrive just before the next query).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
# The connection is to a server that takes no writes: a standby (DATABASE_URL without
# target_session_attrs=read-write), or a primary demoted or made read-only under it. Nothing was
# written; the next connection may find the primary.
READ_ONLY_ERRORS: tuple[type[Exception], ...] = (asyncpg.ReadOnlySQLTransactionError,)
# There is a server, but no primary among DATABASE_URL's hosts (defined below: NoPrimary).
NO_PRIMARY: tuple[type[Exception], ...]
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


# --- several hosts: following the primary ----------------------------------------------------------

# target_session_attrs values under which a session can write (libpq's and asyncpg's names).
WRITABLE_SESSIONS = ("any", "primary", "read-write")
SESSION_ATTRS = tuple(attr.value for attr in SessionAttribute)


@dataclass(frozen=True)
class Host:
    """One host of DATABASE_URL; port None: the default (PGPORT, else 5432)."""

    host: str
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def hosts_of(dsn: str) -> list[Host]:
    """The hosts a postgresql:// URL names before its path, in order (`h1:5432,h2:5432`, IPv6 in
    brackets); empty when it names none there (the default, or `?host=` for a Unix socket).
    ValueError, saying what is wrong, for a list that is not one."""
    hostspec = urlsplit(dsn).netloc.rpartition("@")[2]
    if not hostspec:
        return []
    hosts = []
    for part in hostspec.split(","):
        if part.startswith("["):
            address, closed, rest = part[1:].partition("]")
            if not closed or (rest and not rest.startswith(":")):
                raise ValueError(f"{part!r} is not a host: write an IPv6 address as [address]:port")
            port = rest[1:]
        else:
            address, _, port = part.partition(":")
        if not address:
            raise ValueError(f"{hostspec!r} has an empty host: separate hosts by commas, as h1:5432,h2:5432")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{part!r} has a port that is not a number from 1 to 65535")
        hosts.append(Host(unquote(address), int(port) if port else None))
    return hosts


def session_attrs(dsn: str) -> str | None:
    """The URL's target_session_attrs, if it gives one."""
    values = parse_qs(urlsplit(dsn).query).get("target_session_attrs")
    return values[-1] if values else None


def check_dsn(dsn: str) -> None:
    """ValueError, saying what is wrong, unless TokenHub can work with this URL: its hosts parse,
    and its target_session_attrs (if any) lets a session write."""
    hosts_of(dsn)
    attrs = session_attrs(dsn)
    if attrs is not None and attrs not in SESSION_ATTRS:
        raise ValueError(f"target_session_attrs must be one of {', '.join(WRITABLE_SESSIONS)}")
    if attrs is not None and attrs not in WRITABLE_SESSIONS:
        raise ValueError(
            f"target_session_attrs={attrs} would connect TokenHub, which writes, to a standby: "
            "use read-write (or primary)"
        )


class NoPrimary(ConnectionError):
    """None of DATABASE_URL's hosts takes writes now, and at least one answered as a standby (as
    between a primary's death and a standby's promotion). An OSError, so everything that copes with
    a database that does not answer copes with this."""


class NoHostAnswers(ConnectionError):
    """None of DATABASE_URL's hosts answered: each refused or did not answer in time."""


class Hosts:
    """Connections to whichever of DATABASE_URL's hosts accepts writes now.

    One host (or none named): asyncpg's own connect, as before. Several: each is tried in turn,
    within a connect timeout of its own (libpq's connect_timeout is per host; asyncpg's is for the
    whole list, so one host that does not answer would use it up and the next never be tried),
    the first that takes the login and satisfies target_session_attrs wins; read-write unless the
    URL says otherwise, since TokenHub writes. None: NoPrimary if some host answered as a standby,
    else NoHostAnswers, each naming what every host did. The host that last won is tried first: after a
    failover every new connection goes straight to the new primary, and a former primary that comes
    back as one (split brain) is not followed. Nothing is retried once a connection is made: what a
    statement did on a server that went away is the caller's to report, not ours to repeat.
    A login refused or a database missing on a host that answers is raised at once, as libpq does:
    the other hosts are replicas of it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.hosts = hosts_of(dsn)
        attrs = session_attrs(dsn) or ("read-write" if len(self.hosts) > 1 else None)
        self.attrs = None if attrs is None else SessionAttribute(attrs)
        self.last: Host | None = None

    def order(self) -> list[Host]:
        return [self.last, *(h for h in self.hosts if h != self.last)] if self.last else list(self.hosts)

    async def connect(
        self, dsn: str | None = None, *, timeout: float = 60.0, **options: Any
    ) -> asyncpg.Connection:
        """A connection to the primary; NoPrimary when there is none. The signature of
        asyncpg.connect, so a pool can use it (it passes the DSN it was made with, this one's)."""
        if len(self.hosts) < 2:
            return await asyncpg.connect(
                self.dsn, timeout=timeout, target_session_attrs=self.attrs, **options
            )
        tried: list[str] = []
        standbys = 0
        for host in self.order():
            try:
                conn: asyncpg.Connection = await asyncpg.connect(
                    self.dsn,
                    host=host.host,
                    port=host.port,
                    timeout=timeout,
                    target_session_attrs=self.attrs,
                    **options,
                )
            except asyncpg.TargetServerAttributeNotMatched:
                standbys += 1
                tried.append(f"{host} is a standby")
            except CONNECTION_ERRORS as exc:
                tried.append(f"{host}: {type(exc).__name__}")
            else:
                if host != self.last and self.last is not None:
                    log.warning("connected to %s, the primary now (was %s)", host, self.last)
                self.last = host
                return conn
        if standbys:
            raise NoPrimary(f"no host accepts writes ({'; '.join(tried)})")
        raise NoHostAnswers(f"no host answers ({'; '.join(tried)})")


NO_PRIMARY = (NoPrimary, asyncpg.TargetServerAttributeNotMatched, *READ_ONLY_ERRORS)


async def connect(dsn: str, timeout: float) -> asyncpg.Connection:
    """One connection of its own (the CLI's), to the host of DATABASE_URL that accepts writes."""
    return await Hosts(dsn).connect(timeout=timeout)


async def plan_for_values(conn: Connection | asyncpg.Connection) -> None:
    """For the rest of this transaction, every statement is planned for its values, never with a
    cached generic plan. For statements over arrays of any length (a Zabbix batch of 1 or of 10,000
    names): after five runs Postgres may keep a generic plan that assumes a few elements, and one
    kept from small batches ran a 5,001-name `name_clashes` past the statement timeout."""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


async def create_pool(dsn: str, max_size: int, timeout: float, *, custom_plans: bool = False) -> asyncpg.Pool:
    """A pool that opens no connection up front, so a service starts (and reports "not ready")
    while Postgres is still coming up, and recovers by itself once it is back, on whichever of
    DATABASE_URL's hosts is the primary then.

    `custom_plans`: every run of a prepared statement is planned for its values
    (`plan_cache_mode=force_custom_plan`), for queries with optional filters (`$1::bigint[] IS NULL
    OR owner_id = ANY($1)`), whose generic plan must serve every value and so walks the whole table
    (the admin listing's first page: 15 s generic, 0.4 ms custom, at 1,010,000 tokens). Not for the
    dialects' hot paths: planning each run cost Zabbix's token check 335 µs against 105 µs
    (docs/DECISIONS.md, Admin API)."""
    statement_timeout = timeout * 3
    server_settings = {"statement_timeout": str(int(statement_timeout * 1000))}
    if custom_plans:
        server_settings["plan_cache_mode"] = "force_custom_plan"
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=timeout,
        connect=Hosts(dsn).connect,
        # A second past the server's own bound (below): a server that is there answers a slow
        # statement first (QueryCanceledError), so a client-side timeout means one that is not.
        command_timeout=statement_timeout + 1,
        # A statement whose client has gone stops on the server too.
        server_settings=server_settings,
        init=_init_connection,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


def primary_lost(exc: BaseException) -> bool:
    """Whether after `exc` no connection of a pool is to be trusted to reach the primary: the server
    went away (kill, crash, failover) or is not the primary. A timeout alone is not such an error
    (TimeoutError is an OSError): a busy server times out too, and dropping every connection would
    only add to its load."""
    return isinstance(exc, (*CONNECTION_ERRORS, *READ_ONLY_ERRORS)) and not isinstance(exc, TimeoutError)


async def forget_connections(pool: asyncpg.Pool, exc: BaseException) -> bool:
    """If `exc` means the primary is lost to this pool (`primary_lost`), drop every connection it
    holds (idle ones at once, busy ones when they come back), so the next acquire connects afresh
    to whichever host is the primary now; True if it did."""
    if not primary_lost(exc):
        return False
    await pool.expire_connections()
    return True


async def ping(pool: asyncpg.Pool, timeout: float) -> bool:
    """Whether the pool reaches a server that takes writes (readiness): a standby that answers is
    not ready, and the pool's connections to it are dropped."""
    try:
        writable = await fetch_optional(
            pool, bool, "SELECT current_setting('transaction_read_only') = 'off'", timeout=timeout
        )
    except ANY_DATABASE_ERROR as exc:
        await forget_connections(pool, exc)
        return False
    if writable is not True:
        await pool.expire_connections()
        return False
    return True


# --- saying what is wrong, to a person -------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without its password (in the user part or a `password=` parameter), fit for a
    message; every host of a multi-host URL stays."""
    url = _PASSWORD_PARAMETER.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&#]*")


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
    if isinstance(exc, NO_PRIMARY):
        return (
            f"no PostgreSQL primary at {url}, only a standby ({exc}): promote one (or wait for the "
            "failover to finish), or name the primary in DATABASE_URL"
        )
    if isinstance(exc, CONNECTION_ERRORS):
        # Several hosts: what each did; one: what the driver said went wrong.
        detail = str(exc) if isinstance(exc, NoHostAnswers) else type(exc).__name__
        return f"PostgreSQL does not answer at {url} ({detail}): start it, or set DATABASE_URL"
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
