"""The methods, one function each, reading like docs/hotspot.md: gettokens, createtokens, usetoken,
repaytokens, deletetokens; and the voucher object they answer with."""

from __future__ import annotations

import time

from gateway.dialects.common import JsonObject, guess_attempt, saying
from gateway.dialects.hotspot.envelope import Context
from gateway.dialects.hotspot.errors import USE_ERRORS
from gateway.dialects.hotspot.params import (
    check_names,
    normalise_mac,
    parse_code,
    parse_codes,
    parse_flag,
    parse_int,
    parse_u_id,
)
from shared.contracts.registry.vouchers import (
    MAX_BATCH,
    MAX_LIFETIME_S,
    MAX_OFFSET,
    CreateVouchers,
    SearchVouchers,
    UseVoucher,
    Voucher,
    VoucherCodes,
)
from shared.errors import NotFound

# The issuer's failure-throttle realm for guessed voucher codes.
THROTTLE_REALM = "hotspot"


# --- the voucher object ------------------------------------------------------------------------


def format_time(unix: int | None) -> str | None:
    return None if unix is None else _format_second(unix)


# Formatted seconds, cleared when full: a page of vouchers repeats its seconds (createtokens stamps a
# whole batch with one created_at), and gmtime + strftime were the largest item of the gateway's own
# code in a gettokens page (cProfile: 12 % of the gateway's time for a page of 100).
_SECONDS: dict[int, str] = {}
_MAX_SECONDS = 4096


def _format_second(unix: int) -> str:
    text = _SECONDS.get(unix)
    if text is None:
        if len(_SECONDS) >= _MAX_SECONDS:
            _SECONDS.clear()
        text = _SECONDS[unix] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix))
    return text


def voucher_object(voucher: Voucher) -> JsonObject:
    """The registry's voucher in the document's shape and names."""
    ref = voucher.external_ref
    return {
        "token": voucher.code,
        "created_at": format_time(voucher.created_at),
        "used_at": format_time(voucher.first_used_at),
        "expired_at": format_time(voucher.expires_at),
        "multiple": 1 if voucher.multi_use else 0,
        "validity": voucher.lifetime_s,
        "repaid_at": format_time(voucher.repaid_at),
        "mac": voucher.mac,
        # As it was given: the document's own example answers the integer it was sent.
        "u_id": int(ref) if ref is not None and voucher.external_ref_numeric else ref,
    }


# --- methods -----------------------------------------------------------------------------------


async def gettokens(ctx: Context, params: JsonObject) -> list[JsonObject]:
    check_names(params, ("used_at", "repaid_at", "multiple", "validity", "token", "u_id", "limit", "offset"))
    token = params.get("token")
    limit = params.get("limit")
    offset = params.get("offset")
    query = SearchVouchers(
        actor_id=ctx.actor_id,
        client_addr=ctx.client_addr,
        used=parse_flag(params.get("used_at"), "used_at"),
        repaid=parse_flag(params.get("repaid_at"), "repaid_at"),
        multi_use=parse_flag(params.get("multiple"), "multiple"),
        has_lifetime=parse_flag(params.get("validity"), "validity"),
        code=None if token is None else parse_code(token, "token"),
        external_ref=parse_u_id(params.get("u_id")),
        limit=MAX_BATCH if limit is None else parse_int(limit, "limit", 1, MAX_BATCH),
        offset=0 if offset is None else parse_int(offset, "offset", 0, MAX_OFFSET),
    )
    return [voucher_object(v) for v in await ctx.registry.search_vouchers(query)]


async def createtokens(ctx: Context, params: JsonObject) -> list[JsonObject]:
    check_names(params, ("count", "multiple", "lifetime", "u_id"), required=("count",))
    lifetime = params.get("lifetime")
    u_id = params.get("u_id")
    order = CreateVouchers(
        actor_id=ctx.actor_id,
        client_addr=ctx.client_addr,
        count=parse_int(params["count"], "count", 1, MAX_BATCH),
        multi_use=bool(parse_flag(params.get("multiple"), "multiple")),
        lifetime_s=0 if lifetime is None else parse_int(lifetime, "lifetime", 0, MAX_LIFETIME_S),
        external_ref=parse_u_id(u_id),
        external_ref_numeric=isinstance(u_id, int) and not isinstance(u_id, bool),
    )
    return [voucher_object(v) for v in await ctx.registry.create_vouchers(order)]


async def usetoken(ctx: Context, params: JsonObject) -> list[JsonObject]:
    check_names(params, ("token", "mac"), required=("token", "mac"))
    use = UseVoucher(
        actor_id=ctx.actor_id,
        client_addr=ctx.client_addr,
        code=parse_code(params["token"], "token"),
        mac=normalise_mac(params["mac"]),
    )
    # Codes are short (10 digits), so unknown ones count as guesses: per client address (a portal
    # that forwards a brute force gets blocked) and per device MAC (one guest cannot take it all).
    # Only unknown codes are guesses.
    subjects = {"address": ctx.client_addr, "mac": use.mac}
    with saying(USE_ERRORS):
        async with guess_attempt(ctx.request, THROTTLE_REALM, subjects, guess=NotFound):
            used = await ctx.registry.use_voucher(use)
    return [voucher_object(used)]


def _codes(ctx: Context, params: JsonObject) -> VoucherCodes:
    check_names(params, ("tokens",), required=("tokens",))
    return VoucherCodes(
        actor_id=ctx.actor_id, client_addr=ctx.client_addr, codes=parse_codes(params["tokens"])
    )


def _results(codes: list[str], done: list[str], word: str) -> list[JsonObject]:
    # One entry per code given, in the caller's order, so results line up with the request.
    acted_on = set(done)
    return [{"token": code, "result": word if code in acted_on else "not_found"} for code in codes]


async def repaytokens(ctx: Context, params: JsonObject) -> list[JsonObject]:
    batch = _codes(ctx, params)
    return _results(batch.codes, (await ctx.registry.repay_vouchers(batch)).repaid, "repaid")


async def deletetokens(ctx: Context, params: JsonObject) -> list[JsonObject]:
    batch = _codes(ctx, params)
    return _results(batch.codes, (await ctx.registry.delete_vouchers(batch)).deleted, "deleted")
