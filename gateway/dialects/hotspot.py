"""Hotspot vouchers — `POST /hotspot/api` (DESIGN §2.3; decisions in docs/hotspot.md).

Reads like the API reference: the envelope (a JSON body, or the same three fields form-encoded
with `parameters` as a JSON string), authentication by the operator's `api_token`, then one
function per method. Every reply is one of

    {"status": "success", "data": {"0": {...}, "1": {...}}}
    {"status": "error", "error": {"code": "...", "message": "..."}}

with a matching HTTP status, never 500. Domain errors from the services become hotspot errors in
`_run` and the method functions, nowhere else.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from gateway.dialects.common import client_addr, guess_attempt
from gateway.keys import backends_key, verification_cache_key
from gateway.verification_cache import cache_key, user_tag
from shared.errors import (
    BadCredentials,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    Throttled,
    TokenHubError,
    Unavailable,
)

log = logging.getLogger(__name__)

# The issuer's failure-throttle realm for guessed voucher codes.
THROTTLE_REALM = "hotspot"
MAX_BATCH = 10_000
MAX_LIFETIME_S = 2**31 - 1
MAX_OFFSET = 2**31 - 1
MAX_U_ID_LENGTH = 255
# Longer than any API key TokenHub issues (thk_ + 64 hex); the registry refuses longer ones too.
MAX_API_TOKEN_LENGTH = 256

# Every error code this dialect answers with, and its HTTP status.
STATUS = {
    "invalid_request": 400,
    "unknown_method": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "voucher_used": 409,
    "voucher_repaid": 410,
    "voucher_deleted": 410,
    "voucher_expired": 410,
    "payload_too_large": 413,
    "too_many_attempts": 429,
    "service_unavailable": 503,
    # A bug on our side. Not 500: DESIGN §4 promises none; 503 tells clients to retry later.
    "internal_error": 503,
}

FormData = MultiDictProxy[str | bytes | bytearray | FileField]  # what aiohttp's request.post() gives
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class HotspotError(Exception):
    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        assert code in STATUS, code
        self.code = code
        self.message = message
        self.retry_after = retry_after


def invalid(message: str) -> HotspotError:
    return HotspotError("invalid_request", message)


# --- the envelope ------------------------------------------------------------------------------


def _reply(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def error_reply(exc: HotspotError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.code == "method_not_allowed":
        headers = {"Allow": "POST"}
    return _reply(
        {"status": "error", "error": {"code": exc.code, "message": exc.message}}, STATUS[exc.code], headers
    )


def positional(items: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The source document's `data`: an object keyed by position ("0", "1", ...), not an array."""
    return {str(i): item for i, item in enumerate(items)}


