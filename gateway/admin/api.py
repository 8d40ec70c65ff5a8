"""The admin API's HTTP routes: `/admin/v1/...`, JSON in and out, over gateway/admin/service.py.

Every route but `POST /admin/v1/sessions` needs `Authorization: Bearer <session>`. Errors are
`{"error": {"code", "message"}}` with 400 (malformed JSON or query), 401 (no or dead session, wrong
password), 403 (the role may not), 404, 405 (with Allow), 409, 413 (a body over
TOKENHUB_MAX_BODY_BYTES), 422 (a value that breaks the rules), 429 (throttled, with Retry-After) or
503 (a backend did not answer); never a traceback. `ROUTES` is the one table
the app registers and the authorization matrix test walks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.admin import service
from gateway.admin.models import (
    AppOut,
    AppUpdate,
    AppUsageOut,
    AuditQuery,
    AuditRow,
    BulkResult,
    CreatedUser,
    NewApp,
    NewPassword,
    NewUser,
    NewVouchers,
    Page,
    RevokedOut,
    RoleChange,
    SessionOut,
    SignIn,
    SummaryOut,
    TokenIds,
    TokenQuery,
    TokenRow,
    TreeNode,
    TreeQuery,
    UserOut,
    UserQuery,
    VoucherCodes,
    VoucherOut,
    VoucherQuery,
    VoucherResult,
)
from gateway.admin.service import Caller
from gateway.dialects.common import client_addr
from shared.errors import Throttled, TokenHubError

log = logging.getLogger(__name__)

PREFIX = "/admin/v1"
M = TypeVar("M", bound=BaseModel)
_MAX_ID = 2**63 - 1


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _reply(value: Any, status: int = 200) -> web.Response:
    if isinstance(value, BaseModel):
        body = value.model_dump_json().encode()
    elif isinstance(value, list):
        body = TypeAdapter(list[Any]).dump_json(value)
    else:
        body = orjson.dumps(value)
    return web.Response(body=body, status=status, content_type="application/json")


def _invalid(exc: ValidationError) -> _Refusal:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return _Refusal(422, "invalid_input", f"{where}: {first['msg']}")


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _Refusal(400, "bad_json", "the body is not JSON") from exc
    if not isinstance(data, dict):
        raise _Refusal(400, "bad_json", "the body must be a JSON object")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _invalid(exc) from exc


def _query(request: web.Request, model: type[M]) -> M:
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key in params:
            raise _Refusal(400, "bad_query", f"{key}: given more than once")
        params[key] = value
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise _invalid(exc) from exc


def _id(request: web.Request, name: str = "user_id") -> int:
    value = int(request.match_info[name])  # the route's pattern is digits
    if not 1 <= value <= _MAX_ID:
        raise _Refusal(404, "not_found", "no such object")
    return value


async def _caller(request: web.Request) -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _Refusal(401, "unauthorized", "sign in first: Authorization: Bearer <session>")
    caller = await service.caller_from_session(request.app, token.strip(), client_addr(request))
    if caller is None:
        raise _Refusal(401, "unauthorized", "the session has ended or never was; sign in again")
    return caller


Handler = Callable[[web.Request, Caller], Awaitable[web.Response]]


def _guarded(
    handle: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def guarded(request: web.Request) -> web.Response:
        try:
            return await handle(request)
        except _Refusal as exc:
            return _error(exc.status, exc.code, exc.message)
        except Throttled as exc:
            return _error(429, exc.code, exc.message, {"Retry-After": str(max(1, exc.retry_after))})
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", "the body is larger than the gateway takes")
        except ValidationError as exc:
            # A value the public model let through and an internal request's model did not.
            return _error(422, "invalid_input", str(_invalid(exc)))
        except TokenHubError as exc:
            status = exc.status if exc.status in {400, 401, 403, 404, 409, 422, 429, 503} else 503
            code = "invalid_input" if exc.status == 400 else exc.code
            return _error(422 if exc.status == 400 else status, code, exc.message)
        except Exception:
            log.exception("admin API: unexpected error")
            return _error(503, "unavailable", "the request could not be served just now; try again")

    return guarded


def _signed_in(handle: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def with_caller(request: web.Request) -> web.Response:
        return await handle(request, await _caller(request))

    return with_caller


# --- handlers -------------------------------------------------------------------------------------


async def sign_in(request: web.Request) -> web.Response:
    given = await _body(request, SignIn)
    token, caller = await service.sign_in(request.app, given.username, given.password, client_addr(request))
    user = await service.get_user(request.app, caller, caller.user_id)
    return _reply(SessionOut(session=token, user=user), 201)


async def sign_out(request: web.Request, caller: Caller) -> web.Response:
    token = request.headers["Authorization"].partition(" ")[2].strip()
    await service.sign_out(request.app, token)
    return web.Response(status=204)


async def summary(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.summary(request.app, caller))


async def list_users(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.list_users(request.app, caller, _query(request, UserQuery)))


async def create_user(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.create_user(request.app, caller, await _body(request, NewUser)), 201)


async def get_user(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.get_user(request.app, caller, _id(request)))


async def user_tree(request: web.Request, caller: Caller) -> web.Response:
    query = _query(request, TreeQuery)
    return _reply(await service.wialon_tree(request.app, caller, query.root))


async def set_role(request: web.Request, caller: Caller) -> web.Response:
    change = await _body(request, RoleChange)
    return _reply(await service.set_role(request.app, caller, _id(request), change.role))


async def disable_user(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.disable_user(request.app, caller, _id(request)))


async def enable_user(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.enable_user(request.app, caller, _id(request)))


async def revoke_user(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.revoke_user(request.app, caller, _id(request)))


async def reset_password(request: web.Request, caller: Caller) -> web.Response:
    password = await service.reset_password(request.app, caller, _id(request))
    return _reply(NewPassword(password=password))


async def list_tokens(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.list_tokens(request.app, caller, _query(request, TokenQuery)))


async def revoke_tokens(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.revoke_tokens(request.app, caller, await _body(request, TokenIds)))


async def delete_tokens(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.delete_tokens(request.app, caller, await _body(request, TokenIds)))


async def list_apps(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.list_apps(request.app, caller))


async def create_app(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.create_app(request.app, caller, await _body(request, NewApp)), 201)


def _app_id(request: web.Request) -> str:
    app_id = request.match_info["app_id"]
    if not 1 <= len(app_id) <= 100:
        raise _Refusal(404, "not_found", "no such app")
    return app_id


async def update_app(request: web.Request, caller: Caller) -> web.Response:
    change = await _body(request, AppUpdate)
    return _reply(await service.update_app(request.app, caller, _app_id(request), change))


async def app_usage(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.app_usage(request.app, caller, _app_id(request)))


async def list_vouchers(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.list_vouchers(request.app, caller, _query(request, VoucherQuery)))


async def create_vouchers(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.create_vouchers(request.app, caller, await _body(request, NewVouchers)), 201)


async def annul_vouchers(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.annul_vouchers(request.app, caller, await _body(request, VoucherCodes)))


async def delete_vouchers(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.delete_vouchers(request.app, caller, await _body(request, VoucherCodes)))


async def list_audit(request: web.Request, caller: Caller) -> web.Response:
    return _reply(await service.list_audit(request.app, caller, _query(request, AuditQuery)))


@dataclass(frozen=True)
class Route:
    """One admin endpoint, with what it takes and gives (the OpenAPI document is generated from
    these: gateway/admin/openapi.py)."""

    method: str
    path: str  # below PREFIX
    handle: Callable[[web.Request], Awaitable[web.Response]]
    signed_in: bool
    summary: str
    reply: Any  # a model or a type such as list[AppOut]; None: no body (204)
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None


def signed(
    method: str,
    path: str,
    handle: Handler,
    summary: str,
    reply: Any,
    *,
    status: int = 200,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
) -> Route:
    return Route(method, path, _signed_in(handle), True, summary, reply, status, body, query)


_USER = r"/users/{user_id:\d{1,19}}"

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/sessions",
        sign_in,
        False,
        "Sign in: a session for `Authorization: Bearer`",
        SessionOut,
        201,
        SignIn,
    ),
    # Every other route needs a session.
    signed(
        "DELETE",
        "/sessions/current",
        sign_out,
        "Sign out: the session ends for every gateway",
        None,
        status=204,
    ),
    signed(
        "GET", "/summary", summary, "Counts per kind and status, the last 24 hours, the sweeper", SummaryOut
    ),
    signed(
        "GET",
        "/users",
        list_users,
        "Users the caller reaches, by id, keyset-paged",
        Page[UserOut],
        query=UserQuery,
    ),
    signed(
        "POST",
        "/users",
        create_user,
        "Create a user (a generated password is shown once)",
        CreatedUser,
        status=201,
        body=NewUser,
    ),
    signed(
        "GET",
        "/users/tree",
        user_tree,
        "The users the caller reaches (or one user's subtree) as a tree by parent",
        list[TreeNode],
        query=TreeQuery,
    ),
    signed("GET", _USER, get_user, "One user", UserOut),
    signed("PUT", _USER + "/role", set_role, "Change a user's role", UserOut, body=RoleChange),
    signed("POST", _USER + "/disable", disable_user, "Disable: every credential refused at once", UserOut),
    signed("POST", _USER + "/enable", enable_user, "Enable a disabled user", UserOut),
    signed(
        "POST",
        _USER + "/revoke",
        revoke_user,
        "End every session, pair and long-lived credential",
        RevokedOut,
    ),
    signed("POST", _USER + "/password", reset_password, "A new generated password, shown once", NewPassword),
    signed(
        "GET",
        "/tokens",
        list_tokens,
        "Tokens of every kind, newest first, keyset-paged",
        Page[TokenRow],
        query=TokenQuery,
    ),
    signed("POST", "/tokens/revoke", revoke_tokens, "Revoke up to 100 tokens", BulkResult, body=TokenIds),
    signed("POST", "/tokens/delete", delete_tokens, "Delete up to 100 tokens", BulkResult, body=TokenIds),
    signed("GET", "/apps", list_apps, "Every app", list[AppOut]),
    signed("POST", "/apps", create_app, "Create an app (super_admin)", AppOut, status=201, body=NewApp),
    signed(
        "PATCH",
        "/apps/{app_id}",
        update_app,
        "Change an app's quota, lifetimes or name (super_admin)",
        AppOut,
        body=AppUpdate,
    ),
    signed("GET", "/apps/{app_id}/usage", app_usage, "Today's tokens.make use per account", AppUsageOut),
    signed(
        "GET",
        "/vouchers",
        list_vouchers,
        "Vouchers, filtered as gettokens does, newest first (limit/offset)",
        list[VoucherOut],
        query=VoucherQuery,
    ),
    signed(
        "POST",
        "/vouchers",
        create_vouchers,
        "Create up to 100 vouchers (codes shown once)",
        list[VoucherOut],
        status=201,
        body=NewVouchers,
    ),
    signed("POST", "/vouchers/annul", annul_vouchers, "Annul vouchers", VoucherResult, body=VoucherCodes),
    signed("POST", "/vouchers/delete", delete_vouchers, "Delete vouchers", VoucherResult, body=VoucherCodes),
    signed(
        "GET",
        "/audit",
        list_audit,
        "The audit log, newest first, keyset-paged",
        Page[AuditRow],
        query=AuditQuery,
    ),
)


def _pattern(path: str) -> re.Pattern[str]:
    """The regular expression of a route's path, for telling which methods a path takes."""
    # A variable is {name} or {name:rule}, where the rule may hold {m,n} of its own.
    parts = re.split(r"(\{\w+(?::(?:[^{}]|\{[^{}]*\})+)?\})", PREFIX + path)
    out = []
    for part in parts:
        if part.startswith("{"):
            _, _, rule = part[1:-1].partition(":")
            out.append(f"(?:{rule or '[^/]+'})")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


_PATTERNS = [(_pattern(r.path), r.method) for r in ROUTES]


def setup_admin_routes(app: web.Application) -> None:
    for r in ROUTES:
        app.router.add_route(r.method, PREFIX + r.path, _guarded(r.handle))
    # Last: any other path or method below the prefix gets the API's own error, not aiohttp's page.
    app.router.add_route("*", PREFIX + "/{tail:.*}", _no_such_endpoint)


async def _no_such_endpoint(request: web.Request) -> web.Response:
    allowed = sorted({method for pattern, method in _PATTERNS if pattern.fullmatch(request.path)})
    if allowed:
        return _error(405, "method_not_allowed", "method not allowed", {"Allow": ", ".join(allowed)})
    return _error(404, "not_found", f"no endpoint {request.method} {request.path}")


__all__ = ["PREFIX", "ROUTES", "Route", "setup_admin_routes"]
