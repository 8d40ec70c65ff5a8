"""Zabbix API 6.0 over JSON-RPC 2.0 — `POST /api_jsonrpc.php` (DESIGN §2.1).

Reads like the reference: the envelope (single and batch calls, notifications, Zabbix's error
codes and texts), authentication (`auth` member or `Authorization: Bearer`), then one function per
API method. Domain errors from the services become Zabbix errors in `_run_method`, nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.keys import backends_key, settings_key
from shared.errors import (
    BadCredentials,
    Forbidden,
    InvalidInput,
    NotFound,
    Throttled,
    TokenHubError,
    Unavailable,
)

log = logging.getLogger(__name__)

ALLOWED_CONTENT_TYPES = frozenset({"application/json-rpc", "application/json", "application/jsonrequest"})
SESSION_REALM = "zabbix"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
APPLICATION_ERROR = -32500

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request.",
    METHOD_NOT_FOUND: "Method not found.",
    INVALID_PARAMS: "Invalid params.",
    INTERNAL_ERROR: "Internal error.",
    APPLICATION_ERROR: "Application error.",
}

# Zabbix's user types by TokenHub role (USER_TYPE_ZABBIX_USER/ADMIN/SUPER_ADMIN) and default role ids.
USER_TYPE = {"super_admin": 3, "admin": 2, "user": 1, "guest": 1}
ROLE_ID = {"super_admin": "3", "admin": "2", "user": "1", "guest": "4"}


class ApiError(Exception):
    """A Zabbix API error: JSON-RPC code plus Zabbix's `data` text."""

    def __init__(self, code: int, data: str) -> None:
        super().__init__(data)
        self.code = code
        self.data = data


def not_authorized() -> ApiError:
    return ApiError(INVALID_PARAMS, "Not authorized.")


def invalid_param(path: str, problem: str) -> ApiError:
    return ApiError(INVALID_PARAMS, f'Invalid parameter "{path}": {problem}.')


