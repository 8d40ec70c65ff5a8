"""The registry's hotspot vouchers (issue 6), in TokenHub's vocabulary: codes, unix times, booleans
and plain numbers. The hotspot wire format (positional objects, formatted dates, the names
`used_at`, `multiple`, `validity`, `u_id`) is the gateway dialect's business.

Every request names the authenticated operator (`actor_id`) and may carry `client_addr` for the
audit log; the registry decides from the actor's role whose vouchers it reaches (a super_admin
every operator's, anyone else its own; another operator's voucher is "not found").
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from shared.contracts.client import ServiceClient
from shared.contracts.endpoint import Endpoint, Message, Reply
from shared.contracts.registry.accounts import ClientAddr

# One createtokens, repaytokens or deletetokens call; also the largest gettokens page.
MAX_BATCH = 10_000
# lifetime_s is an integer column.
MAX_LIFETIME_S = 2**31 - 1
MAX_OFFSET = 2**31 - 1
MAX_EXTERNAL_REF_LENGTH = 255

Code = Annotated[str, Field(pattern=r"^[0-9]{10}$")]
# Lower-case colon form: the gateway normalises the spellings devices use.
Mac = Annotated[str, Field(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")]
# Printable text only: a u_id is shown to people and compared exactly.
ExternalRef = Annotated[
    str, Field(min_length=1, max_length=MAX_EXTERNAL_REF_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class _ActorRequest(Message):
    # Strict: the gateway sends real JSON types; a string where a number belongs is a bug there.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    actor_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    client_addr: ClientAddr | None = None


class CreateVouchers(_ActorRequest):
    count: Annotated[int, Field(ge=1, le=MAX_BATCH)]
    multi_use: bool = False
    lifetime_s: Annotated[int, Field(ge=0, le=MAX_LIFETIME_S)] = 0
    external_ref: ExternalRef | None = None
    # The reference was given as a number (and is to be shown as one); its text is its digits.
    external_ref_numeric: bool = False


class SearchVouchers(_ActorRequest):
    """gettokens' filters: None ignores, True keeps vouchers with the attribute, False without."""

    used: bool | None = None
    repaid: bool | None = None
    multi_use: bool | None = None
    has_lifetime: bool | None = None
    code: Code | None = None
    external_ref: ExternalRef | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_BATCH)] = MAX_BATCH
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0
    # gettokens lists in creation order; the admin listing newest first (the batch just made on top).
    newest_first: bool = False


class UseVoucher(_ActorRequest):
    code: Code
    mac: Mac


class VoucherCodes(_ActorRequest):
    codes: Annotated[list[Code], Field(min_length=1, max_length=MAX_BATCH)]


class Voucher(Reply):
    """A voucher as the registry hands it out: times in unix seconds, None where not yet."""

    id: int
    owner_id: int
    code: str
    created_at: int
    first_used_at: int | None
    expires_at: int | None
    repaid_at: int | None
    mac: str | None
    multi_use: bool
    lifetime_s: int
    external_ref: str | None
    external_ref_numeric: bool


class VoucherList(Reply):
    """The vouchers created, or one page of a search, in creation order."""

    vouchers: list[Voucher]


class UsedVoucher(Reply):
    voucher: Voucher


class RepaidVouchers(Reply):
    """Of the codes given (duplicates once each, in the caller's order): those repaid now or before,
    and those the actor has no live voucher for."""

    repaid: list[str]
    not_found: list[str]


class DeletedVouchers(Reply):
    deleted: list[str]
    not_found: list[str]


# Errors: forbidden (the actor cannot act), unavailable (no free codes after several draws).
CREATE_VOUCHERS = Endpoint("/v1/vouchers", CreateVouchers, VoucherList, status=201)
# Errors: forbidden.
SEARCH_VOUCHERS = Endpoint("/v1/vouchers/search", SearchVouchers, VoucherList, idempotent=True)
# Errors: forbidden, not_found, voucher_spent (deleted, repaid, or bound to another MAC), expired.
USE_VOUCHER = Endpoint("/v1/vouchers/use", UseVoucher, UsedVoucher)
# Errors: forbidden.
REPAY_VOUCHERS = Endpoint("/v1/vouchers/repay", VoucherCodes, RepaidVouchers)
# Errors: forbidden.
DELETE_VOUCHERS = Endpoint("/v1/vouchers/delete", VoucherCodes, DeletedVouchers)

ENDPOINTS = (CREATE_VOUCHERS, SEARCH_VOUCHERS, USE_VOUCHER, REPAY_VOUCHERS, DELETE_VOUCHERS)


class VouchersClient(ServiceClient):
    async def create_vouchers(self, req: CreateVouchers) -> list[Voucher]:
        """All of them in one transaction, or none."""
        return (await self.transport.send(CREATE_VOUCHERS, req)).vouchers

    async def search_vouchers(self, req: SearchVouchers) -> list[Voucher]:
        return (await self.transport.send(SEARCH_VOUCHERS, req)).vouchers

    async def use_voucher(self, req: UseVoucher) -> Voucher:
        return (await self.transport.send(USE_VOUCHER, req)).voucher

    async def repay_vouchers(self, req: VoucherCodes) -> RepaidVouchers:
        return await self.transport.send(REPAY_VOUCHERS, req)

    async def delete_vouchers(self, req: VoucherCodes) -> DeletedVouchers:
        return await self.transport.send(DELETE_VOUCHERS, req)
