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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from shared.audit import record_audit
from shared.contracts.registry.accounts import AuditEvent
from shared.errors import Expired, Forbidden, NotFound, Unavailable, VoucherSpent
from shared.secrets import Sealer, lookup_hash
from shared.sqlfile import load_queries

if TYPE_CHECKING:  # not subscriptable at run time
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

Q = load_queries(Path(__file__).with_name("vouchers.sql"))

KIND = "voucher"
CODE_DIGITS = 10
# One createtokens, repaytokens or deletetokens call; also the largest gettokens page.
MAX_BATCH = 10_000
# lifetime_s is an integer column.
MAX_LIFETIME_S = 2**31 - 1
MAX_OFFSET = 2**31 - 1
# Codes never start with 0, so a client that stores them as numbers gets the same code back.
_CODE_LOW = 10 ** (CODE_DIGITS - 1)
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


# A voucher as the registry hands it out: the row's columns (times in unix seconds, as the queries
# select them) and its code. A plain dict, built once per row: listings move 100s of them.
Voucher = dict[str, Any]
_VOUCHER_COLUMNS = (
    "id",
    "owner_id",
    "created_at",
    "first_used_at",
    "expires_at",
    "repaid_at",
    "mac",
    "multi_use",
    "lifetime_s",
    "external_ref",
    "external_ref_numeric",
)


def voucher(row: asyncpg.Record, code: str) -> Voucher:
    found: Voucher = {name: row[name] for name in _VOUCHER_COLUMNS}
    found["code"] = code
    return found


