"""The admin API's store (issue 17; the contract is shared/contracts/registry/admin.py).

Who may do what is decided here, from Postgres, on every call:
- the actor must be an active user and not a guest (Forbidden otherwise);
- it reaches `users_reached(actor)` (0006): a super_admin everyone, an admin itself and every user
  below it in the parent chain, anyone else itself. Whatever is out of reach is NotFound, exactly as
  something missing;
- changing another account (role, status, password, revocation) needs an admin or super_admin; an
  admin changes only `user` and `guest` accounts and creates only those, below itself; nobody
  changes their own role or status (a console must not lock out the last operator by a slip);
- apps are global: everyone lists them, a super_admin creates and changes them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import cast

import asyncpg
from pydantic import BaseModel, JsonValue

from registry import store as accounts
from registry.store import acting_user, revoke_credentials_of
from registry.vouchers import seal_context
from shared.audit import record_audit
from shared.contracts.registry import admin as api
from shared.contracts.registry.accounts import AuditEvent, Role, User
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.postgres import Connection, fetch_value, row_as, rows_as
from shared.secrets import Sealer, hash_password_async
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("admin.sql"))
# The accounts' own statements (registry/queries.sql), the very ones `tokenhub users ...` runs:
# creating a user, setting its status, revoking its credentials, adding an app. Reused, not copied.
ACCOUNT_QUERIES = accounts.Q

# Roles an admin may give and accounts it may change; a super_admin any.
_ADMIN_MANAGES: frozenset[Role] = frozenset({"user", "guest"})
# How long a summary is reused (per reach: everyone, or one set of users).
SUMMARY_CACHE_S = 10.0
# Reaches whose summaries are kept at once; past it, all are forgotten (a bound, not an LRU).
_MAX_CACHED_SUMMARIES = 1000


class _Window(BaseModel):
    counted_at: datetime
    since: datetime


def like_pattern(text: str) -> str:
    """A case-insensitive substring pattern for ILIKE, with the wildcards in `text` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class AdminStore:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, summary_cache_s: float = SUMMARY_CACHE_S) -> None:
        self.pool = pool
        self._sealer = sealer
        self._summary_cache_s = summary_cache_s
        # Per reach (None: everyone): when it was counted, and the summary.
        self._summaries: dict[tuple[int, ...] | None, tuple[float, api.Summary]] = {}
        self._summary_locks: dict[tuple[int, ...] | None, asyncio.Lock] = {}

    # --- who acts, and what it reaches ---------------------------------------------------------

    @staticmethod
    async def _actor(conn: Connection, actor_id: int) -> User:
        actor = await acting_user(conn, actor_id)
        if actor is None or actor.status != "active" or actor.role == "guest":
            raise Forbidden("the account cannot act")
        return actor

    @staticmethod
    async def _reach(conn: Connection, actor_id: int) -> list[int] | None:
        return cast(list[int] | None, await conn.fetchval(Q["reach"], actor_id))

    async def _scope(self, conn: Connection, actor_id: int) -> tuple[User, list[int] | None]:
        return await self._actor(conn, actor_id), await self._reach(conn, actor_id)

    @staticmethod
    async def _user_in(conn: Connection, reach: list[int] | None, user_id: int) -> api.AdminUser:
        row = await conn.fetchrow(Q["user_in_reach"], reach, user_id)
        if row is None:
            raise NotFound("no such user")
        return row_as(api.AdminUser, row)

    async def _managed(
        self, conn: Connection, req: api.UserAction, *, self_ok: bool
    ) -> tuple[User, api.AdminUser]:
        """The actor and the account it changes, refused unless the actor may change it."""
        actor, reach = await self._scope(conn, req.actor_id)
        target = await self._user_in(conn, reach, req.user_id)
        if target.id == actor.id:
            if not self_ok:
                raise Conflict("you cannot change your own role or status")
            return actor, target
        if actor.role == "user" or (actor.role == "admin" and target.role not in _ADMIN_MANAGES):
            raise Forbidden("your role may not change this account")
        return actor, target

    @staticmethod
    async def _audit(
        conn: Connection, event: str, req: api.Acting, subject_id: int | None, **details: JsonValue
    ) -> None:
        await record_audit(
            conn,
            AuditEvent(
                event=event,
                actor_id=req.actor_id,
                subject_id=subject_id,
                client_addr=req.client_addr,
                details={**details, "via": "admin"},
            ),
        )

    # --- users -----------------------------------------------------------------------------------

    async def list_users(self, req: api.ListUsers) -> api.UserPage:
        async with self.pool.acquire() as conn:
            _, reach = await self._scope(conn, req.actor_id)
            q = None if req.q is None else like_pattern(req.q)
            rows = await conn.fetch(
                Q["list_users"],
                reach,
                q,
                req.role,
                req.status,
                req.with_email,
                req.after_id,
                req.limit + 1,
                req.under,
            )
        users = rows_as(api.AdminUser, rows)
        more = len(users) > req.limit
        users = users[: req.limit]
        return api.UserPage(users=users, next_id=users[-1].id if more else None)

    async def get_user(self, req: api.UserAction) -> api.AdminUser:
        async with self.pool.acquire() as conn:
            _, reach = await self._scope(conn, req.actor_id)
            return await self._user_in(conn, reach, req.user_id)

    async def _parent_for(self, conn: Connection, req: api.CreateUser) -> int | None:
        """The new account's parent, refused unless the actor may create this account there."""
        actor, reach = await self._scope(conn, req.actor_id)
        if actor.role == "user" or (actor.role == "admin" and req.role not in _ADMIN_MANAGES):
            raise Forbidden("your role may not create this account")
        parent_id: int | None = actor.id if req.parent_id is None else req.parent_id or None
        if parent_id is None and actor.role != "super_admin":
            raise Forbidden("an admin's users are below it")
        if parent_id is not None:
            await self._user_in(conn, reach, parent_id)
        return parent_id

    async def create_user(self, req: api.CreateUser) -> api.AdminUser:
        if req.email is not None and not accounts.EMAIL.fullmatch(req.email):
            raise InvalidInput(f"{req.email!r} is not an e-mail address")
        # Refused before the slow hash (a caller who may not must not make the registry spend
        # 60 ms of CPU per try), and checked again in the transaction that writes.
        async with self.pool.acquire() as conn:
            await self._parent_for(conn, req)
        password_hash = await hash_password_async(req.password)
        async with self.pool.acquire() as conn, conn.transaction():
            parent_id = await self._parent_for(conn, req)
            user_id = await fetch_value(
                conn,
                int,
                ACCOUNT_QUERIES["insert_user"],
                req.username,
                req.email,
                password_hash,
                req.role,
                parent_id,
            )
            await self._audit(conn, "user_created", req, user_id, role=req.role)
            return await self._user_in(conn, None, user_id)

    async def set_role(self, req: api.SetRole) -> api.AdminUser:
        async with self.pool.acquire() as conn, conn.transaction():
            actor, target = await self._managed(conn, req, self_ok=False)
            if actor.role == "admin" and req.role not in _ADMIN_MANAGES:
                raise Forbidden("your role may not give this role")
            await conn.execute(Q["set_role"], target.id, req.role)
            await self._audit(conn, "user_role_changed", req, target.id, role=req.role, was=target.role)
            return await self._user_in(conn, None, target.id)

    async def set_status(self, req: api.SetStatus) -> api.AdminUser:
        async with self.pool.acquire() as conn, conn.transaction():
            _, target = await self._managed(conn, req, self_ok=False)
            await conn.execute(ACCOUNT_QUERIES["set_user_status"], target.id, req.status)
            event = "user_disabled" if req.status == "disabled" else "user_enabled"
            await self._audit(conn, event, req, target.id, was=target.status)
            return await self._user_in(conn, None, target.id)

    async def set_password(self, req: api.SetPassword) -> api.AdminUser:
        async with self.pool.acquire() as conn:
            await self._managed(conn, req, self_ok=True)  # before the slow hash, as create_user
        password_hash = await hash_password_async(req.password)
        async with self.pool.acquire() as conn, conn.transaction():
            _, target = await self._managed(conn, req, self_ok=True)
            await conn.execute(Q["set_password"], target.id, password_hash)
            await self._audit(conn, "password_reset", req, target.id)
            return target

    async def revoke_user(self, req: api.UserAction) -> api.UserRevoked:
        """As `tokenhub users revoke` (the same function): Zabbix API tokens disabled, Wialon tokens
        and API keys deleted (sessions and pairs live in Redis: the caller ends them)."""
        async with self.pool.acquire() as conn, conn.transaction():
            _, target = await self._managed(conn, req, self_ok=True)
            account = User.model_validate(target.model_dump())
            event = AuditEvent(
                event="user_revoked",
                actor_id=req.actor_id,
                subject_id=target.id,
                client_addr=req.client_addr,
                details={"via": "admin"},
            )
            revoked = await revoke_credentials_of(conn, account, event)
        return api.UserRevoked(
            user=target,
            zabbix_tokens=revoked.zabbix_tokens,
            wialon_tokens=revoked.wialon_tokens,
            api_keys=revoked.api_keys,
        )

    # --- tokens ----------------------------------------------------------------------------------

    def _name(self, row: asyncpg.Record) -> str | None:
        if row["kind"] == "voucher" and row["sealed_secret"] is not None:
            secret_hash = cast(bytes, row["secret_hash"])
            return self._sealer.unseal(cast(bytes, row["sealed_secret"]), seal_context(secret_hash))
        return cast(str | None, row["name"])

    async def list_tokens(self, req: api.ListTokens) -> api.TokenPage:
        if (req.after_at is None) != (req.after_id is None):
            raise InvalidInput("after_at and after_id go together")
        async with self.pool.acquire() as conn:
            _, reach = await self._scope(conn, req.actor_id)
            rows = await conn.fetch(
                Q["list_tokens"],
                reach,
                req.kind,
                req.owner_id,
                None if req.q is None else like_pattern(req.q),
                req.status,
                req.created_after,
                req.created_before,
                req.expires_after,
                req.expires_before,
                req.used_after,
                req.used_before,
                req.after_at,
                req.after_id,
                req.limit + 1,
            )
        tokens = [
            api.AdminToken.model_validate({**dict(row), "name": self._name(row)}) for row in rows[: req.limit]
        ]
        more = len(rows) > req.limit
        last = tokens[-1] if more else None
        return api.TokenPage(
            tokens=tokens,
            next_at=None if last is None else last.created_at,
            next_id=None if last is None else last.id,
        )

    async def _bulk(self, req: api.TokenIds, *, delete: bool) -> api.TokensChanged:
        wanted = sorted(set(req.ids))
        async with self.pool.acquire() as conn, conn.transaction():
            _, reach = await self._scope(conn, req.actor_id)
            rows = await conn.fetch(Q["tokens_in_reach"], reach, wanted)
            by_kind: dict[str, list[int]] = {"zabbix": [], "wialon": [], "voucher": []}
            for row in rows:
                by_kind[row["kind"]].append(row["id"])
            done: dict[str, list[int]] = {}
            if delete:
                done["zabbix"] = [
                    r["id"]
                    for r in await conn.fetch(Q["delete_wialon_or_zabbix"], by_kind["zabbix"], ["zabbix"])
                ]
                done["wialon"] = [
                    r["id"]
                    for r in await conn.fetch(Q["delete_wialon_or_zabbix"], by_kind["wialon"], ["wialon"])
                ]
                done["voucher"] = [
                    r["id"] for r in await conn.fetch(Q["soft_delete_vouchers"], by_kind["voucher"])
                ]
                events = {"zabbix": "deleted", "wialon": "deleted", "voucher": "deleted"}
            else:
                done["zabbix"] = [r["id"] for r in await conn.fetch(Q["disable_zabbix"], by_kind["zabbix"])]
                # Wialon tokens have no disabled state: revoking one deletes it, as Wialon's own does.
                done["wialon"] = [
                    r["id"]
                    for r in await conn.fetch(Q["delete_wialon_or_zabbix"], by_kind["wialon"], ["wialon"])
                ]
                done["voucher"] = [r["id"] for r in await conn.fetch(Q["repay_vouchers"], by_kind["voucher"])]
                events = {"zabbix": "updated", "wialon": "deleted", "voucher": "repaid"}
            for kind, ids in done.items():
                if ids:
                    details: dict[str, JsonValue] = {"via": "admin", "count": len(ids)}
                    if kind == "zabbix" and not delete:
                        details["status"] = "disabled"
                    event = AuditEvent(
                        event=events[kind],
                        actor_id=req.actor_id,
                        kind=kind,
                        client_addr=req.client_addr,
                        details=details,
                    )
                    await record_audit(conn, event, token_ids=sorted(ids))
        acted = {i for ids in done.values() for i in ids}
        return api.TokensChanged(
            zabbix=sorted(done["zabbix"]),
            wialon=sorted(done["wialon"]),
            voucher=sorted(done["voucher"]),
            not_found=[i for i in wanted if i not in acted],
        )

    async def revoke_tokens(self, req: api.TokenIds) -> api.TokensChanged:
        return await self._bulk(req, delete=False)

    async def delete_tokens(self, req: api.TokenIds) -> api.TokensChanged:
        return await self._bulk(req, delete=True)

    # --- apps ------------------------------------------------------------------------------------

    async def list_apps(self, req: api.ListApps) -> list[api.AdminApp]:
        async with self.pool.acquire() as conn:
            await self._actor(conn, req.actor_id)
            return rows_as(api.AdminApp, await conn.fetch(Q["list_apps"], req.limit))

    async def _app_writer(self, conn: Connection, actor_id: int) -> None:
        if (await self._actor(conn, actor_id)).role != "super_admin":
            raise Forbidden("only a super_admin creates and changes apps")

    async def create_app(self, req: api.CreateApp) -> api.AdminApp:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._app_writer(conn, req.actor_id)
            await conn.execute(
                ACCOUNT_QUERIES["insert_app"],
                req.app_id,
                req.name,
                req.daily_quota,
                req.access_ttl,
                req.refresh_ttl,
            )
            await self._audit(conn, "app_created", req, None, app_id=req.app_id, daily_quota=req.daily_quota)
            row = await conn.fetchrow(ACCOUNT_QUERIES["app_by_id"], req.app_id)
            assert row is not None
            return row_as(api.AdminApp, row)

    async def update_app(self, req: api.UpdateApp) -> api.AdminApp:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._app_writer(conn, req.actor_id)
            row = await conn.fetchrow(
                Q["update_app"], req.app_id, req.name, req.daily_quota, req.access_ttl, req.refresh_ttl
            )
            if row is None:
                raise NotFound("no such app")
            changed: dict[str, JsonValue] = {
                k: v
                for k, v in req.model_dump(
                    include={"name", "daily_quota", "access_ttl", "refresh_ttl"}
                ).items()
                if v is not None
            }
            await self._audit(conn, "app_updated", req, None, app_id=req.app_id, **changed)
            return row_as(api.AdminApp, row)

    # --- audit and summary -----------------------------------------------------------------------

    async def list_audit(self, req: api.ListAudit) -> api.AuditPage:
        if (req.after_at is None) != (req.after_id is None):
            raise InvalidInput("after_at and after_id go together")
        async with self.pool.acquire() as conn:
            _, reach = await self._scope(conn, req.actor_id)
            rows = await conn.fetch(
                Q["list_audit"],
                reach,
                req.user_id,
                req.event,
                req.since,
                req.until,
                req.after_at,
                req.after_id,
                req.limit + 1,
            )
        events = rows_as(api.AuditEntry, rows[: req.limit])
        last = events[-1] if len(rows) > req.limit else None
        return api.AuditPage(
            events=events,
            next_at=None if last is None else last.at,
            next_id=None if last is None else last.id,
        )

    async def summary(self, req: api.Acting) -> api.Summary:
        """Counts per kind and status and the last day by hour, for what the actor reaches. Counting
        is a pass over every token reached (0.7 s at 1,000,000 on two cores), so a summary is
        reused for SUMMARY_CACHE_S per reach, as a dashboard's widgets refresh on an interval, and
        computed once however many ask at the same moment (docs/DECISIONS.md, Admin API)."""
        async with self.pool.acquire() as conn:
            _, reach = await self._scope(conn, req.actor_id)
        key = None if reach is None else tuple(sorted(reach))
        lock = self._summary_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._summaries.get(key)
            if cached is not None and time.monotonic() - cached[0] < self._summary_cache_s:
                return cached[1]
            async with self.pool.acquire() as conn:
                counts = rows_as(api.StatusCount, await conn.fetch(Q["count_tokens"], reach))
                window = rows_as(_Window, await conn.fetch(Q["summary_window"]))[0]
                hourly = rows_as(api.Hour, await conn.fetch(Q["hourly"], reach, window.since))
            summary = api.Summary(counts=counts, hourly=hourly, counted_at=window.counted_at)
            if len(self._summaries) >= _MAX_CACHED_SUMMARIES:
                self._summaries.clear()
                self._summary_locks = {key: lock}
            self._summaries[key] = (time.monotonic(), summary)
            return summary
