"""Hotspot vouchers — `POST /hotspot/api` (DESIGN §2.3; decisions in docs/hotspot.md).

- `envelope`: reading the request (JSON or a form), the reply and error envelopes, the call;
- `errors`: the error codes and the tables from domain errors to them;
- `auth`: the operator behind `api_token`;
- `params`: the parameters as the document types them;
- `vouchers`: the methods, one function each, and the voucher object.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gateway.dialects.hotspot import vouchers
from gateway.dialects.hotspot.envelope import Method, serve

# Every method, by the name a client calls it (case-sensitive, as the document spells them).
METHODS: Mapping[str, Method] = {
    "gettokens": vouchers.gettokens,
    "createtokens": vouchers.createtokens,
    "usetoken": vouchers.usetoken,
    "repaytokens": vouchers.repaytokens,
    "deletetokens": vouchers.deletetokens,
}


async def handle(request: web.Request) -> web.Response:
    return await serve(request, METHODS)


__all__ = ["METHODS", "handle"]