@dataclass(frozen=True)
class Filters:
    """gettokens' filters: None ignores, True keeps vouchers with the attribute, False without."""

    used: bool | None = None
    repaid: bool | None = None
    multi_use: bool | None = None
    has_lifetime: bool | None = None
    code: str | None = None
    external_ref: str | None = None
    limit: int = MAX_BATCH
    offset: int = 0


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
        return voucher(row, self._sealer.unseal(row["sealed_secret"], seal_context(row["secret_hash"])))

    async def _owner_scope(self, conn: Connection, actor_id: int) -> int | None:
        """The owner the actor is limited to, or None for a super_admin (every owner)."""
        row = await conn.fetchrow(Q["actor"], actor_id)
        if row is None or row["status"] != "active":
            raise Forbidden("the account cannot act")
        return None if row["role"] == "super_admin" else actor_id

    async def _audit(
        self,
        conn: Connection,
        event: str,
        actor_id: int,
        client_addr: str | None,
        details: dict[str, Any],
        token_id: int | None = None,
    ) -> None:
        audited = AuditEvent(
            event=event, actor_id=actor_id, kind=KIND, client_addr=client_addr, details=details
        )
        await record_audit(conn, audited, token_ids=None if token_id is None else [token_id])

    # --- createtokens --------------------------------------------------------------------------

    async def create(
        self,
        actor_id: int,
        count: int,
        *,
        multi_use: bool,
        lifetime_s: int,
        external_ref: str | None,
        external_ref_numeric: bool = False,
        client_addr: str | None = None,
    ) -> list[Voucher]:
        """`count` new vouchers owned by the actor, all in one transaction: all of them or none."""
        created: list[Voucher] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await self._owner_scope(conn, actor_id)
            drawn: set[str] = set()
            for _ in range(_MAX_ROUNDS):
                # Drawing, hashing and sealing 10,000 codes takes ~0.2 s of CPU: off the event loop.
                codes, hashes, sealed = await asyncio.to_thread(self._draw, count - len(created), drawn)
                drawn.update(codes)
                rows = await conn.fetch(
                    Q["insert_vouchers"],
                    actor_id,
                    hashes,
                    sealed,
                    multi_use,
                    lifetime_s,
                    external_ref,
                    external_ref_numeric,
                )
                code_of = dict(zip(hashes, codes, strict=True))
                created.extend(voucher(row, code_of[row["secret_hash"]]) for row in rows)
                if len(created) == count:
                    break
            else:
                # Practically impossible unless the code space is nearly full; nothing is written.
                raise Unavailable("could not find enough free voucher codes, try again")
            created.sort(key=lambda v: v["id"])
            await self._audit(
                conn,
                "created",
                actor_id,
                client_addr,
                {
                    "count": count,
                    "first_id": created[0]["id"],
                    "last_id": created[-1]["id"],
                    "multi_use": multi_use,
                    "lifetime_s": lifetime_s,
                },
            )
        return created

    # --- gettokens -----------------------------------------------------------------------------

    async def search(self, actor_id: int, f: Filters) -> list[Voucher]:
        """Live vouchers the actor may see that pass the filters, in creation order, one page."""
        flags = (f.used, f.repaid, f.multi_use, f.has_lifetime)
        async with self.pool.acquire() as conn:
            # The driving condition picks the query, so each has a plan that uses its index.
            if f.code is None and f.external_ref is None:
                # A listing, the hot path: the actor check rides in the operator's statement.
                rows = await conn.fetch(Q["search_owner"], actor_id, *flags, f.limit, f.offset)
                if not rows or rows[0]["actor_status"] != "active":
                    raise Forbidden("the account cannot act")
                if rows[0]["actor_role"] == "super_admin":
                    rows = await conn.fetch(Q["search_all"], *flags, f.limit, f.offset)
                return [self._reveal(row) for row in rows if row["id"] is not None]
            owner = await self._owner_scope(conn, actor_id)
            if f.code is not None:
                rows = await conn.fetch(
                    Q["search_by_code"], self._hash(f.code), owner, *flags, f.external_ref, f.limit, f.offset
                )
            else:
                rows = await conn.fetch(Q["search_by_ref"], f.external_ref, owner, *flags, f.limit, f.offset)
        return [self._reveal(row) for row in rows]

    # --- usetoken ------------------------------------------------------------------------------

    async def use(self, actor_id: int, code: str, mac: str, client_addr: str | None = None) -> Voucher:
        """Redeem a voucher from the device `mac` (lower-case colon form).

        Fails with NotFound (unknown, or another operator's), Conflict reason "deleted", "repaid"
        or "used" (a single-use voucher bound to another MAC), or Expired. The row lock makes two
        concurrent first uses from different MACs of a single-use voucher end with one winner.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._owner_scope(conn, actor_id)
            row = await conn.fetchrow(Q["voucher_for_use"], self._hash(code), owner)
            if row is None:
                raise NotFound("no such voucher")
            if row["deleted_at"] is not None:
                raise VoucherSpent("the voucher was deleted", reason="deleted")
            if row["repaid_at"] is not None:
                raise VoucherSpent("the voucher was repaid", reason="repaid")
            if row["is_expired"]:
                raise Expired("the voucher's validity period is over")
            if not row["multi_use"] and row["mac"] is not None and row["mac"] != mac:
                raise VoucherSpent("the voucher is bound to another device", reason="used")
            first_use = row["first_used_at"] is None
            used = await conn.fetchrow(Q["mark_voucher_used"], row["id"], mac)
            assert used is not None  # the row is locked by this transaction
            if first_use:
                # Only the first use changes the voucher's state; later ones are reconnects.
                await self._audit(conn, "used", actor_id, client_addr, {"mac": mac}, token_id=row["id"])
        return voucher(used, code)

    # --- repaytokens, deletetokens -------------------------------------------------------------

    async def repay(self, actor_id: int, codes: Sequence[str], client_addr: str | None = None) -> BatchResult:
        """Annul the actor's vouchers among `codes`; repaying again keeps the first repaid_at."""
        unique = list(dict.fromkeys(codes))
        code_of = {self._hash(code): code for code in unique}
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._owner_scope(conn, actor_id)
            rows = await conn.fetch(Q["repay_vouchers"], list(code_of), owner)
            changed = sorted(row["id"] for row in rows if row["changed"])
            if changed:
                await self._audit(
                    conn, "repaid", actor_id, client_addr, {"count": len(changed), "token_ids": changed}
                )
        return self._batch_result(unique, code_of, rows)

    async def delete(
        self, actor_id: int, codes: Sequence[str], client_addr: str | None = None
    ) -> BatchResult:
        """Soft-delete the actor's vouchers among `codes`; a deleted voucher is not found again."""
        unique = list(dict.fromkeys(codes))
        code_of = {self._hash(code): code for code in unique}
        async with self.pool.acquire() as conn, conn.transaction():
            owner = await self._owner_scope(conn, actor_id)
            rows = await conn.fetch(Q["delete_vouchers"], list(code_of), owner)
            if rows:
                ids = sorted(row["id"] for row in rows)
                await self._audit(
                    conn, "deleted", actor_id, client_addr, {"count": len(ids), "token_ids": ids}
                )
        return self._batch_result(unique, code_of, rows)

    @staticmethod
    def _batch_result(
        unique: list[str], code_of: dict[bytes, str], rows: list[asyncpg.Record]
    ) -> BatchResult:
        found = {code_of[row["secret_hash"]] for row in rows}
        return BatchResult(
            done=[code for code in unique if code in found],
            not_found=[code for code in unique if code not in found],
        )
