"""ChatApp's envelope: `{"success": true, "data": ...}` or `{"success": false, "error": {"code",
"message"}}` with an HTTP status, the errors as ChatApp clients know them, and the tables from
domain errors to them.

What a domain error means depends on the method (a NotFound is an unknown app to tokens.make, a
dead token to the others), so each method names its table; whatever no table names — a backend that
does not answer, a bug — becomes ApiServiceUnavailableError in `endpoint`, so no request ever gets a
500 or a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from aiohttp import web
from pydantic import ValidationError

from gateway.dialects.common import ErrorTable, JsonObject, UnreadableBody, json_reply, translate, typed
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


class ApiError(Exception):
    """A ChatApp error: `{"success": false, "error": {"code", "message"}}` with an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


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


def tokens_limit(retry_after: int, headers: Mapping[str, str]) -> ApiError:
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


def rate_limit_headers(limit: int, remaining: int, reset_at: int) -> dict[str, str]:
    """On every tokens.make that got past the credential check. Reset is a unix time (next UTC
    midnight), as in the X-RateLimit-* headers of GitHub and most APIs that send them."""
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset_at),
    }


# --- replies ---------------------------------------------------------------------------------------


def success(data: JsonObject, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_reply({"success": True, "data": data}, 200, headers)


def failure(error: ApiError) -> web.Response:
    body = {"success": False, "error": {"code": error.code, "message": error.message}}
    return json_reply(body, error.status, error.headers)


# --- domain errors in ChatApp's words --------------------------------------------------------------

X = TypeVar("X", bound=TokenHubError)


def _quota_used_up(exc: QuotaExceeded) -> ApiError:
    return tokens_limit(exc.retry_after, rate_limit_headers(exc.limit, 0, exc.reset_at))


# tokens.make: the credentials and the app are one question, with one answer when any is wrong.
MAKE_ERRORS: ErrorTable[ApiError] = {
    BadCredentials: lambda _: invalid_credentials(),
    NotFound: lambda _: invalid_credentials(),
    Forbidden: lambda _: invalid_credentials(),
    QuotaExceeded: typed(QuotaExceeded, _quota_used_up),
    Throttled: typed(Throttled, lambda exc: too_many_attempts(exc.retry_after)),
}
# Every method that presents a token: the issuer knows no such live token.
TOKEN_ERRORS: ErrorTable[ApiError] = {NotFound: lambda _: invalid_token()}

# A body that cannot be read as a JSON object.
UNREADABLE = {
    "too_large": "Request body is too large",
    "not_json": "Request body is not valid JSON",
    "not_object": "Request body must be a JSON object",
    "bad_form": "Request body is not valid JSON",  # never a form here; said as what it then is
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint(errors: ErrorTable[ApiError]) -> Callable[[Handler], Handler]:
    """A ChatApp method whose domain errors are said by `errors`: ApiErrors become the error
    envelope; what the table does not name becomes ApiValidationError (a request the issuer refused
    as malformed) or ApiServiceUnavailableError (a backend that does not answer, a bug), logged and
    never shown."""

    def wrap(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return failure(exc)
            except UnreadableBody as exc:
                return failure(validation_error(UNREADABLE[exc.problem]))
            except TokenHubError as exc:
                return failure(translate(exc, errors) or _unforeseen(request, exc))
            except ValidationError as exc:
                # A request model refused what this dialect let through, as the issuer would have.
                return failure(_unforeseen(request, InvalidInput.from_validation(exc)))
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.path)
                return failure(service_unavailable())

        return run

    return wrap


def _unforeseen(request: web.Request, exc: TokenHubError) -> ApiError:
    where = f"{request.method} {request.path}"
    if isinstance(exc, InvalidInput):
        # The issuer refused what this module let through: the rules disagree, say it plainly.
        log.error("issuer refused a request as invalid in %s: %s", where, exc.message)
        return validation_error("Invalid request")
    if isinstance(exc, Unavailable):
        log.warning("backend unavailable in %s: %s", where, exc.message)
    else:
        log.error("unexpected %s in %s: %s", exc.code, where, exc.message)
    return service_unavailable()


def refuse_other_methods(*methods: str) -> Handler:
    """The answer of a path to any method it does not list: the error envelope with `Allow`,
    where aiohttp's router would answer a text/plain 405. HEAD goes wherever GET does."""
    allowed = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else set(methods)))

    async def refuse(request: web.Request) -> web.StreamResponse:
        return failure(method_not_allowed(allowed))

    return refuse
