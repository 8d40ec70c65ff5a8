"""The JSON-RPC 2.0 envelope as Zabbix 6.0 handles it: single and batch calls, notifications,
request checks in Zabbix's order and words, method lookup, and who the caller is.

Methods are not found by import side effects: the package's `__init__` hands `JsonRpc` its table.
Domain errors of the services become Zabbix errors by the methods' tables (errors.py) and, for
whatever those leave unsaid, by ENVELOPE_ERRORS here; nowhere else.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from pydantic import JsonValue, ValidationError

from gateway.backends import Backends
from gateway.dialects.common import (
    JsonObject,
    UnreadableBody,
    client_addr,
    decode_json,
    header_text,
    json_reply,
    read_raw,
    saying,
    translate,
)
from gateway.dialects.zabbix.errors import (
    APPLICATION_ERROR,
    INTERNAL_ERROR,
    INTERNAL_ERROR_DATA,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NOT_A_REQUEST,
    PARSE_ERROR,
    PARSE_ERROR_DATA,
    UNAVAILABLE,
    ApiError,
    CallId,
    Errors,
    error_reply,
    no_system_access,
    not_authorized,
    params_error,
    session_terminated,
)
from gateway.keys import backends_key, settings_key, verification_cache_key, verification_counter_key
from gateway.verification_cache import cache_key, token_tag, user_tag
from shared.contracts.issuer import SessionInfo
from shared.contracts.registry.accounts import User
from shared.contracts.registry.zabbix_tokens import Secret, TokenAuthenticated
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

# A body that cannot be a request, by what is wrong with it: (HTTP status, error code, data). Only
# the first two can happen to a JSON body; a form is never read here.
UNREADABLE: dict[str, tuple[int, int, str]] = {
    "too_large": (413, INVALID_REQUEST, "Request body is too large."),
    "not_json": (200, PARSE_ERROR, PARSE_ERROR_DATA),
    "not_object": (200, INVALID_REQUEST, NOT_A_REQUEST),
    "bad_form": (200, INVALID_REQUEST, NOT_A_REQUEST),
}
# What a method's own tables left unsaid: a backend that did not answer is "try again"; any other
# domain error is a fault on our side.
ENVELOPE_ERRORS: Errors = {
    Unavailable: lambda _: ApiError(APPLICATION_ERROR, UNAVAILABLE),
    TokenHubError: lambda _: ApiError(INTERNAL_ERROR, INTERNAL_ERROR_DATA),
}
# A session id the issuer does not know (or cannot be one): the session is over.
SESSION_ERRORS: Errors = {
    NotFound: lambda _: session_terminated(),
    InvalidInput: lambda _: session_terminated(),
}
# An API token that is unknown, disabled, a guest's or malformed proves nothing; an ended one says so.
TOKEN_ERRORS: Errors = {
    BadCredentials: lambda _: not_authorized(),
    Forbidden: lambda _: not_authorized(),
    InvalidInput: lambda _: not_authorized(),
    Expired: lambda _: ApiError(APPLICATION_ERROR, "API token expired."),
}


@dataclass
class Caller:
    """Who is calling, and how they proved it."""

    user: User
    session_id: str | None = None  # a session login
    token_id: int | None = None  # an API token

    @property
    def id(self) -> int:
        return self.user.id


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


# A method takes its call's params (an array or object) and answers the call's result.
Method = Callable[[Context, JsonValue], Awaitable[JsonValue]]


@dataclass(frozen=True)
class MethodSpec:
    run: Method
    needs_auth: bool = True


@dataclass(frozen=True)
class Call:
    """One request object that passed Zabbix's checks of the envelope."""

    method: str
    params: JsonValue  # an array or object
    id: CallId
    auth: str | None
    notification: bool  # sent without an id: answered with nothing