def _error_reply(code: int, data: str, call_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": MESSAGES[code], "data": data}, "id": call_id}


# --- the envelope ----------------------------------------------------------------------------


@dataclass
class Context:
    """One call's view of the request: who is calling and how to reach the services."""

    request: web.Request
    auth: str | None
    user: dict[str, Any] | None = None
    session_id: str | None = None

    @property
    def client_addr(self) -> str:
        return self.request.remote or "-"


Method = Callable[[Context, Any], Awaitable[Any]]


@dataclass(frozen=True)
class MethodSpec:
    run: Method
    # apiinfo.version, user.login and user.checkAuthentication must be called without `auth`.
    needs_auth: bool


METHODS: dict[str, MethodSpec] = {}


def api_method(name: str, *, needs_auth: bool = True) -> Callable[[Method], Method]:
    def register(run: Method) -> Method:
        METHODS[name] = MethodSpec(run, needs_auth)
        return run

    return register


async def handle(request: web.Request) -> web.Response:
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if content_type not in ALLOWED_CONTENT_TYPES:
        # Zabbix answers a wrong Content-Type with a bare 412 and no body.
        return web.Response(status=412)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _json(_error_reply(INVALID_REQUEST, "Request body is too large.", None), status=413)
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _json(_error_reply(PARSE_ERROR, _PARSE_ERROR_DATA, None))
    bearer = _bearer_token(request)
    if isinstance(decoded, list):
        if not decoded:
            return _json(_error_reply(INVALID_REQUEST, _NOT_A_REQUEST, None))
        replies = [reply for call in decoded if (reply := await _one_call(request, call, bearer)) is not None]
        return _json(replies) if replies else web.Response(status=200)
    reply = await _one_call(request, decoded, bearer)
    return _json(reply) if reply is not None else web.Response(status=200)


_PARSE_ERROR_DATA = "Invalid JSON. An error occurred on the server while parsing the JSON text."
_NOT_A_REQUEST = "The received JSON is not a valid JSON-RPC request."


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _validate_envelope(call: Any) -> str | None:
    """Zabbix's checks of a request object, in its order; the `data` text of the first failure."""
    if not isinstance(call, dict):
        return _NOT_A_REQUEST
    for name in call:
        if name not in ("jsonrpc", "method", "params", "id", "auth"):
            return f'Invalid parameter "/": unexpected parameter "{name}".'
    if "jsonrpc" not in call:
        return 'Invalid parameter "/": the parameter "jsonrpc" is missing.'
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
    call_id = call.get("id")
    if call_id is not None and (isinstance(call_id, bool) or not isinstance(call_id, str | int | float)):
        return 'Invalid parameter "/id": a string, number or null value is expected.'
    if call.get("auth") is not None and not isinstance(call["auth"], str):
        return 'Invalid parameter "/auth": a character string is expected.'
    return None


async def _one_call(request: web.Request, call: Any, bearer: str | None) -> dict[str, Any] | None:
    """Run one request object; its reply, or None for a notification."""
    problem = _validate_envelope(call)
    call_id = call.get("id") if isinstance(call, dict) else None
    if problem is not None:
        return _error_reply(INVALID_REQUEST, problem, call_id)
    try:
        result = await _run_method(request, call, bearer)
    except ApiError as exc:
        reply = _error_reply(exc.code, exc.data, call_id)
    else:
        reply = {"jsonrpc": "2.0", "result": result, "id": call_id}
    return reply if "id" in call else None


async def _run_method(request: web.Request, call: dict[str, Any], bearer: str | None) -> Any:
    name: str = call["method"]
    api, _, action = name.lower().partition(".")
    spec = METHODS.get(f"{api}.{action}")
    if spec is None:
        if not any(known.startswith(api + ".") for known in METHODS):
            raise ApiError(METHOD_NOT_FOUND, f'Incorrect API "{api}".')
        raise ApiError(METHOD_NOT_FOUND, f'Incorrect method "{name}".')
    auth = call.get("auth") or bearer
    ctx = Context(request, auth)
    try:
        if spec.needs_auth:
            await _authenticate(ctx)
        elif call.get("auth") is not None:
            raise invalid_param("/", f'the "{name}" method must be called without the "auth" parameter')
        return await spec.run(ctx, call["params"])
    except Unavailable as exc:
        log.warning("backend unavailable during %s: %s", name, exc.message)
        raise ApiError(APPLICATION_ERROR, "Service temporarily unavailable, try again later.") from exc
    except TokenHubError as exc:
        # Anything a method did not turn into a Zabbix error itself is a bug on our side.
        log.error("unexpected %s during %s: %s", exc.code, name, exc.message)
        raise ApiError(INTERNAL_ERROR, "Internal JSON-RPC error.") from exc


async def _authenticate(ctx: Context) -> None:
    if not ctx.auth:
        raise not_authorized()
    try:
        reply = await ctx.request.app[backends_key].issuer.call(
            "POST", "/v1/sessions/resolve", {"realm": SESSION_REALM, "session_id": ctx.auth}
        )
    except (NotFound, InvalidInput) as exc:
        raise not_authorized() from exc
    ctx.user = reply["user"]
    ctx.session_id = ctx.auth


# --- parameter checks in Zabbix's words --------------------------------------------------------


def _check_object(
    params: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise invalid_param(path, "an array is expected")
    for name in params:
        if name not in allowed:
            raise invalid_param(path, f'unexpected parameter "{name}"')
    for name in required:
        if name not in params:
            raise invalid_param(path, f'the parameter "{name}" is missing')
    return params


def _check_string(value: Any, path: str, max_length: int = 255) -> str:
    if not isinstance(value, str):
        raise invalid_param(path, "a character string is expected")
    if len(value) > max_length:
        raise invalid_param(path, "value is too long")
    return value


def _check_boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_param(path, "a boolean is expected")
    return value


def _user_data(ctx: Context, user: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The user object that user.login (userData) and user.checkAuthentication return."""
    role = user["role"]
    return {
        "userid": str(user["id"]),
        "username": user["username"],
        "name": "",
        "surname": "",
        "url": "",
        "autologin": "0",
        "autologout": str(ctx.request.app[settings_key].zabbix_session_idle),
        "lang": "en_US",
        "refresh": "30s",
        "theme": "default",
        "attempt_failed": "0",
        "attempt_ip": "",
        "attempt_clock": "0",
        "rows_per_page": "50",
        "timezone": "default",
        "roleid": ROLE_ID[role],
        "type": USER_TYPE[role],
        "userip": ctx.client_addr,
        "debug_mode": 0,
        "gui_access": "0",
        "sessionid": session_id,
    }


# --- methods ---------------------------------------------------------------------------------


@api_method("apiinfo.version", needs_auth=False)
async def apiinfo_version(ctx: Context, params: Any) -> str:
    if params:
        _check_object(params, "/", (), ())
    return ctx.request.app[settings_key].zabbix_version


@api_method("user.login", needs_auth=False)
async def user_login(ctx: Context, params: Any) -> Any:
    params = dict(_check_object(params, "/", ("username", "user", "password", "userData"), ("password",)))
    if "user" in params:  # the pre-5.4 name of `username`
        if "username" in params:
            raise invalid_param("/", 'unexpected parameter "user"')
        params["username"] = params.pop("user")
    _check_object(params, "/", ("username", "password", "userData"), ("username", "password"))
    username = _check_string(params["username"], "/username")
    password = _check_string(params["password"], "/password")
    user_data = _check_boolean(params.get("userData", False), "/userData")
    settings = ctx.request.app[settings_key]
    try:
        reply = await ctx.request.app[backends_key].issuer.call(
            "POST",
            "/v1/sessions",
            {
                "realm": SESSION_REALM,
                "idle": settings.zabbix_session_idle,
                "username": username,
                "password": password,
                "client_addr": ctx.client_addr,
            },
        )
    except (BadCredentials, NotFound, Throttled) as exc:
        raise ApiError(
            APPLICATION_ERROR, "Incorrect user name or password or account is temporarily blocked."
        ) from exc
    except Forbidden as exc:
        raise ApiError(APPLICATION_ERROR, "No permissions for system access.") from exc
    session_id: str = reply["session_id"]
    if user_data:
        return _user_data(ctx, reply["user"], session_id)
    return session_id


@api_method("user.logout")
async def user_logout(ctx: Context, params: Any) -> bool:
    if params not in ([], {}):
        raise invalid_param("/", "unexpected parameter")
    assert ctx.session_id is not None
    await ctx.request.app[backends_key].issuer.call(
        "POST", "/v1/sessions/end", {"realm": SESSION_REALM, "session_id": ctx.session_id}
    )
    return True


@api_method("user.checkauthentication", needs_auth=False)
async def user_check_authentication(ctx: Context, params: Any) -> dict[str, Any]:
    params = _check_object(params, "/", ("sessionid", "extend"), ("sessionid",))
    session_id = _check_string(params["sessionid"], "/sessionid")
    if "extend" in params:
        _check_boolean(params["extend"], "/extend")
    try:
        reply = await ctx.request.app[backends_key].issuer.call(
            "POST", "/v1/sessions/resolve", {"realm": SESSION_REALM, "session_id": session_id}
        )
    except (NotFound, InvalidInput) as exc:
        raise ApiError(APPLICATION_ERROR, "Session terminated, re-login, please.") from exc
    return _user_data(ctx, reply["user"], session_id)
