"""The world the authorization matrix (test_authorization_matrix.py) runs in: one cluster over a
database of its own, and the actors of every dialect, made the way an operator makes them (the
`tokenhub` command line) and logged in the way clients log in.

A database of its own, because "the super_admin sees everything" can only be compared as a set
against a database that holds nothing but this world.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from shared.secrets import lookup_hash
from shared.settings import DEV_PEPPER
from tests.conftest import ADMIN_PASSWORD, FreshDatabases, base_environment, run_cli
from tests.e2e.harness import Cluster, running_cluster
from tests.e2e.hotspot_client import Hotspot, Operator, loopback_session, random_loopback
from tests.e2e.wialon_client import Wialon, WialonUser
from tests.e2e.zabbix_client import login, rpc


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def secret_hash(secret: str) -> bytes:
    """How the registry finds a secret (tests run with the development pepper)."""
    return lookup_hash(secret, DEV_PEPPER)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    password: str
    email: str | None = None


@dataclass(frozen=True)
class People:
    zabbix: dict[str, Person]  # super_admin, admin, user, guest
    wialon: dict[str, Person]  # parent, child (below parent), stranger, super_admin, guest
    operators: dict[str, Operator]  # op_a, op_b, super_admin
    chat: dict[str, Person]  # alice, bob
    apps: dict[str, str]  # the app each ChatApp user uses


def _add_user(env: dict[str, str], role: str, *, email: bool = False, parent: str | None = None) -> Person:
    name = unique(role)
    password = f"Pw-{secrets.token_urlsafe(12)}"
    args = ["users", "add", name, "--role", role, "--password-stdin"]
    address = f"{name}@example.com" if email else None
    if address is not None:
        args += ["--email", address]
    if parent is not None:
        args += ["--parent", parent]
    result = run_cli(args, env, password)
    assert result.returncode == 0, result.stderr
    return Person(int(result.stdout.strip()), name, password, address)


def _api_key(env: dict[str, str], name: str) -> str:
    result = run_cli(["users", "api-key", name], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _add_app(env: dict[str, str]) -> str:
    app_id = unique("app")
    # Far above what the matrix spends, so a quota never stands in for a refusal.
    result = run_cli(["apps", "add", app_id, "--daily-quota", "1000"], env)
    assert result.returncode == 0, result.stderr
    return app_id


class _Pending:
    """CLI commands run on a few threads: each is a process that mostly waits for Postgres or for
    Argon2, and the cluster starts meanwhile."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    def user(self, env: dict[str, str], role: str, **options: Any) -> Future[Person]:
        return self.pool.submit(_add_user, env, role, **options)

    def key(self, env: dict[str, str], name: str) -> Future[str]:
        return self.pool.submit(_api_key, env, name)

    def app(self, env: dict[str, str]) -> Future[str]:
        return self.pool.submit(_add_app, env)


@contextlib.contextmanager
def matrix_cluster(
    fresh_databases: FreshDatabases, redis_server: str, redis_prefix: str, log_dir: Path
) -> Iterator[tuple[Cluster, str, People]]:
    """The four services over a fresh database, and the people of every dialect in it."""
    dsn = fresh_databases.dsn(fresh_databases.name())
    env = base_environment(dsn, redis_server, f"{redis_prefix}matrix-{secrets.token_hex(3)}:")
    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    with ThreadPoolExecutor(max_workers=6) as pool:
        pending = _Pending(pool)
        zabbix = {role: pending.user(env, role) for role in ("admin", "user", "guest")}
        parent, stranger = pending.user(env, "user"), pending.user(env, "user")
        op_a, op_b = pending.user(env, "admin"), pending.user(env, "user")
        chat = {name: pending.user(env, "user", email=True) for name in ("alice", "bob")}
        apps = {name: pending.app(env) for name in ("alice", "bob")}
        admin_key = pending.key(env, "Admin")
        with running_cluster(env, log_dir) as cluster:
            child = pending.user(env, "user", parent=parent.result().name)
            keys = {name: pending.key(env, op.result().name) for name, op in (("op_a", op_a), ("op_b", op_b))}
            bootstrap = Person(1, "Admin", ADMIN_PASSWORD)  # `tokenhub migrate` makes it, as Zabbix does
            people = People(
                zabbix={
                    "super_admin": bootstrap,
                    **{role: person.result() for role, person in zabbix.items()},
                },
                wialon={
                    "parent": parent.result(),
                    "child": child.result(),
                    "stranger": stranger.result(),
                    # Roles are the same users in every dialect.
                    "super_admin": bootstrap,
                    "guest": zabbix["guest"].result(),
                },
                operators={
                    "op_a": Operator(op_a.result().id, op_a.result().name, keys["op_a"].result()),
                    "op_b": Operator(op_b.result().id, op_b.result().name, keys["op_b"].result()),
                    "super_admin": Operator(bootstrap.id, bootstrap.name, admin_key.result()),
                },
                chat={name: person.result() for name, person in chat.items()},
                apps={name: app.result() for name, app in apps.items()},
            )
            yield cluster, dsn, people