@dataclass
class Context:
    """One call: who is calling, from where, and the services behind the gateway."""

    request: web.Request
    user: dict[str, Any]

    @property
    def actor_id(self) -> int:
        actor_id: int = self.user["id"]
        return actor_id

    @property
    def client_addr(self) -> str:
        return client_addr(self.request)

    async def registry(self, path: str, body: dict[str, Any]) -> Any:
        payload = {"actor_id": self.actor_id, "client_addr": self.client_addr, **body}
        return await self.request.app[backends_key].registry.call("POST", path, payload)

    async def issuer(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request.app[backends_key].issuer.call("POST", path, body)


Method = Callable[[Context, dict[str, Any]], Awaitable[list[dict[str, Any]]]]
METHODS: dict[str, Method] = {}


def api_method(name: str) -> Callable[[Method], Method]:
    def register(run: Method) -> Method:
        METHODS[name] = run
        return run

    return register


async def handle(request: web.Request) -> web.Response:
    try:
        if request.method != "POST":
            raise HotspotError("method_not_allowed", "use POST")
        envelope = await _read_envelope(request)
        data = await _run(request, envelope)
    except HotspotError as exc:
        return error_reply(exc)
    except Exception:
        # A bug. The client still gets the envelope; the log gets the traceback, never the body.
        log.exception("unhandled error in the hotspot dialect")
        return error_reply(HotspotError("internal_error", "internal error, try again later"))
    return _reply({"status": "success", "data": positional(data)})


async def _read_envelope(request: web.Request) -> dict[str, Any]:
    """The body's fields, from JSON or a form; `parameters` already decoded into an object."""
    try:
        if request.content_type in FORM_TYPES:
            fields = _form_fields(await _read_form(request))
        else:
            fields = _json_fields(await request.read())
    except web.HTTPRequestEntityTooLarge as exc:
        raise HotspotError("payload_too_large", "the request body is too large") from exc
    fields["parameters"] = _parameters(fields.get("parameters"))
    return fields


async def _read_form(request: web.Request) -> FormData:
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception as exc:
        # Whatever the form parsers choke on (an unknown charset, a broken multipart body, a
        # missing boundary) is the client's body, not our bug; their exceptions are not one family.
        raise invalid("the form body cannot be read") from exc


def _json_fields(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return body


def _form_fields(form: FormData) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("api_token", "method", "parameters"):
        values = form.getall(name, [])
        if len(values) > 1:
            raise invalid(f'"{name}" is given more than once')
        if values:
            if not isinstance(values[0], str):
                raise invalid(f'"{name}" must be text, not a file')
            fields[name] = values[0]
    return fields


def _parameters(value: Any) -> dict[str, Any]:
    # Absent, null and "" all mean "no parameters"; a JSON string is what form-encoding clients send
    # (and some JSON clients double-encode), so it is accepted in both.
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise invalid('"parameters" is not valid JSON') from exc
    if not isinstance(value, dict):
        raise invalid('"parameters" must be an object')
    return value


async def _run(request: web.Request, envelope: dict[str, Any]) -> list[dict[str, Any]]:
    api_token = envelope.get("api_token")
    method = envelope.get("method")
    if api_token is not None and not isinstance(api_token, str):
        raise invalid('"api_token" must be a string')
    if method is None:
        raise invalid('"method" is missing')
    if not isinstance(method, str):
        raise invalid('"method" must be a string')
    try:
        ctx = Context(request, await _authenticate(request, api_token))
        run = METHODS.get(method)
        if run is None:
            raise HotspotError("unknown_method", f'unknown method "{method[:64]}"')
        return await run(ctx, envelope["parameters"])
    except Unavailable as exc:
        log.warning("backend unavailable during %s: %s", method, exc.message)
        raise HotspotError("service_unavailable", "service temporarily unavailable, try again later") from exc
    except Throttled as exc:
        retry_after = exc.details.get("retry_after")
        raise HotspotError(
            "too_many_attempts",
            "too many failed attempts, try again later",
            retry_after if isinstance(retry_after, int) and retry_after > 0 else 1,
        ) from exc
    except InvalidInput as exc:
        # The gateway checks every parameter first, so this is a value the database refused.
        raise invalid(exc.message) from exc
    except Forbidden as exc:
        # Disabled between authentication and the call.
        raise HotspotError("forbidden", "the account cannot act") from exc
    except TokenHubError as exc:
        log.error("unexpected %s during %s: %s", exc.code, method, exc.message)
        raise HotspotError("internal_error", "internal error, try again later") from exc


async def _authenticate(request: web.Request, api_token: str | None) -> dict[str, Any]:
    if not api_token:
        raise HotspotError("unauthorized", '"api_token" is missing')
    if len(api_token) > MAX_API_TOKEN_LENGTH:
        raise HotspotError("unauthorized", "the api_token is not valid")
    # An operator's key checked within the last second is taken as checked (gateway/verification_cache.py).
    cache = request.app[verification_cache_key]
    key = cache_key("hotspot", api_token)
    cached: dict[str, Any] | None = cache.get(key, dict)
    if cached is not None:
        return cached
    try:
        reply = await request.app[backends_key].registry.call(
            "POST", "/v1/api-keys/authenticate", {"key": api_token}
        )
    except (BadCredentials, InvalidInput, NotFound) as exc:
        raise HotspotError("unauthorized", "the api_token is not valid") from exc
    except Forbidden as exc:
        raise HotspotError("forbidden", "the account is disabled") from exc
    user: dict[str, Any] = reply["user"]
    cache.put(key, (user_tag(user["id"]),), user, cache.ttl)
    return user


# --- parameters --------------------------------------------------------------------------------


def check_names(params: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    # Unknown names are refused rather than ignored: a mistyped filter would silently widen a list.
    for name in params:
        if name not in allowed:
            raise invalid(f'unknown parameter "{name[:64]}"')
    for name in required:
        if params.get(name) is None:
            raise invalid(f'"{name}" is required')


def parse_flag(value: Any, name: str) -> bool | None:
    """A filter or switch: 1 (or true, "1") yes, 0 (or false, "0") no, null or absent: unset."""
    if value is None:
        return None
    if value in (1, "1") and not isinstance(value, float):
        return True
    if value in (0, "0") and not isinstance(value, float):
        return False
    raise invalid(f'"{name}" must be 1, 0 or null')


def parse_int(value: Any, name: str, low: int, high: int) -> int:
    """A whole number, as a JSON number or decimal digits (form clients send strings)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f'"{name}" must be a whole number')
    if not low <= value <= high:
        raise invalid(f'"{name}" must be between {low} and {high}')
    return value


def parse_code(value: Any, name: str) -> str:
    """A voucher code: 10 digits, as a string or a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{10}", value):
        raise invalid(f'"{name}" must be a 10-digit voucher code')
    return value


def parse_u_id(value: Any, name: str = "u_id") -> str | None:
    """The operator's own reference: printable text (numbers become their digits); "" is none."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_U_ID_LENGTH:
        raise invalid(f'"{name}" must be a string of at most {MAX_U_ID_LENGTH} characters')
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise invalid(f'"{name}" must not contain control characters')
    return value


def parse_codes(value: Any, name: str = "tokens") -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid(f'"{name}" must be a non-empty list of voucher codes')
    if len(value) > MAX_BATCH:
        raise invalid(f'"{name}" may hold at most {MAX_BATCH} codes')
    return [parse_code(item, f"{name}/{i}") for i, item in enumerate(value)]


_OCTET = "([0-9a-f]{2})"
_MAC_FORMS = (
    re.compile(":".join([_OCTET] * 6)),  # aa:bb:cc:dd:ee:ff
    re.compile("-".join([_OCTET] * 6)),  # AA-BB-CC-DD-EE-FF (Windows)
    re.compile(r"\.".join([_OCTET * 2] * 3)),  # aabb.ccdd.eeff
    re.compile(_OCTET * 6),  # aabbccddeeff
)


def normalise_mac(value: Any, name: str = "mac") -> str:
    """A device's MAC in lower-case colon form. Accepts colons, hyphens (Windows), dotted triples
    (Cisco) or bare hex; refuses multicast, broadcast and all-zero addresses, which no device has."""
    if not isinstance(value, str) or len(value) > 64:
        raise invalid(f'"{name}" must be a MAC address')
    text = value.strip().lower()
    for form in _MAC_FORMS:
        match = form.fullmatch(text)
        if match is not None:
            octets = match.groups()
            break
    else:
        raise invalid(f'"{name}" must be a MAC address')
    if int(octets[0], 16) & 1 or all(o == "00" for o in octets):
        raise invalid(f'"{name}" must be the unicast address of a device')
    return ":".join(octets)


# --- the voucher object ------------------------------------------------------------------------


def format_time(unix: int | None) -> str | None:
    return None if unix is None else _format_second(unix)


@functools.lru_cache(maxsize=4096)
def _format_second(unix: int) -> str:
    """Cached: a page of vouchers repeats its seconds (createtokens stamps a whole batch with one
    created_at), and gmtime + strftime were the largest item of the gateway's own code in a
    gettokens page (cProfile: 12 % of the gateway's time for a page of 100)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix))


def voucher_object(voucher: dict[str, Any]) -> dict[str, Any]:
    """The registry's voucher in the document's shape and names."""
    return {
        "token": voucher["code"],
        "created_at": format_time(voucher["created_at"]),
        "used_at": format_time(voucher["first_used_at"]),
        "expired_at": format_time(voucher["expires_at"]),
        "multiple": 1 if voucher["multi_use"] else 0,
        "validity": voucher["lifetime_s"],
        "repaid_at": format_time(voucher["repaid_at"]),
        "mac": voucher["mac"],
        # As it was given: the document's own example answers the integer it was sent.
        "u_id": int(ref)
        if (ref := voucher["external_ref"]) is not None and voucher["external_ref_numeric"]
        else ref,
    }


# --- methods -----------------------------------------------------------------------------------


@api_method("gettokens")
async def gettokens(ctx: Context, params: dict[str, Any]) -> list[dict[str, Any]]:
    check_names(params, ("used_at", "repaid_at", "multiple", "validity", "token", "u_id", "limit", "offset"))
    token = params.get("token")
    limit = params.get("limit")
    offset = params.get("offset")
    query = {
        "used": parse_flag(params.get("used_at"), "used_at"),
        "repaid": parse_flag(params.get("repaid_at"), "repaid_at"),
        "multi_use": parse_flag(params.get("multiple"), "multiple"),
        "has_lifetime": parse_flag(params.get("validity"), "validity"),
        "code": None if token is None else parse_code(token, "token"),
        "external_ref": parse_u_id(params.get("u_id")),
        "limit": MAX_BATCH if limit is None else parse_int(limit, "limit", 1, MAX_BATCH),
        "offset": 0 if offset is None else parse_int(offset, "offset", 0, MAX_OFFSET),
    }
    reply = await ctx.registry("/v1/vouchers/search", query)
    return [voucher_object(v) for v in reply["vouchers"]]


@api_method("createtokens")
async def createtokens(ctx: Context, params: dict[str, Any]) -> list[dict[str, Any]]:
    check_names(params, ("count", "multiple", "lifetime", "u_id"), required=("count",))
    lifetime = params.get("lifetime")
    u_id = params.get("u_id")
    body = {
        "count": parse_int(params["count"], "count", 1, MAX_BATCH),
        "multi_use": bool(parse_flag(params.get("multiple"), "multiple")),
        "lifetime_s": 0 if lifetime is None else parse_int(lifetime, "lifetime", 0, MAX_LIFETIME_S),
        "external_ref": parse_u_id(u_id),
        "external_ref_numeric": isinstance(u_id, int) and not isinstance(u_id, bool),
    }
    reply = await ctx.registry("/v1/vouchers", body)
    return [voucher_object(v) for v in reply["vouchers"]]


@api_method("usetoken")
async def usetoken(ctx: Context, params: dict[str, Any]) -> list[dict[str, Any]]:
    check_names(params, ("token", "mac"), required=("token", "mac"))
    code = parse_code(params["token"], "token")
    mac = normalise_mac(params["mac"])
    # Codes are short (10 digits), so unknown ones count as guesses: per client address (a portal
    # that forwards a brute force gets blocked) and per device MAC (one guest cannot take it all).
    # Only unknown codes are guesses.
    subjects = {"address": ctx.client_addr, "mac": mac}
    try:
        async with guess_attempt(ctx.request, THROTTLE_REALM, subjects, guess=NotFound):
            reply = await ctx.registry("/v1/vouchers/use", {"code": code, "mac": mac})
    except NotFound as exc:
        raise HotspotError("not_found", "no such voucher") from exc
    except (Expired, Conflict) as exc:
        raise _refused_use(exc) from exc
    return [voucher_object(reply["voucher"])]


def _refused_use(exc: Expired | Conflict) -> HotspotError:
    """Why a voucher that exists cannot be used now, in the dialect's words."""
    if isinstance(exc, Expired):
        return HotspotError("voucher_expired", "the voucher's validity period is over")
    reason = exc.details.get("reason")
    if reason == "deleted":
        return HotspotError("voucher_deleted", "the voucher was deleted")
    if reason == "repaid":
        return HotspotError("voucher_repaid", "the voucher was repaid")
    return HotspotError("voucher_used", "the voucher is already in use on another device")


async def _batch(ctx: Context, params: dict[str, Any], path: str, done_key: str) -> list[dict[str, Any]]:
    check_names(params, ("tokens",), required=("tokens",))
    codes = parse_codes(params["tokens"])
    reply = await ctx.registry(path, {"codes": codes})
    done = set(reply[done_key])
    # One entry per code given, in the caller's order, so results line up with the request.
    return [{"token": code, "result": done_key if code in done else "not_found"} for code in codes]


@api_method("repaytokens")
async def repaytokens(ctx: Context, params: dict[str, Any]) -> list[dict[str, Any]]:
    return await _batch(ctx, params, "/v1/vouchers/repay", "repaid")


@api_method("deletetokens")
async def deletetokens(ctx: Context, params: dict[str, Any]) -> list[dict[str, Any]]:
    return await _batch(ctx, params, "/v1/vouchers/delete", "deleted")
