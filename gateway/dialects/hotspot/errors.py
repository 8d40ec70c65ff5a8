"""The hotspot errors: `{"status": "error", "error": {"code", "message"}}` with the code's HTTP status,
and the tables that say the services' domain errors in these words (docs/hotspot.md lists them)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.dialects.common import ErrorTable
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
    VoucherSpent,
)

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


class HotspotError(Exception):
    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        assert code in STATUS, code
        self.code = code
        self.message = message
        self.retry_after = retry_after


def invalid(message: str) -> HotspotError:
    return HotspotError("invalid_request", message)


def internal_error() -> HotspotError:
    return HotspotError("internal_error", "internal error, try again later")


def _says(code: str, message: str) -> Callable[[TokenHubError], HotspotError]:
    return lambda _exc: HotspotError(code, message)


def _throttled(exc: TokenHubError) -> HotspotError:
    wait = exc.retry_after if isinstance(exc, Throttled) and exc.retry_after > 0 else 1
    return HotspotError("too_many_attempts", "too many failed attempts, try again later", wait)


def _spent(exc: TokenHubError) -> HotspotError:
    reason = exc.reason if isinstance(exc, VoucherSpent) else "used"
    if reason == "deleted":
        return HotspotError("voucher_deleted", "the voucher was deleted")
    if reason == "repaid":
        return HotspotError("voucher_repaid", "the voucher was repaid")
    return HotspotError("voucher_used", "the voucher is already in use on another device")


# What any call may meet that its own table does not say.
CALL_ERRORS: ErrorTable[HotspotError] = {
    Unavailable: _says("service_unavailable", "service temporarily unavailable, try again later"),
    Throttled: _throttled,
    # The gateway checks every parameter first, so this is a value the database refused.
    InvalidInput: lambda exc: invalid(exc.message),
    # Disabled between authentication and the call.
    Forbidden: _says("forbidden", "the account cannot act"),
    TokenHubError: lambda _exc: internal_error(),
}

# Checking the api_token: an unknown key and a malformed one alike are not valid.
_NOT_VALID = _says("unauthorized", "the api_token is not valid")
AUTH_ERRORS: ErrorTable[HotspotError] = {
    BadCredentials: _NOT_VALID,
    InvalidInput: _NOT_VALID,
    NotFound: _NOT_VALID,
    Forbidden: _says("forbidden", "the account is disabled"),
}

# usetoken: why a voucher cannot be used now (only an unknown one counts as a guess).
USE_ERRORS: ErrorTable[HotspotError] = {
    NotFound: _says("not_found", "no such voucher"),
    Expired: _says("voucher_expired", "the voucher's validity period is over"),
    Conflict: _spent,
}
