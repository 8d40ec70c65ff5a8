"""Hotspot vouchers in the tokens table (DESIGN §2.3, issue 6), in TokenHub's own vocabulary.

A voucher code is 10 random decimal digits. Like every secret it is stored twice (DESIGN §4): its
peppered HMAC for lookups (tokens_secret_hash_key makes codes globally unique) and an AES-GCM
sealed copy, because gettokens shows codes again. The sealed copy's associated data is the code's
hash, so a sealed code cannot be moved to another row.

Who sees what is decided here, from the actor's role in the database: a super_admin acts on every
operator's vouchers, anyone else on their own. A voucher of another operator is "not found".
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import asyncpg
from pydantic import BaseModel, JsonValue

from registry.store import acting_user
from shared.audit import record_audit
from shared.contracts.registry.accounts import AuditEvent
from shared.contracts.registry.vouchers import (
    CreateVouchers,
    SearchVouchers,
    UseVoucher,
    Voucher,
    VoucherCodes,
)
from shared.errors import Expired, Forbidden, NotFound, Unavailable, VoucherSpent
from shared.postgres import Connection, row_as, rows_as
from shared.secrets import Sealer, lookup_hash
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("vouchers.sql"))
# The listings newest first (the admin API's order): the same statements with every ORDER BY reversed,
# so each still walks its index, backwards.
_SEARCHES = ("search_owner", "search_all", "search_by_code", "search_by_ref")
NEWEST_FIRST = {
    name: Q[name].replace("ORDER BY t.id", "ORDER BY t.id DESC").replace("ORDER BY id", "ORDER BY id DESC")
    for name in _SEARCHES
}

KIND = "voucher"
CODE_DIGITS = 10
# Codes never start with 0, so a client that stores them as numbers gets the same code back.
_CODE_LOW = 1_000_000_000  # the smallest number of CODE_DIGITS digits
_CODE_SPAN = 9 * _CODE_LOW
# With a million live vouchers a 10,000 batch meets about one clash with an existing code; each
# round redraws only the clashing ones, so a few rounds are plenty and more mean something is wrong.
_MAX_ROUNDS = 8
_SEAL_CONTEXT = b"tokenhub:voucher:"


def new_codes(count: int, taken: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """`count` distinct random codes, none of them in `taken`."""
    codes: set[str] = set()
    while len(codes) < count:
        code = str(_CODE_LOW + secrets.randbelow(_CODE_SPAN))
        if code not in taken:
            codes.add(code)
    return list(codes)


def seal_context(code_hash: bytes) -> bytes:
    return _SEAL_CONTEXT + code_hash


def protect(codes: Sequence[str], pepper: str, sealer: Sealer) -> tuple[list[bytes], list[bytes]]:
    """The lookup hashes and sealed copies of `codes`, in the same order."""
    hashes = [lookup_hash(code, pepper) for code in codes]
    sealed = [sealer.seal(code, seal_context(h)) for code, h in zip(codes, hashes, strict=True)]
    return hashes, sealed


def voucher(row: asyncpg.Record, code: str) -> Voucher:
    """A row of the queries (times in unix seconds, as they select them) with its code. The model
    ignores the row's other columns (the hash, the sealed copy, the actor's role)."""
    columns: dict[str, object] = {**cast(Mapping[str, object], row), "code": code}
    return Voucher.model_validate(columns)


def _secret_hash(row: asyncpg.Record) -> bytes:
    return cast(bytes, row["secret_hash"])


class _ListingHead(BaseModel):
    """search_owner's first row: the actor, and the first voucher of its page (None without any)."""

    actor_role: str
    actor_status: str
    id: int | None


class _UseCheck(BaseModel):
    """What decides whether a voucher may be used now."""

    id: int
    deleted_at: datetime | None
    repaid_at: int | None
    is_expired: bool
    multi_use: bool
    mac: str | None
    first_used_at: int | None


