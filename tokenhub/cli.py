"""`tokenhub`: the operator's command line (migrate, up, users, apps).

Other tools rely on this interface exactly. Bad arguments give one line on stderr and exit code 2,
with nothing written. Commands talk to Postgres directly (DATABASE_URL), like the registry does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TextIO, cast

import asyncpg
import orjson
import redis.exceptions

from registry import migrate as migrations
from registry.store import ROLES, Role, Store, translate
from shared import revocations
from shared.errors import InvalidInput, NotFound, TokenHubError
from shared.postgres import (
    ANY_DATABASE_ERROR,
    connect,
    create_pool,
    database_name,
    database_problem,
    redact,
)
from shared.redis import UNAVAILABLE, AnyRedis, redis_client
from shared.secrets import new_urlsafe_secret
from shared.settings import Settings, SettingsError, load_settings

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1


class UsageError(Exception):
    """Bad arguments or a request the data refuses: one line on stderr, exit 2."""


class StoreError(Exception):
    """A store that did not answer, said in a sentence that names the setting: exit 1."""


class _Parser(argparse.ArgumentParser):
    """Its subparsers are of its own class too (argparse's default), so every usage error is one line."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


class Arguments(argparse.Namespace):
    """The parsed command line, typed (a bare Namespace hands out every attribute as Any). Each
    command reads only what its own subparser sets."""

    command: str
    users_command: str
    apps_command: str
    name: str  # users: the user's name
    role: Role
    password_stdin: bool
    email: str | None
    parent: str | None
    revoke: bool
    since: datetime | None
    user: str | None
    limit: int
    app_id: str
    app_name: str | None
    daily_quota: int
    access_ttl: int
    refresh_ttl: int
    workers: dict[str, int]  # up: *_WORKERS variable → processes


# Redis errors that mean "it did not answer" (its exception classes are typed with Any: named once).
_REDIS_FAILED: tuple[type[Exception], ...] = (redis.exceptions.RedisError, *UNAVAILABLE, OSError)
_REDIS_UNREACHABLE: tuple[type[Exception], ...] = (*UNAVAILABLE, OSError)


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= 2**31 - 1:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {minimum} and {2**31 - 1}")
        return value

    return parse


_AGO = re.compile(r"(\d+)([dhm])")


def _moment(text: str) -> datetime:
    """An ISO date/time (UTC unless it says otherwise) or an age such as 7d, 12h, 30m."""
    if match := _AGO.fullmatch(text.strip()):
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an ISO date/time nor an age like 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


WORKER_SERVICES = ("gateway", "issuer", "registry")


def _workers(text: str) -> dict[str, int]:
    """`gateway=2,registry=2` → the *_WORKERS variable of each service named."""
    counts: dict[str, int] = {}
    for part in text.split(","):
        service, _, count = part.strip().partition("=")
        if service not in WORKER_SERVICES or not count.isdigit() or not 1 <= int(count) <= 64:
            services = ", ".join(WORKER_SERVICES)
            raise argparse.ArgumentTypeError(f"{part.strip()!r}: give SERVICE=N ({services}; N from 1 to 64)")
        counts[f"{service.upper()}_WORKERS"] = int(count)
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tokenhub", description="TokenHub operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply database migrations (creates the database and Admin if new)")
    up_command = commands.add_parser(
        "up", help="migrate, then run gateway, issuer, registry and sweeper until stopped"
    )
    up_command.add_argument(
        "--workers",
        type=_workers,
        default={},
        metavar="SERVICE=N,...",
        help="processes per service sharing its port, e.g. gateway=2,registry=2 (sets GATEWAY_WORKERS...)",
    )

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="users_command", required=True
    )
    add = users.add_parser("add", help="create a user and print its id")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--email")
    add.add_argument("--parent", help="the user this one is a sub-user of (Wialon)")
    api_key = users.add_parser("api-key", help="print a new API key for the user (hotspot dialect)")
    api_key.add_argument("name")
    api_key.add_argument("--revoke", action="store_true", help="delete every API key of the user instead")
    for action, what in (
        ("disable", "refuse every credential of the user, at once, until it is enabled again"),
        ("enable", "let a disabled user log in again (what was ended stays ended)"),
        (
            "revoke",
            "end every session and ChatApp pair of the user, disable its Zabbix API tokens, "
            "delete its Wialon tokens and API keys",
        ),
    ):
        users.add_parser(action, help=what).add_argument("name")

    audit = commands.add_parser("audit", help="print security events (newest last), one JSON object a line")
    audit.add_argument(
        "--since", type=_moment, help="only events at or after: ISO date/time, or 7d / 12h / 30m ago"
    )
    audit.add_argument("--user", help="only events by or about this user (name or id)")
    audit.add_argument("--limit", type=_whole_number(1), default=1000)

    apps = commands.add_parser("apps", help="manage ChatApp-style applications").add_subparsers(
        dest="apps_command", required=True
    )
    app_add = apps.add_parser("add", help="register an application")
    app_add.add_argument("app_id")
    app_add.add_argument("--name", dest="app_name", metavar="NAME")
    app_add.add_argument("--daily-quota", type=_whole_number(0), default=100)
    app_add.add_argument("--access-ttl", type=_whole_number(1), default=86400)
    app_add.add_argument("--refresh-ttl", type=_whole_number(1), default=1209600)
    return parser


