"""ChatApp-style access/refresh pairs — `/v1/tokens`, `/v1/tokens/refresh`, `/v1/tokens/check`,
`DELETE /v1/tokens` and the forward-auth `GET /v1/auth` (DESIGN §2.4, docs/chatapp.md).

Reads like the API reference: the envelope and error codes, how a request carries its token, then
one handler per method. The issuer holds the pairs; this module only translates. Domain errors
become ChatApp errors in each handler (what a NotFound means depends on the method), and whatever
is left — a backend that does not answer, a bug — becomes ApiServiceUnavailableError in `_endpoint`,
so no request ever gets a 500 or a traceback.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from gateway.dialects.common import client_addr
from gateway.keys import backends_key, verification_cache_key
from gateway.verification_cache import cache_key, family_tag, user_tag
from shared.errors import (
    BadCredentials,
    Forbidden,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    Throttled,
    TokenHubError,
    Unavailable,
)

log = logging.getLogger(__name__)

# The headers a reverse proxy's forward-auth (Traefik forwardAuth, nginx auth_request) passes on.
USER_ID_HEADER = "X-TokenHub-User-Id"
APP_ID_HEADER = "X-TokenHub-App-Id"
# Longest token we look at; ours are 81 characters. Anything longer is not ours, unhashed.
MAX_TOKEN_LENGTH = 256
_TOKEN_SHAPE = re.compile(r"th_(at|rt)_[0-9a-f]{32}[A-Za-z0-9_-]{43}")


# --- errors, as ChatApp clients know them ----------------------------------------------------------


class ApiError(Exception):
    """A ChatApp error: `{"success": false, "error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def invalid_token() -> ApiError:
    # The one error ChatApp documents: the client's cue to refresh (or make) a pair.
    return ApiError(401, "ApiInvalidTokenError", "Invalid Token", {"WWW-Authenticate": "Bearer"})


def validation_error(message: str) -> ApiError:
    return ApiError(400, "ApiValidationError", message)


def method_not_allowed(allowed: str) -> ApiError:
    return ApiError(405, "ApiMethodNotAllowedError", "Method not allowed", {"Allow": allowed})


def invalid_credentials() -> ApiError:
    # One answer for unknown e-mail, wrong password, unknown appId and disabled account.
    return ApiError(401, "ApiInvalidCredentialsError", "Invalid email, password or appId")


def tokens_limit(retry_after: int, headers: dict[str, str]) -> ApiError:
    return ApiError(
        429,
        "ApiTokensLimitError",
        "Daily limit of tokens.make for this appId is reached",
        {**headers, "Retry-After": str(retry_after)},
    )


def too_many_attempts(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "ApiTooManyAttemptsError",
        "Too many failed attempts, try again later",
        {"Retry-After": str(retry_after)},
    )


def service_unavailable() -> ApiError:
    return ApiError(503, "ApiServiceUnavailableError", "Service temporarily unavailable, try again later")


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def success(data: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return _reply(200, {"success": True, "data": data}, headers)


def failure(error: ApiError) -> web.Response:
    return _reply(
        error.status,
        {"success": False, "error": {"code": error.code, "message": error.message}},
        error.headers,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _endpoint(handler: Handler) -> Handler:
    """Every ChatApp route: ApiErrors become the error envelope; a backend that does not answer,
    or anything unexpected, becomes ApiServiceUnavailableError (logged, never shown)."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return failure(exc)
        except InvalidInput as exc:
            # The issuer refused what this module let through: the rules disagree, say it plainly.
            log.error(
                "issuer refused a request as invalid in %s %s: %s", request.method, request.path, exc.message
            )
            return failure(validation_error("Invalid request"))
        except Unavailable as exc:
            log.warning("backend unavailable in %s %s: %s", request.method, request.path, exc.message)
            return failure(service_unavailable())
        except TokenHubError as exc:
            log.error("unexpected %s in %s %s: %s", exc.code, request.method, request.path, exc.message)
            return failure(service_unavailable())
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            return failure(service_unavailable())

    return run


# --- reading requests ------------------------------------------------------------------------------


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body. Clients do not always send a JSON Content-Type; the body decides."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise validation_error("Request body is too large") from exc
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise validation_error("Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise validation_error("Request body must be a JSON object")
    return body


def _string(body: dict[str, Any], name: str, max_length: int, *, numbers: bool = False) -> str:
    value = body.get(name)
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an appId sent as a number means the same app
    if value is None or value == "":
        raise validation_error(f"{name} is required")
    if not isinstance(value, str):
        raise validation_error(f"{name} must be a string")
    if len(value) > max_length:
        raise validation_error(f"{name} is too long")
    return value


def make_params(body: dict[str, Any]) -> tuple[str, str, str]:
    """(email, password, appId) of a tokens.make body, or ApiValidationError."""
    email = _string(body, "email", 254)
    if "@" not in email:
        raise validation_error("email must be an e-mail address")
    password, app_id = _string(body, "password", 1024), _string(body, "appId", 100, numbers=True)
    # Both are looked up in Postgres, whose text cannot hold NUL: refused here, with a reason,
    # rather than by the registry as a mystery. The password is only hashed, so any character goes.
    for name, value in (("email", email), ("appId", app_id)):
        if "\x00" in value:
            raise validation_error(f"{name} must not contain NUL")
    return email, password, app_id


def token_from_header(value: str | None) -> str | None:
    """The token in `Authorization:` / `Refresh:`: the bare token as ChatApp documents it, or
    `Bearer <token>` as most HTTP clients send it."""
    if value is None:
        return None
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


def plausible(token: str | None, kind: str) -> str:
    """The token if it has the shape of ours of this kind ("at" or "rt"); else ApiInvalidTokenError,
    without asking the issuer about strings that cannot be tokens."""
    if token is None or len(token) > MAX_TOKEN_LENGTH:
        raise invalid_token()
    match = _TOKEN_SHAPE.fullmatch(token)
    if match is None or match[1] != kind:
        raise invalid_token()
    return token


# --- translating the issuer's pairs ----------------------------------------------------------------


def pair_data(pair: dict[str, Any]) -> dict[str, Any]:
    """The issuer's pair in ChatApp's words; times are unix seconds, as ChatApp's own are."""
    return {
        "cabinetUserId": pair["user_id"],
        "accessToken": pair["access_token"],
        "accessTokenEndTime": pair["access_expires_at"],
        "refreshToken": pair["refresh_token"],
        "refreshTokenEndTime": pair["refresh_expires_at"],
    }


def rate_limit_headers(limit: int, remaining: int, reset_at: int) -> dict[str, str]:
    """On every tokens.make that got past the credential check. Reset is a unix time (next UTC
    midnight), as in the X-RateLimit-* headers of GitHub and most APIs that send them."""
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset_at),
    }


# --- methods ---------------------------------------------------------------------------------------


@_endpoint
async def tokens_make(request: web.Request) -> web.StreamResponse:
    """tokens.make: `POST /v1/tokens` {email, password, appId} → a new pair (counts against the
    app's daily quota for this account)."""
    email, password, app_id = make_params(await read_body(request))
    issuer = request.app[backends_key].issuer
    try:
        reply = await issuer.call(
            "POST",
            "/v1/pairs",
            {"email": email, "password": password, "app_id": app_id, "client_addr": client_addr(request)},
        )
    except (BadCredentials, NotFound, Forbidden) as exc:
        raise invalid_credentials() from exc
    except QuotaExceeded as exc:
        headers = rate_limit_headers(exc.limit, 0, exc.reset_at)
        raise tokens_limit(exc.retry_after, headers) from exc
    except Throttled as exc:
        raise too_many_attempts(exc.retry_after) from exc
    quota = reply["quota"]
    return success(
        pair_data(reply), rate_limit_headers(quota["limit"], quota["remaining"], quota["reset_at"])
    )


@_endpoint
async def tokens_refresh(request: web.Request) -> web.StreamResponse:
    """tokens.refresh: `POST /v1/tokens/refresh` with `Refresh: <refreshToken>` or {refreshToken}.
    The presented refresh token dies; presenting it again revokes its whole family."""
    token = token_from_header(request.headers.get("Refresh"))
    if token is None:
        body = await read_body(request)
        if body.get("refreshToken") in (None, ""):
            raise validation_error("refreshToken is required (Refresh header or body)")
        if not isinstance(body["refreshToken"], str):
            raise validation_error("refreshToken must be a string")
        token = body["refreshToken"]
    issuer = request.app[backends_key].issuer
    try:
        reply = await issuer.call(
            "POST",
            "/v1/pairs/refresh",
            {"refresh_token": plausible(token, "rt"), "client_addr": client_addr(request)},
        )
    except NotFound as exc:
        raise invalid_token() from exc
    return success(pair_data(reply))


async def _verify(request: web.Request) -> dict[str, Any]:
    """The issuer's verdict on the request's `Authorization` access token, or ApiInvalidTokenError.
    A verdict the gateway got within the last second is reused (gateway/verification_cache.py)."""
    token = plausible(token_from_header(request.headers.get("Authorization")), "at")
    cache = request.app[verification_cache_key]
    key = cache_key("chatapp", token)
    cached: dict[str, Any] | None = cache.get(key)
    if cached is not None and cached["access_expires_at"] > time.time():
        return cached
    try:
        verified: dict[str, Any] = await request.app[backends_key].issuer.call(
            "POST", "/v1/pairs/check", {"access_token": token}
        )
    except NotFound as exc:
        raise invalid_token() from exc
    tags = (family_tag(verified["family"]), user_tag(verified["user_id"]))
    cache.put(key, tags, verified, verified["access_expires_at"] - time.time())
    return verified


def refuse_other_methods(*methods: str) -> Handler:
    """The answer of a path to any method it does not list: the error envelope with `Allow`,
    where aiohttp's router would answer a text/plain 405. HEAD goes wherever GET does."""
    allowed = ", ".join(sorted({*methods, *(("HEAD",) if "GET" in methods else ())}))

    async def refuse(request: web.Request) -> web.StreamResponse:
        return failure(method_not_allowed(allowed))

    return refuse


@_endpoint
async def tokens_check(request: web.Request) -> web.StreamResponse:
    """`GET /v1/tokens/check` with `Authorization: <accessToken>`: whose token it is, until when."""
    verified = await _verify(request)
    return success(
        {
            "cabinetUserId": verified["user_id"],
            "appId": verified["app_id"],
            "accessTokenEndTime": verified["access_expires_at"],
        }
    )


@_endpoint
async def tokens_revoke(request: web.Request) -> web.StreamResponse:
    """`DELETE /v1/tokens` with `Authorization: <accessToken>`: log out, ending every access and
    refresh token descended from the same tokens.make."""
    token = plausible(token_from_header(request.headers.get("Authorization")), "at")
    try:
        await request.app[backends_key].issuer.call("POST", "/v1/pairs/revoke", {"access_token": token})
    except NotFound as exc:
        raise invalid_token() from exc
    return success({})


@_endpoint
async def forward_auth(request: web.Request) -> web.StreamResponse:
    """`GET /v1/auth` for a reverse proxy: 204 with the bearer's user and app ids as headers for the
    protected service, or 401 (with the ChatApp error body the proxy passes to the client)."""
    verified = await _verify(request)
    return web.Response(
        status=204,
        headers={USER_ID_HEADER: str(verified["user_id"]), APP_ID_HEADER: str(verified["app_id"])},
    )