class JsonRpc:
    """api_jsonrpc.php over a table of methods, looked up by lower-case name (Zabbix matches
    names case-insensitively)."""

    def __init__(self, methods: Mapping[str, MethodSpec]) -> None:
        self.methods = {name.lower(): spec for name, spec in methods.items()}

    async def handle(self, request: web.Request) -> web.Response:
        """CORS headers on every answer; OPTIONS (a browser's preflight) gets them and nothing
        else; any other method must carry a JSON Content-Type (else a bare 412), and then its body
        is read as one call or a batch, whatever the method."""
        response = await self._answer(request)
        response.headers.update(CORS_HEADERS)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(status=200, content_type="text/html", charset="utf-8")
        content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
        if content_type not in ALLOWED_CONTENT_TYPES:
            return web.Response(status=412)  # Zabbix's api_jsonrpc.php: a bare 412, no body
        try:
            decoded = decode_json(await read_raw(request))
        except UnreadableBody as exc:
            status, code, data = UNREADABLE[exc.problem]
            return json_reply(error_reply(code, data, None), status=status)
        bearer = _bearer_token(request)
        if isinstance(decoded, list) and decoded:
            if len(decoded) > MAX_BATCH:
                return json_reply(error_reply(INVALID_REQUEST, TOO_MANY_CALLS, None))
            replies: list[JsonValue] = []
            for call in decoded:
                if (reply := await self._one_call(request, call, bearer)) is not None:
                    replies.append(reply)
            return json_reply(replies) if replies else web.Response(status=200)
        if not isinstance(decoded, dict) or not decoded:
            # A scalar, null, [] or {}: PHP sees no request array at all.
            return json_reply(error_reply(INVALID_REQUEST, NOT_A_REQUEST, None))
        reply = await self._one_call(request, decoded, bearer)
        return json_reply(reply) if reply is not None else web.Response(status=200)

    async def _one_call(self, request: web.Request, raw: JsonValue, bearer: str | None) -> JsonObject | None:
        """Run one request object; its reply, or None for a notification (a valid call without id)."""
        call = _parse_call(raw)
        if isinstance(call, str):
            return error_reply(INVALID_REQUEST, call, _reply_id(raw))
        try:
            reply: JsonObject = {
                "jsonrpc": "2.0",
                "result": await self._run(request, call, bearer),
                "id": call.id,
            }
        except ApiError as exc:
            reply = exc.reply(call.id, call.method)
        except Exception:
            # A bug of ours: the client still gets a JSON-RPC error object, the log the traceback.
            log.exception("unhandled error in %s", call.method)
            reply = error_reply(INTERNAL_ERROR, INTERNAL_ERROR_DATA, call.id)
        return None if call.notification else reply

    async def _run(self, request: web.Request, call: Call, bearer: str | None) -> JsonValue:
        api, _, action = call.method.partition(".")
        spec = self.methods.get(f"{api}.{action}".lower())
        if spec is None:
            if not any(known.startswith(api.lower() + ".") for known in self.methods):
                raise ApiError(METHOD_NOT_FOUND, f'Incorrect API "{api}".')
            raise ApiError(METHOD_NOT_FOUND, f'Incorrect method "{api}.{action}".')
        ctx = Context(request, call.method)
        try:
            if spec.needs_auth:
                ctx.caller = await _authenticate(ctx, call.auth or bearer)
            elif call.auth is not None:
                raise params_error(f'The "{call.method}" method must be called without the "auth" parameter.')
            return await spec.run(ctx, call.params)
        except TokenHubError as exc:
            error = translate(exc, ENVELOPE_ERRORS)
            assert error is not None, "ENVELOPE_ERRORS lists TokenHubError"
            level = logging.ERROR if error.code == INTERNAL_ERROR else logging.WARNING
            log.log(level, "%s during %s: %s", exc.known_as(), call.method, exc.message)
            raise error from exc


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, value = (header_text(request, "Authorization") or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def _valid_id(value: JsonValue) -> bool:
    return value is None or (not isinstance(value, bool) and isinstance(value, (str, int, float)))


def _reply_id(raw: JsonValue) -> CallId:
    """The id to answer a refused request object with: its own if that is a valid one."""
    value = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return value


def _parse_call(call: JsonValue) -> Call | str:
    """The request object, or the `data` of the first of Zabbix's checks it fails, in its order."""
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
    method = call["method"]
    if not isinstance(method, str):
        return 'Invalid parameter "/method": a character string is expected.'
    if "params" not in call:
        return 'Invalid parameter "/": the parameter "params" is missing.'
    params = call["params"]
    if not isinstance(params, dict | list):
        return 'Invalid parameter "/params": an array or object is expected.'
    if not _valid_id(call.get("id")):
        return 'Invalid parameter "/id": a string, number or null value is expected.'
    auth = call.get("auth")
    if auth is not None and not isinstance(auth, str):
        return 'Invalid parameter "/auth": a character string is expected.'
    return Call(method, params, _reply_id(call), auth, notification="id" not in call)


async def _authenticate(ctx: Context, auth: str | None) -> Caller:
    """The caller `auth` (an API token or a session id) names; counted as one verification."""
    with ctx.request.app[verification_counter_key].checking():
        return await _check_auth(ctx, auth)


async def _check_auth(ctx: Context, auth: str | None) -> Caller:
    if not auth:
        raise not_authorized()
    if API_TOKEN.fullmatch(auth):
        caller = await authenticate_token(ctx, auth)
    else:
        caller = Caller((await resolve_session(ctx, auth)).user, session_id=auth)
    if caller.user.role == "guest":
        raise no_system_access()
    return caller


async def resolve_session(ctx: Context, session_id: str) -> SessionInfo:
    """The live session `session_id`; "Session terminated" for one the issuer does not know."""
    try:
        with saying(SESSION_ERRORS):
            return await ctx.backends.issuer.resolve_session(SESSION_REALM, session_id)
    except ValidationError as exc:  # cannot be a session id (the issuer would refuse it the same way)
        raise session_terminated() from exc


async def authenticate_token(ctx: Context, secret: str) -> Caller:
    """The owner of an API token. The registry records the use (lastaccess, whole seconds, at most
    once a second) as it checks; a check made within the last second may be reused
    (gateway/verification_cache.py), which records nothing the registry would have written."""
    cache = ctx.request.app[verification_cache_key]
    key = cache_key("zabbix", secret)
    cached = cache.get(key, TokenAuthenticated)
    if cached is not None and (cached.expires_at is None or cached.expires_at >= time.time()):
        return Caller(cached.user, token_id=cached.token_id)
    try:
        login = Secret(secret=secret)
    except ValidationError as exc:  # cannot be a token (the registry would refuse it the same way)
        raise not_authorized() from exc
    with saying(TOKEN_ERRORS):
        found = await ctx.backends.registry.authenticate_zabbix_token(login)
    left = cache.ttl if found.expires_at is None else found.expires_at - time.time()
    cache.put(key, (token_tag(found.token_id), user_tag(found.user.id)), found, left)
    return Caller(found.user, token_id=found.token_id)
