"""Domain errors: the one vocabulary the registry and issuer answer in, and the gateway reads.

A service raises one of these; its error middleware turns it into `{"error": {"code", "message",
"details"}}` with the class's HTTP status; the internal client turns that body back into the same
class. The gateway's dialects then say it in their own words. No dialect's wording lives here.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TokenHubError(Exception):
    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(TokenHubError):
    code = "invalid_input"
    status = 400


class BadCredentials(TokenHubError):
    """Unknown account, wrong password or unknown secret: deliberately not told apart."""

    code = "bad_credentials"
    status = 401


class Forbidden(TokenHubError):
    code = "forbidden"
    status = 403


class NotFound(TokenHubError):
    code = "not_found"
    status = 404


class Conflict(TokenHubError):
    code = "conflict"
    status = 409


class Expired(TokenHubError):
    code = "expired"
    status = 410


class Throttled(TokenHubError):
    code = "throttled"
    status = 429


class QuotaExceeded(TokenHubError):
    code = "quota_exceeded"
    status = 429


class Unavailable(TokenHubError):
    """A store or a backend service did not answer in time."""

    code = "unavailable"
    status = 503


_BY_CODE: dict[str, type[TokenHubError]] = {
    cls.code: cls
    for cls in (
        TokenHubError,
        InvalidInput,
        BadCredentials,
        Forbidden,
        NotFound,
        Conflict,
        Expired,
        Throttled,
        QuotaExceeded,
        Unavailable,
    )
}


def from_wire(body: Any) -> TokenHubError:
    """Rebuild the error a service answered with; anything unrecognisable is an internal error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return TokenHubError("malformed error reply from a backend")
    cls = _BY_CODE.get(str(error.get("code")), TokenHubError)
    message = error.get("message")
    rebuilt = cls(message if isinstance(message, str) else "")
    details = error.get("details")
    # Set, not passed as keywords: a detail may be named like a constructor parameter.
    rebuilt.details = details if isinstance(details, dict) else {}
    return rebuilt
