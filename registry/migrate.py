"""Forward-only schema migrations: `registry/migrations/NNNN_name.sql`, applied in order, once each.

Safe to run twice and from several processes at once (a session advisory lock serialises them; a
second run finds every version recorded and changes nothing). Each migration is its own transaction, so a
failing one leaves the schema at the previous version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from pydantic import BaseModel

from shared.postgres import connect, database_name, fetch_value, rows_as

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit number works; this one reads "tokenhub" in ASCII.
_LOCK_ID = 0x746F6B656E687562


class _Applied(BaseModel):
    version: str


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()


def available() -> list[Migration]:
    return [Migration(p.stem, p) for p in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


async def apply(conn: asyncpg.Connection) -> list[str]:
    """Apply what is missing; return the versions applied by this call (empty when up to date)."""
    applied_now: list[str] = []
    # Held for the whole run: concurrent migrators queue here, then find nothing left to do.
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row.version
            for row in rows_as(_Applied, await conn.fetch("SELECT version FROM schema_migrations"))
        }
        for migration in available():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version)
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now


# What the services' own role may do, table by table: read and write the data, only append to the
# audit log, only read the migrations' record. It owns nothing, so it can neither drop nor alter a
# table, nor disable a trigger, nor TRUNCATE (not granted).
SERVICE_GRANTS = {
    "users": "SELECT, INSERT, UPDATE, DELETE",
    "api_keys": "SELECT, INSERT, UPDATE, DELETE",
    "apps": "SELECT, INSERT, UPDATE, DELETE",
    "tokens": "SELECT, INSERT, UPDATE, DELETE",
    "audit_log": "SELECT, INSERT",
    "schema_migrations": "SELECT",
}


async def set_up_service_role(conn: asyncpg.Connection, user: str, password: str | None) -> bool:
    """Make (or update) the login role the services connect as, and grant it exactly SERVICE_GRANTS
    on this database; True if the role was created. Names and the password go through
    format(%I / %L) on the server: DDL takes no parameters, and they are never pasted raw."""

    async def run(template: str, *args: str) -> None:
        statement = await fetch_value(
            conn, str, "SELECT format($1, VARIADIC $2::text[])", template, list(args)
        )
        await conn.execute(statement)

    created = not await fetch_value(
        conn, bool, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", user
    )
    if created:
        await run("CREATE ROLE %I LOGIN", user)
    if password is not None:
        await run("ALTER ROLE %I PASSWORD %L", user, password)
    database = await fetch_value(conn, str, "SELECT current_database()")
    await run("GRANT CONNECT ON DATABASE %I TO %I", database, user)
    await run("GRANT USAGE ON SCHEMA public TO %I", user)
    for table, privileges in SERVICE_GRANTS.items():
        await run(f"REVOKE ALL ON %I FROM %I; GRANT {privileges} ON %I TO %I", table, user, table, user)
    return created


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database)))


async def ensure_database(dsn: str, timeout: float = 10.0) -> bool:
    """Create the database named in `dsn` if it does not exist; True if this call created it."""
    try:
        conn = await connect(dsn, timeout)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    name = database_name(dsn)
    admin = await connect(_with_database(dsn, "postgres"), timeout)
    try:
        # An identifier cannot be a query parameter; it comes from the operator's DATABASE_URL and
        # is quoted as an identifier, never pasted raw.
        await admin.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        return False  # another process created it between our two connections
    finally:
        await admin.close()
    return True