class _Touched(BaseModel):
    """A voucher a repay or delete found; `changed`: whether this call changed it (a voucher repaid
    before is found but not changed; a delete changes every voucher it finds)."""

    id: int
    secret_hash: bytes
    changed: bool = True


@dataclass(frozen=True)
class BatchResult:
    """Which of the codes a repay or delete acted on, and which the caller has no such voucher for."""

    done: list[str]
    not_found: list[str]


class VoucherStore:
    def __init__(self, pool: asyncpg.Pool, pepper: str, sealer: Sealer) -> None:
        self.pool = pool
        self._pepper = pepper
        self._sealer = sealer

    def _draw(self, count: int, taken: set[str]) -> tuple[list[str], list[bytes], list[bytes]]:
        codes = new_codes(count, taken)
        hashes, sealed = protect(codes, self._pepper, self._sealer)
        return codes, hashes, sealed

    def _hash(self, code: str) -> bytes:
        return lookup_hash(code, self._pepper)

    def _reveal(self, row: asyncpg.Record) -> Voucher:
        sealed = cast(bytes, row["sealed_secret"])
        return voucher(row, self._sealer.unseal(sealed, seal_context(_secret_hash(row))))

    @staticmethod
    async def _owner_scope(conn: Connection, actor_id: int) -> int | None:
        """The owner the actor is limited to, or None for a super_admin (every owner)."""
        actor = await acting_user(conn, actor_id)
        if actor is None or actor.status != "active":
            raise Forbidden("the account cannot act")
        return None if actor.role == "super_admin" else actor_id

    @staticmethod
    async def _audit(
        conn: Connection,
        event: str,
        actor_id: int,
        client_addr: str | None,
        details: dict[str, JsonValue],
        token_id: int | None = None,
    ) -> None:
        audited = AuditEvent(
            event=event, actor_id=actor_id, kind=KIND, client_addr=client_addr, details=details
        )
        await record_audit(conn, audited, token_ids=None if token_id is None else [token_id])

    # --- createtokens --------------------------------------------------------------------------

    async def create(self, req: CreateVouchers) -> list[Voucher]:
        """`count` new vouchers owned by the actor, all in one transaction: all of them or none."""
        created: list[Voucher] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await self._owner_scope(conn, req.actor_id)
            drawn: set[str] = set()
            for _ in range(_MAX_ROUNDS):
                # Drawing, hashing and sealing 10,000 codes takes ~0.2 s of CPU: off the event loop.
                batch = await asyncio.to_thread(self._draw, req.count - len(created), drawn)
                codes, hashes, sealed = batch
                drawn.update(codes)
                rows = await conn.fetch(
                    Q["insert_vouchers"],
                    req.actor_id,
                    hashes,
                    sealed,
                    req.multi_use,
                    req.lifetime_s,
                    req.external_ref,
                    req.external_ref_numeric,
                )
                code_of = dict(zip(hashes, codes, strict=True))
                created.extend(voucher(row, code_of[_secret_hash(row)]) for row in rows)
                if len(created) == req.count:
                    break
            else:
                # Practically impossible unless the code space is nearly full; nothing is written.
                raise Unavailable("could not find enough free voucher codes, try again")
            created.sort(key=lambda v: v.id)
            await self._audit(
                conn,
                "created",
                req.actor_id,
                req.client_addr,
                {
                    "count": req.count,
                    "first_id": created[0].id,
                    "last_id": created[-1].id,
                    "multi_use": req.multi_use,
                    "lifetime_s": req.lifetime_s,
                },
            )
        return created

    # --- gettokens -----------------------------------------------------------------------------

    async def search(self, f: SearchVouchers) -> list[Voucher]:
        """Live vouchers the actor may see that pass the filters, in creation order (or newest first),
        one page."""
        flags = (f.used, f.repaid, f.multi_use, f.has_lifetime)
        q = NEWEST_FIRST if f.newest_first else Q
        async with self.pool.acquire() as conn:
            # The driving condition picks the query, so each has a plan that uses its index.
            if f.code is None and f.external_ref is None:
                # A listing, the hot path: the actor check rides in the operator's statement.
                rows = await conn.fetch(q["search_owner"], f.actor_id, *flags, f.limit, f.offset)
                head = row_as(_ListingHead, rows[0]) if rows else None
                if head is None or head.actor_status != "active":
                    raise Forbidden("the account cannot act")
                if head.actor_role == "super_admin":
                    rows = await conn.fetch(q["search_all"], *flags, f.limit, f.offset)
                elif head.id is None:
                    return []  # the actor's row alone: nothing on its page
                return [self._reveal(row) for row in rows]
            owner = await self._owner_scope(conn, f.actor_id)
            if f.code is not None:
                rows = await conn.fetch(
                    q["search_by_code"], self._hash(f.code), owner, *flags, f.external_ref, f.limit, f.offset
                )
            else:
                rows = await conn.fetch(q["search_by_ref"], f.external_ref, owner, *flags, f.limit, f.offset)
        return [self._reveal(row) for row in rows]

    # --- usetoken ------------------------------------------------------------------------------

    async def use(self, req: UseVoucher) -> Voucher:
        """Redeem a voucher from the device `mac` (lower-case colon form).

        Fails with NotFound (unknown, or another operator's), VoucherSpent reason "deleted",
        "repaid" or "used" (a single-use voucher bound to another MAC), or Expired. The row lock
        makes two concurrent first uses from different MACs of a single-use voucher end with one
        winner.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._owner_scope(conn, req.actor_id)
            found = await conn.fetchrow(Q["voucher_for_use"], self._hash(req.code), owner)
            if found is None:
                raise NotFound("no such voucher")
            row = row_as(_UseCheck, found)
            if row.deleted_at is not None:
                raise VoucherSpent("the voucher was deleted", reason="deleted")
            if row.repaid_at is not None:
                raise VoucherSpent("the voucher was repaid", reason="repaid")
            if row.is_expired:
                raise Expired("the voucher's validity period is over")
            if not row.multi_use and row.mac is not None and row.mac != req.mac:
                raise VoucherSpent("the voucher is bound to another device", reason="used")
            used = await conn.fetchrow(Q["mark_voucher_used"], row.id, req.mac)
            assert used is not None  # the row is locked by this transaction
            if row.first_used_at is None:
                # Only the first use changes the voucher's state; later ones are reconnects.
                await self._audit(
                    conn, "used", req.actor_id, req.client_addr, {"mac": req.mac}, token_id=row.id
                )
        return voucher(used, req.code)

    # --- repaytokens, deletetokens -------------------------------------------------------------

    async def repay(self, req: VoucherCodes) -> BatchResult:
        """Annul the actor's vouchers among the codes; repaying again keeps the first repaid_at."""
        return await self._batch(req, Q["repay_vouchers"], "repaid")

    async def delete(self, req: VoucherCodes) -> BatchResult:
        """Soft-delete the actor's vouchers among the codes; a deleted voucher is not found again."""
        return await self._batch(req, Q["delete_vouchers"], "deleted")

    async def _batch(self, req: VoucherCodes, query: str, event: str) -> BatchResult:
        unique = list({code: None for code in req.codes})  # once each, in the caller's order
        code_of = {self._hash(code): code for code in unique}
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._owner_scope(conn, req.actor_id)
            rows = rows_as(_Touched, await conn.fetch(query, list(code_of), owner))
            # Only what this call changed is audited: a voucher repaid before is found, not repaid.
            ids = sorted(row.id for row in rows if row.changed)
            if ids:
                details: dict[str, JsonValue] = {"count": len(ids), "token_ids": list[JsonValue](ids)}
                await self._audit(conn, event, req.actor_id, req.client_addr, details)
        found = {code_of[row.secret_hash] for row in rows}
        return BatchResult(
            done=[code for code in unique if code in found],
            not_found=[code for code in unique if code not in found],
        )
