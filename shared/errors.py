"""Domain errors: the one vocabulary the registry and issuer answer in, and the gateway reads.

A service raises one of these; its error middleware turns it into `{"error": {"code", "kind",
"message", "fields"}}` with the class's HTTP status; the internal client turns that body back into
the same class (by `kind`), its typed fields validated. A subclass keeps its parent's `code` and
status, so what it is broadly (forbidden, conflict...) reads the same on the wire; `kind` names it.
The gateway's dialects then say it in their own words. No dialect's wording lives here.

Each class is a dataclass: what a caller may read of an error is a typed attribute
(`exc.retry_after`), never a string key. A class with fields of its own adds them keyword-only.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, asdict, dataclass, field
from typing import ClassVar, Literal

from pydantic import JsonValue, TypeAdapter, ValidationError


@dataclass(eq=False)
class TokenHubError(Exception):
    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    # Unique per class; a class without its own is known by its code.
    kind: ClassVar[str] = ""
    message: str = ""

    @classmethod
    def known_as(cls) -> str:
        return cls.kind or cls.code

    def __post_init__(self) -> None:
        self.message = self.message or self.code
        super().__init__(self.message)

    def to_wire(self) -> dict[str, JsonValue]:
        fields: dict[str, JsonValue] = asdict(self)
        message = fields.pop("message")
        return {"error": {"code": self.code, "kind": self.known_as(), "message": message, "fields": fields}}


@dataclass(eq=False)
class InvalidInput(TokenHubError):
    code = "invalid_input"
    status = 400
    _: KW_ONLY
    # What was wrong, one line per problem ("tokens.0.name: String should have at most 255
    # characters"), for the log and for dialects that echo a service's refusal.
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_validation(cls, exc: ValidationError, message: str = "malformed request") -> InvalidInput:
        """A model's refusal, one line per problem, without the input (it may hold a secret)."""
        problems = [
            ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]
            for error in exc.errors(include_url=False, include_input=False)
        ]
        return cls(message, problems=problems)


@dataclass(eq=False)
class TooManyRows(InvalidInput):
    """A query matched more rows than one answer may hold."""

    kind = "too_many_rows"
    _: KW_ONLY
    limit: int


@dataclass(eq=False)
class BadCredentials(TokenHubError):
    """Unknown account, wrong password or unknown secret: deliberately not told apart."""

    code = "bad_credentials"
    status = 401


@dataclass(eq=False)
class Forbidden(TokenHubError):
    code = "forbidden"
    status = 403


@dataclass(eq=False)
class AccountDisabled(Forbidden):
    kind = "account_disabled"
    _: KW_ONLY
    user_id: int


# Why a long-lived token may not be managed or used: the actor is unknown or disabled, is a guest,
# the owner is not below the actor, the flags exceed the actor's own, the token or its owner is
# disabled, the token's validity has not begun, the user to act as is not below the owner.
RefusalReason = Literal["actor", "role", "owner", "flags", "disabled", "not_active", "operate_as"]


@dataclass(eq=False)
class Refused(Forbidden):
    kind = "refused"
    _: KW_ONLY
    reason: RefusalReason


@dataclass(eq=False)
class NotFound(TokenHubError):
    code = "not_found"
    status = 404


@dataclass(eq=False)
class NoSuchUser(NotFound):
    kind = "no_such_user"
    _: KW_ONLY
    user_id: int | None = None


@dataclass(eq=False)
class Conflict(TokenHubError):
    code = "conflict"
    status = 409


@dataclass(eq=False)
class NameTaken(Conflict):
    """A named token's (owner, name) is held already: by a row in the store (position None) or by
    an earlier item of the same request (its index)."""

    kind = "name_taken"
    _: KW_ONLY
    owner_id: int
    name: str
    position: int | None = None


# Why a voucher that exists cannot be used now (an expired one is Expired).
SpentReason = Literal["deleted", "repaid", "used"]


@dataclass(eq=False)
class VoucherSpent(Conflict):
    kind = "voucher_spent"
    _: KW_ONLY
    reason: SpentReason


@dataclass(eq=False)
class Expired(TokenHubError):
    code = "expired"
    status = 410


@dataclass(eq=False)
class Throttled(TokenHubError):
    code = "throttled"
    status = 429
    _: KW_ONLY
    retry_after: int = 1  # seconds


@dataclass(eq=False)
class QuotaExceeded(TokenHubError):
    code = "quota_exceeded"
    status = 429
    _: KW_ONLY
    limit: int
    reset_at: int  # unix seconds
    retry_after: int  # seconds


@dataclass(eq=False)
class Unavailable(TokenHubError):
    """A store or a backend service did not answer in time."""

    code = "unavailable"
    status = 503


# Every error a reply may carry. One missing here comes back as an internal error.
ERRORS: tuple[type[TokenHubError], ...] = (
    TokenHubError,
    InvalidInput,
    TooManyRows,
    BadCredentials,
    Forbidden,
    AccountDisabled,
    Refused,
    NotFound,
    NoSuchUser,
    Conflict,
    NameTaken,
    VoucherSpent,
    Expired,
    Throttled,
    QuotaExceeded,
    Unavailable,
)
_BY_KIND: dict[str, TypeAdapter[TokenHubError]] = {cls.known_as(): TypeAdapter(cls) for cls in ERRORS}
assert len(_BY_KIND) == len(ERRORS), "two error classes share a kind"


def from_wire(body: object) -> TokenHubError:
    """Rebuild the error a service answered with; anything unrecognisable is an internal error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return TokenHubError("malformed error reply from a backend")
    kind, message, fields = error.get("kind"), error.get("message"), error.get("fields")
    adapter = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if adapter is None or not isinstance(message, str) or not isinstance(fields, dict):
        return TokenHubError("malformed error reply from a backend")
    try:
        return adapter.validate_python({**fields, "message": message})
    except ValidationError:
        return TokenHubError(f"malformed {kind} error reply from a backend")
