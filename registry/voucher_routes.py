"""The registry's internal voucher API (issue 6), in TokenHub's vocabulary: codes, unix times,
booleans and plain numbers. The hotspot wire format (positional objects, formatted dates, the
names `used_at`, `multiple`, `validity`, `u_id`) is the gateway dialect's business.

    POST /v1/vouchers          {actor_id, count, multi_use, lifetime_s, external_ref}  201 {vouchers}
    POST /v1/vouchers/search   {actor_id, used, repaid, multi_use, has_lifetime, code,
                                external_ref, limit, offset}                           {vouchers}
    POST /v1/vouchers/use      {actor_id, code, mac}                                   {voucher}
    POST /v1/vouchers/repay    {actor_id, codes}                         {repaid, not_found}
    POST /v1/vouchers/delete   {actor_id, codes}                         {deleted, not_found}

Every body may carry `client_addr` for the audit log. `actor_id` is the authenticated operator;
the store decides from its role whose vouchers it reaches.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from registry.keys import voucher_store_key
from registry.vouchers import MAX_BATCH, MAX_LIFETIME_S, MAX_OFFSET, Filters
from shared.internal import json_response, read_model

Code = Annotated[str, Field(pattern=r"^[0-9]{10}$")]
Mac = Annotated[str, Field(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")]
# Printable text only: a u_id is shown to people and compared exactly.
ExternalRef = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Body(BaseModel):
    # Strict: the gateway sends real JSON types; a string where a number belongs is a bug there.
    model_config = ConfigDict(extra="forbid", strict=True)
    actor_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    client_addr: Annotated[str, Field(max_length=64)] | None = None


class CreateVouchers(_Body):
    count: Annotated[int, Field(ge=1, le=MAX_BATCH)]
    multi_use: bool = False
    lifetime_s: Annotated[int, Field(ge=0, le=MAX_LIFETIME_S)] = 0
    external_ref: ExternalRef | None = None
    # The reference was given as a number (and is to be shown as one); its text is its digits.
    external_ref_numeric: bool = False


class SearchVouchers(_Body):
    used: bool | None = None
    repaid: bool | None = None
    multi_use: bool | None = None
    has_lifetime: bool | None = None
    code: Code | None = None
    external_ref: ExternalRef | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_BATCH)] = MAX_BATCH
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0


class UseVoucher(_Body):
    code: Code
    mac: Mac


class VoucherCodes(_Body):
    codes: Annotated[list[Code], Field(min_length=1, max_length=MAX_BATCH)]


async def create_vouchers(request: web.Request) -> web.Response:
    body = await read_model(request, CreateVouchers)
    vouchers = await request.app[voucher_store_key].create(
        body.actor_id,
        body.count,
        multi_use=body.multi_use,
        lifetime_s=body.lifetime_s,
        external_ref=body.external_ref,
        external_ref_numeric=body.external_ref_numeric,
        client_addr=body.client_addr,
    )
    return json_response({"vouchers": vouchers}, status=201)


async def search_vouchers(request: web.Request) -> web.Response:
    body = await read_model(request, SearchVouchers)
    filters = Filters(**body.model_dump(exclude={"actor_id", "client_addr"}))
    vouchers = await request.app[voucher_store_key].search(body.actor_id, filters)
    return json_response({"vouchers": vouchers})


async def use_voucher(request: web.Request) -> web.Response:
    body = await read_model(request, UseVoucher)
    voucher = await request.app[voucher_store_key].use(body.actor_id, body.code, body.mac, body.client_addr)
    return json_response({"voucher": voucher})


async def repay_vouchers(request: web.Request) -> web.Response:
    body = await read_model(request, VoucherCodes)
    result = await request.app[voucher_store_key].repay(body.actor_id, body.codes, body.client_addr)
    return json_response({"repaid": result.done, "not_found": result.not_found})


async def delete_vouchers(request: web.Request) -> web.Response:
    body = await read_model(request, VoucherCodes)
    result = await request.app[voucher_store_key].delete(body.actor_id, body.codes, body.client_addr)
    return json_response({"deleted": result.done, "not_found": result.not_found})


def setup_voucher_routes(app: web.Application) -> None:
    app.router.add_post("/v1/vouchers", create_vouchers)
    app.router.add_post("/v1/vouchers/search", search_vouchers)
    app.router.add_post("/v1/vouchers/use", use_voucher)
    app.router.add_post("/v1/vouchers/repay", repay_vouchers)
    app.router.add_post("/v1/vouchers/delete", delete_vouchers)