# --- commands ------------------------------------------------------------------------------------


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[None]]) -> None:
    pool = await create_pool(settings.database_url, 2, settings.store_timeout)
    try:
        await work(Store(pool, settings.pepper, settings.store_timeout))
    finally:
        await pool.close()


async def migrate(settings: Settings) -> None:
    created = await migrations.ensure_database(settings.database_url, settings.store_timeout)
    if created:
        print(f"created database {database_name(settings.database_url)}", file=sys.stderr)
    conn = await connect(settings.database_url, settings.store_timeout)
    try:
        applied = await migrations.apply(conn)
        print(f"applied {', '.join(applied)}" if applied else "schema is up to date", file=sys.stderr)
        role = settings.service_db_user
        if role is not None:
            created = await migrations.set_up_service_role(conn, role, settings.service_db_password)
            print(
                f"{'created' if created else 'updated'} role {role}: point the services' DATABASE_URL at it",
                file=sys.stderr,
            )
    finally:
        await conn.close()

    async def bootstrap(store: Store) -> None:
        password = settings.admin_password
        generated = password is None
        if password is None:
            password = new_urlsafe_secret(18)
        if await store.bootstrap_admin(password) is not None and generated:
            # Printed once, never stored in plaintext: the operator must keep it now.
            print(f"created super admin 'Admin' with password: {password}", file=sys.stderr)

    await _with_store(settings, bootstrap)


async def users_add(settings: Settings, args: Arguments) -> None:
    password = None
    if args.password_stdin:
        # typeshed allows sys.stdin to be missing (Any); a command line always has one.
        password = cast(TextIO, sys.stdin).readline().rstrip("\r\n")

    async def work(store: Store) -> None:
        user_id = await store.add_user(
            args.name, args.role, password=password, email=args.email, parent=args.parent
        )
        print(user_id)

    await _with_store(settings, work)


async def users_api_key(settings: Settings, args: Arguments) -> None:
    async def work(store: Store) -> None:
        if not args.revoke:
            print(await store.new_api_key(args.name))
            return
        user, count = await store.revoke_api_keys(args.name)
        await _tell_redis(
            settings,
            user.username,
            lambda client: revocations.forget_account_verifications(client, settings.redis_prefix, user.id),
        )
        print(f"revoked {count} API key(s) of {user.username}")

    await _with_store(settings, work)


async def users_disable(settings: Settings, args: Arguments) -> None:
    async def work(store: Store) -> None:
        user = await store.set_status(args.name, "disabled")
        await _tell_redis(
            settings,
            user.username,
            lambda client: revocations.end_account_credentials(
                client, settings.redis_prefix, user.id, disabled=True
            ),
        )
        print(f"disabled {user.username}: sessions and ChatApp pairs ended, every other credential refused")

    await _with_store(settings, work)


async def users_enable(settings: Settings, args: Arguments) -> None:
    async def work(store: Store) -> None:
        user = await store.set_status(args.name, "active")
        await _tell_redis(
            settings,
            user.username,
            lambda client: revocations.enable_account(client, settings.redis_prefix, user.id),
        )
        print(f"enabled {user.username}")

    await _with_store(settings, work)


async def users_revoke(settings: Settings, args: Arguments) -> None:
    async def work(store: Store) -> None:
        revoked = await store.revoke_credentials(args.name)
        name, user_id = revoked.user.username, revoked.user.id
        # The new epoch ends every session, the deleted Wialon tokens' included, and the message
        # drops every gateway's cached checks of the account's Zabbix API tokens and API keys.
        await _tell_redis(
            settings,
            name,
            lambda client: revocations.end_account_credentials(
                client, settings.redis_prefix, user_id, disabled=None
            ),
        )
        print(
            f"revoked {name}: sessions and ChatApp pairs ended, {len(revoked.zabbix_tokens)} Zabbix API "
            f"token(s) disabled, {len(revoked.wialon_tokens)} Wialon token(s) and {revoked.api_keys} "
            "API key(s) deleted"
        )

    await _with_store(settings, work)


