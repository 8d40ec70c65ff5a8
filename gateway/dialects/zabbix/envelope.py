"""The JSON-RPC 2.0 envelope as Zabbix 6.0 handles it: single and batch calls, notifications,
request checks in Zabbix's order and words, method lookup, and who the caller is.

Domain errors of the services become Zabbix errors here and in the methods, nowhere else.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.backends import Backends
from gateway.dialects.common import client_addr, header_text
from gateway.dialects.zabbix.errors import (
    APPLICATION_ERROR,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NOT_A_REQUEST,
    PARSE_ERROR,
    PARSE_ERROR_DATA,
    UNAVAILABLE,
    ApiError,
    error_reply,
    no_system_access,
    not_authorized,
    params_error,
    session_terminated,
)
from gateway.keys import backends_key, settings_key, verification_cache_key
from gateway.verification_cache import cache_key, token_tag, user_tag
from shared.errors import (
    BadCredentials,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    TokenHubError,
    Unavailable,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

ALLOWED_CONTENT_TYPES = frozenset({"application/json-rpc", "application/json", "application/jsonrequest"})
# What Zabbix 6.0's api_jsonrpc.php sends with every answer, before it looks at anything else.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Max-Age": "1000",
}
SESSION_REALM = "zabbix"
API_TOKEN = re.compile(r"[0-9a-f]{64}")
ENVELOPE_MEMBERS = ("jsonrpc", "method", "params", "id", "auth")
# Calls one batch may hold. Zabbix sets no limit; each call may cost a password check or a write of
# 10,000 rows, so TokenHub keeps the batch to Wialon's core/batch limit (docs/zabbix.md).
MAX_BATCH = 100
TOO_MANY_CALLS = f"A batch may hold at most {MAX_BATCH} requests."


@dataclass
class Caller:
    """Who is calling: the user (registry's shape) and how they proved it."""

    user: dict[str, Any]
    session_id: str | None = None  # a session login
    token_id: int | None = None  # an API token

    @property
    def id(self) -> int:
        user_id: int = self.user["id"]
        return user_id

    @property
    def super_admin(self) -> bool:
        return bool(self.user["role"] == "super_admin")


@dataclass
class Context:
    request: web.Request
    method: str  # as the client wrote it, for messages
    caller: Caller | None = None

    @property
    def backends(self) -> Backends:
        return self.request.app[backends_key]

    @property
    def settings(self) -> Settings:
        return self.request.app[settings_key]

    @property
    def client_addr(self) -> str:
        return client_addr(self.request)

    @property
    def user(self) -> Caller:
        assert self.caller is not None, "method registered with needs_auth=False used the caller"
        return self.caller


Method = Callable[[Context, Any], Awaitable[Any]]


@dataclass(frozen=True)
class MethodSpec:
    run: Method
    needs_auth: bool


METHODS: dict[str, MethodSpec] = {}


def api_method(name: str, *, needs_auth: bool = True) -> Callable[[Method], Method]:
    """Register a method under its lower-case name (Zabbix matches names case-insensitively)."""

    def register(run: Method) -> Method:
        METHODS[name.lower()] = MethodSpec(run, needs_auth)
        return run

    return register


# --- the HTTP endpoint -----------------------------------------------------------------------


async def handle(request: web.Request) -> web.Response:
    """api_jsonrpc.php: CORS headers on every answer; OPTIONS (a browser's preflight) gets them and
    nothing else; any other method must carry a JSON Content-Type (else a bare 412), and then its
    body is read as one call or a batch, whatever the method."""
    response = await _answer(request)
    response.headers.update(CORS_HEADERS)
    return response


async def _answer(request: web.Request) -> web.Response:
    if request.method == "OPTIONS":
        return web.Response(status=200, content_type="text/html", charset="utf-8")
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if content_type not in ALLOWED_CONTENT_TYPES:
        return web.Response(status=412)  # Zabbix's api_jsonrpc.php: a bare 412, no body
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _json(error_reply(INVALID_REQUEST, "Request body is too large.", None), status=413)
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _json(error_reply(PARSE_ERROR, PARSE_ERROR_DATA, None))
    bearer = _bearer_token(request)
    if isinstance(decoded, list) and decoded:
        if len(decoded) > MAX_BATCH:
            return _json(error_reply(INVALID_REQUEST, TOO_MANY_CALLS, None))
        replies = [reply for call in decoded if (reply := await _one_call(request, call, bearer)) is not None]
        return _json(replies) if replies else web.Response(status=200)
    if not isinstance(decoded, dict) or not decoded:
        # A scalar, null, [] or {}: PHP sees no request array at all.
        return _json(error_reply(INVALID_REQUEST, NOT_A_REQUEST, None))
    reply = await _one_call(request, decoded, bearer)
    return _json(reply) if reply is not None else web.Response(status=200)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, value = (header_text(request, "Authorization") or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def _valid_id(value: Any) -> bool:
    return value is None or (not isinstance(value, bool) and isinstance(value, str | int | float))


def _envelope_problem(call: Any) -> str | None:
    """Zabbix's checks of one request object, in its order: the `data` of the first failure."""
    if not isinstance(call, dict):
        return 'Invalid parameter "/": an array is expected.'
    for name in call:
        if name not in ENVELOPE_MEMBERS:
            return f'Invalid parameter "/": unexpected parameter "{name}".'
    if "jsonrpc" not in call:
        return 'Invalid parameter "/": the parameter "jsonrpc" is missing.'
    if not isinstance(call["jsonrpc"], str):
        return 'Invalid parameter "/jsonrpc": a character string is expected.'
    if call["jsonrpc"] != "2.0":
        return 'Invalid parameter "/jsonrpc": value must be "2.0".'
    if "method" not in call:
        return 'Invalid parameter "/": the parameter "method" is missing.'
    if not isinstance(call["method"], str):
        return 'Invalid parameter "/method": a character string is expected.'
    if "params" not in call:
        return 'Invalid parameter "/": the parameter "params" is missing.'
    if not isinstance(call["params"], dict | list):
        return 'Invalid parameter "/params": an array or object is expected.'
    if not _valid_id(call.get("id")):
        return 'Invalid parameter "/id": a string, number or null value is expected.'
    if call.get("auth") is not None and not isinstance(call["auth"], str):
        return 'Invalid parameter "/auth": a character string is expected.'
    return None


async def _one_call(request: web.Request, call: Any, bearer: str | None) -> dict[str, Any] | None:
    """Run one request object; its reply, or None for a notification (a valid call without id)."""
    call_id = call.get("id") if isinstance(call, dict) and _valid_id(call.get("id")) else None
    problem = _envelope_problem(call)
    if problem is not None:
        return error_reply(INVALID_REQUEST, problem, call_id)
    try:
        reply = {"jsonrpc": "2.0", "result": await _run(request, call, bearer), "id": call_id}
    except ApiError as exc:
        reply = exc.reply(call_id)
    except Exception:
        # A bug of ours: the client still gets a JSON-RPC error object, the log the traceback.
        log.exception("unhandled error in %s", call.get("method"))
        reply = error_reply(INTERNAL_ERROR, "Internal JSON-RPC error.", call_id)
    return reply if "id" in call else None


async def _run(request: web.Request, call: dict[str, Any], bearer: str | None) -> Any:
    name: str = call["method"]
    api, _, action = name.partition(".")
    spec = METHODS.get(f"{api}.{action}".lower())
    if spec is None:
        if not any(known.startswith(api.lower() + ".") for known in METHODS):
            raise ApiError(METHOD_NOT_FOUND, f'Incorrect API "{api}".')
        raise ApiError(METHOD_NOT_FOUND, f'Incorrect method "{api}.{action}".')
    ctx = Context(request, name)
    try:
        if spec.needs_auth:
            ctx.caller = await _authenticate(ctx, call.get("auth") or bearer)
        elif call.get("auth") is not None:
            raise params_error(f'The "{name}" method must be called without the "auth" parameter.')
        return await spec.run(ctx, call["params"])
    except Unavailable as exc:
        log.warning("backend unavailable during %s: %s", name, exc.message)
        raise ApiError(APPLICATION_ERROR, UNAVAILABLE) from exc
    except TokenHubError as exc:
        # Whatever a method did not turn into a Zabbix error itself is a fault on our side.
        log.error("unexpected %s during %s: %s", exc.code, name, exc.message)
        raise ApiError(INTERNAL_ERROR, "Internal JSON-RPC error.") from exc


async def _authenticate(ctx: Context, auth: str | None) -> Caller:
    if not auth:
        raise not_authorized()
    if API_TOKEN.fullmatch(auth):
        caller = await authenticate_token(ctx, auth)
    else:
        try:
            reply = await ctx.backends.issuer.call(
                "POST", "/v1/sessions/resolve", {"realm": SESSION_REALM, "session_id": auth}
            )
        except (NotFound, InvalidInput) as exc:
            raise session_terminated() from exc
        caller = Caller(reply["user"], session_id=auth)
    if caller.user["role"] == "guest":
        raise no_system_access()
    return caller


async def authenticate_token(ctx: Context, secret: str) -> Caller:
    """The owner of an API token. The registry records the use (lastaccess, whole seconds, at most
    once a second) as it checks; a check made within the last second may be reused
    (gateway/verification_cache.py), which records nothing the registry would have written."""
    cache = ctx.request.app[verification_cache_key]
    key = cache_key("zabbix", secret)
    reply: dict[str, Any] | None = cache.get(key, dict)
    if reply is None or (reply["expires_at"] is not None and reply["expires_at"] < time.time()):
        try:
            reply = await ctx.backends.registry.call(
                "POST", "/v1/zabbix-tokens/authenticate", {"secret": secret}
            )
        except (BadCredentials, Forbidden, InvalidInput) as exc:
            raise not_authorized() from exc
        except Expired as exc:
            raise ApiError(APPLICATION_ERROR, "API token expired.") from exc
        assert reply is not None
        left = cache.ttl if reply["expires_at"] is None else reply["expires_at"] - time.time()
        cache.put(key, (token_tag(reply["token_id"]), user_tag(reply["user"]["id"])), reply, left)
    return Caller(reply["user"], token_id=reply["token_id"])