@dataclass
class World:
    base: str
    http: aiohttp.ClientSession
    db: asyncpg.Connection
    people: People
    wialon: Wialon
    hotspot: Hotspot
    zabbix_auth: dict[str, str] = field(default_factory=dict)  # role -> its session (guest: API token)
    zabbix_api_token: dict[str, str] = field(default_factory=dict)  # role -> an API token of its own
    wialon_sid: dict[str, str] = field(default_factory=dict)  # user -> a password session

    # --- Zabbix --------------------------------------------------------------------------------

    async def zabbix(self, auth: str | None, method: str, params: Any) -> dict[str, Any]:
        return await rpc(self.http, self.base, method, params, auth=auth)

    async def zabbix_as(self, role: str, method: str, params: Any) -> dict[str, Any]:
        return await self.zabbix(self.zabbix_auth[role], method, params)

    async def zabbix_token(self, owner: str) -> int:
        """A new token of `owner`'s, made by the super_admin (who alone may make one for anyone)."""
        owner_id = self.people.zabbix[owner].id
        reply = await self.zabbix_as("super_admin", "token.create", {"name": unique("t"), "userid": owner_id})
        return int(reply["result"]["tokenids"][0])

    async def zabbix_secret(self, token_id: int) -> str:
        reply = await self.zabbix_as("super_admin", "token.generate", [str(token_id)])
        secret: str = reply["result"][0]["token"]
        return secret

    async def zabbix_login(self, role: str) -> str:
        person = self.people.zabbix[role]
        return await login(self.http, self.base, person.name, person.password)

    # --- Wialon --------------------------------------------------------------------------------

    async def wialon_token(self, owner: str, flags: int = -1) -> str:
        """A new token of `owner`'s, made in the owner's own password session."""
        created = await self.wialon.create(self.wialon_sid[owner], app=unique("w"), fl=flags)
        h: str = created["h"]
        return h

    async def wialon_session(self, actor: str) -> str:
        """The actor's session; "limited" is a session of a parent's token with fl 0x100 (online
        tracking only), opened afresh each time since the parent's tokens may have been deleted."""
        if actor == "limited":
            body = await self.wialon.token_login(await self.wialon_token("parent", flags=0x100))
            sid: str = body["eid"]
            return sid
        return self.wialon_sid[actor]

    def wialon_user(self, actor: str) -> Person:
        return self.people.wialon["parent" if actor == "limited" else actor]

    # --- ChatApp -------------------------------------------------------------------------------

    async def chat(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        async with self.http.request(method, self.base + path, json=json, headers=headers) as r:
            raw = await r.read()
            return r.status, orjson.loads(raw) if raw else None, dict(r.headers)

    async def chat_make(
        self, account: str, password_of: str | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """tokens.make for `account`'s e-mail and app, with the password of `password_of`."""
        person = self.people.chat[account]
        password = self.people.chat[password_of or account].password
        body = {"email": person.email, "password": password, "appId": self.people.apps[account]}
        return await self.chat("POST", "/v1/tokens", json=body)

    async def chat_pair(self, account: str) -> dict[str, Any]:
        status, body, _ = await self.chat_make(account)
        assert status == 200, body
        pair: dict[str, Any] = body["data"]
        return pair

    # --- Postgres ------------------------------------------------------------------------------

    async def row(self, token_id: int) -> dict[str, Any] | None:
        row = await self.db.fetchrow("SELECT * FROM tokens WHERE id = $1", token_id)
        return None if row is None else dict(row)

    async def row_of(self, secret: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow("SELECT * FROM tokens WHERE secret_hash = $1", secret_hash(secret))
        return None if row is None else dict(row)


@contextlib.asynccontextmanager
async def open_world(cluster: Cluster, dsn: str, people: People) -> AsyncIterator[World]:
    """Everyone logged in: Zabbix sessions (the guest's API token), an API token of each Zabbix role,
    Wialon password sessions."""
    address = random_loopback()  # throttles count per address: this world's failures are its own
    async with loopback_session(address) as http:
        db = await asyncpg.connect(dsn)
        try:
            base = cluster.gateway_url
            world = World(base, http, db, people, Wialon(http, base, address), Hotspot(http, base, address))
            for role in ("super_admin", "admin", "user"):
                world.zabbix_auth[role] = await world.zabbix_login(role)
            # The guest cannot log in (Zabbix 6.0.14); a token the super_admin made for it is all a
            # guest can hold.
            world.zabbix_auth["guest"] = await world.zabbix_secret(await world.zabbix_token("guest"))
            for role in ("super_admin", "admin", "user"):
                world.zabbix_api_token[role] = await world.zabbix_secret(await world.zabbix_token(role))
            for name, person in people.wialon.items():
                world.wialon_sid[name] = await world.wialon.login(
                    WialonUser(person.id, person.name, person.password)
                )
            yield world
        finally:
            await db.close()