async def _tell_redis(settings: Settings, name: str, action: Callable[[AnyRedis], Awaitable[None]]) -> None:
    """Run one revocation step against Redis (shared/revocations.py), after Postgres has changed. If
    Redis does not answer, say what did and did not happen and how to finish: the command is
    idempotent, running it again completes it."""
    client = redis_client(settings, socket_timeout=settings.store_timeout)
    try:
        await action(client)
    except _REDIS_FAILED as exc:
        raise StoreError(
            f"the change to {name} is in the database, but Redis does not answer at REDIS_URL "
            f"({redact(settings.redis_url)}): {type(exc).__name__}; its sessions and ChatApp pairs are "
            "not ended yet. Start Redis and run the same command again."
        ) from exc
    finally:
        await client.aclose()


async def apps_add(settings: Settings, args: Arguments) -> None:
    async def work(store: Store) -> None:
        await store.add_app(
            args.app_id, args.app_name or args.app_id, args.daily_quota, args.access_ttl, args.refresh_ttl
        )

    await _with_store(settings, work)


async def audit_events(settings: Settings, args: Arguments) -> None:
    async def work(store: Store) -> None:
        user_id = None
        if args.user is not None:
            user_id = int(args.user) if args.user.isdigit() else (await store.user_by_name(args.user)).id
        for event in await store.audit_events(since=args.since, user_id=user_id, limit=args.limit):
            print(orjson.dumps(event, default=str).decode())

    await _with_store(settings, work)


async def check_stores(settings: Settings) -> list[str]:
    """Plain sentences for every store that does not answer; empty when both do."""
    missing = []
    try:
        conn = await connect(settings.database_url, settings.store_timeout)
        await conn.close()
    except asyncpg.InvalidCatalogNameError:
        pass  # the server answers; `migrate` creates the database next
    except ANY_DATABASE_ERROR as exc:
        missing.append(
            f"PostgreSQL does not answer at DATABASE_URL ({redact(settings.database_url)}): {exc}. "
            "Start it (pg_ctlcluster <version> main start) or set DATABASE_URL."
        )
    client = redis_client(settings)
    try:
        await client.ping()
    except _REDIS_UNREACHABLE as exc:
        missing.append(
            f"Redis does not answer at REDIS_URL ({redact(settings.redis_url)}): {exc}. "
            "Start redis-server or set REDIS_URL."
        )
    finally:
        await client.aclose()
    return missing


def _run(coro: Awaitable[None], settings: Settings) -> int:
    async def guarded() -> int:
        try:
            await coro
        except UsageError as exc:
            sys.stderr.write(f"tokenhub: error: {exc}\n")
            return EXIT_USAGE
        except StoreError as exc:
            sys.stderr.write(f"tokenhub: error: {exc}\n")
            return EXIT_UNAVAILABLE
        except (InvalidInput, NotFound) as exc:
            sys.stderr.write(f"tokenhub: error: {exc.message}\n")
            return EXIT_USAGE
        except TokenHubError as exc:
            sys.stderr.write(f"tokenhub: error: {exc.message}\n")
            return EXIT_USAGE if exc.status < 500 else EXIT_UNAVAILABLE
        except Exception as exc:
            problem = database_problem(exc, settings.database_url)
            if problem is not None:
                sys.stderr.write(f"tokenhub: error: {problem}\n")
                return EXIT_UNAVAILABLE
            domain = translate(exc)
            if domain is not None:
                sys.stderr.write(f"tokenhub: error: {domain.message}\n")
                return EXIT_USAGE if domain.status < 500 else EXIT_UNAVAILABLE
            if settings.log_level.upper() == "DEBUG":
                raise
            # A bug of ours: one line for the operator, the traceback on request.
            sys.stderr.write(
                f"tokenhub: error: unexpected {type(exc).__name__}: {exc} "
                "(TOKENHUB_LOG_LEVEL=DEBUG shows where)\n"
            )
            return EXIT_UNAVAILABLE
        return 0

    return asyncio.run(guarded())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv, namespace=Arguments())
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"tokenhub: error: bad settings: {exc}\n")
        return EXIT_USAGE
    if args.command == "migrate":
        return _run(migrate(settings), settings)
    if args.command == "up":
        from tokenhub.supervisor import up

        missing = asyncio.run(check_stores(settings))
        if missing:
            for line in missing:
                sys.stderr.write(f"tokenhub: {line}\n")
            return EXIT_UNAVAILABLE
        status = _run(migrate(settings), settings)
        environ = dict(os.environ, **{name: str(n) for name, n in args.workers.items()})
        return status or up(settings, environ)
    if args.command == "audit":
        return _run(audit_events(settings, args), settings)
    if args.command == "users":
        command = {
            "add": users_add,
            "api-key": users_api_key,
            "disable": users_disable,
            "enable": users_enable,
            "revoke": users_revoke,
        }[args.users_command]
        return _run(command(settings, args), settings)
    return _run(apps_add(settings, args), settings)


if __name__ == "__main__":
    raise SystemExit(main())
