"""The registry's voucher endpoints (issue 6): the contract's `shared/contracts/registry/vouchers.py`
served from `registry/vouchers.py`."""

from __future__ import annotations

from aiohttp import web

from registry.keys import voucher_store_key
from shared.contracts.registry.vouchers import (
    CREATE_VOUCHERS,
    DELETE_VOUCHERS,
    REPAY_VOUCHERS,
    SEARCH_VOUCHERS,
    USE_VOUCHER,
    CreateVouchers,
    DeletedVouchers,
    RepaidVouchers,
    SearchVouchers,
    UsedVoucher,
    UseVoucher,
    VoucherCodes,
    VoucherList,
)
from shared.contracts.server import Route, route


async def create_vouchers(request: web.Request, body: CreateVouchers) -> VoucherList:
    return VoucherList(vouchers=await request.app[voucher_store_key].create(body))


async def search_vouchers(request: web.Request, body: SearchVouchers) -> VoucherList:
    return VoucherList(vouchers=await request.app[voucher_store_key].search(body))


async def use_voucher(request: web.Request, body: UseVoucher) -> UsedVoucher:
    return UsedVoucher(voucher=await request.app[voucher_store_key].use(body))


async def repay_vouchers(request: web.Request, body: VoucherCodes) -> RepaidVouchers:
    result = await request.app[voucher_store_key].repay(body)
    return RepaidVouchers(repaid=result.done, not_found=result.not_found)


async def delete_vouchers(request: web.Request, body: VoucherCodes) -> DeletedVouchers:
    result = await request.app[voucher_store_key].delete(body)
    return DeletedVouchers(deleted=result.done, not_found=result.not_found)


ROUTES: list[Route] = [
    route(CREATE_VOUCHERS, create_vouchers),
    route(SEARCH_VOUCHERS, search_vouchers),
    route(USE_VOUCHER, use_voucher),
    route(REPAY_VOUCHERS, repay_vouchers),
    route(DELETE_VOUCHERS, delete_vouchers),
]
