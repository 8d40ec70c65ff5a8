"""The admin API's public models (`/admin/v1/`, issue 17): what the console and any other client
send and get back, as JSON. Times are ISO 8601 in UTC; ids are numbers; a page is `{items,
next_cursor}` where `next_cursor` is an opaque string to pass back as `cursor` (None: last page).

Requests refuse unknown fields (a typo is an error, not a no-op); replies are plain data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

Role = Literal["super_admin", "admin", "user", "guest"]
UserStatus = Literal["active", "disabled"]
Kind = Literal["zabbix", "wialon", "voucher"]
# What the one SQL function token_status() says of a token (registry/migrations/0006_admin.sql).
TokenStatus = Literal["active", "pending", "disabled", "expired", "used", "annulled", "deleted"]

# Largest page of any listing, and largest bulk action (ids or codes per call).
MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_BULK = 100
MAX_VOUCHER_BATCH = 100

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Cursor = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_=-]+$")]
Limit = Annotated[int, Field(ge=1, le=MAX_PAGE)]
Username = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
Password = Annotated[str, Field(min_length=1, max_length=255)]
Search = Annotated[str, Field(min_length=1, max_length=100)]
VoucherCode = Annotated[str, Field(pattern=r"^[0-9]{10}$")]
AppId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
# A voucher's u_id: printable text, compared exactly (the hotspot dialect's rule).
ExternalRef = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
EventName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Seconds = Annotated[int, Field(ge=1, le=2**31 - 1)]


def _iso_8601(value: object) -> object:
    """Only the written form: pydantic would also read a number as unix seconds."""
    if not isinstance(value, datetime) and not (isinstance(value, str) and _ISO_DATE.match(value)):
        raise ValueError("an ISO 8601 date and time with its zone is expected, e.g. 2026-12-07T20:00:00Z")
    return value


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]")
# A moment in a filter: ISO 8601 with a zone (a time without one would be read in some zone).
Moment = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Body(Request):
    """A JSON body: strict, so `false` is no number and `"5"` no count (JSON has real types)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


T = TypeVar("T", bound=Out)


class Page(Out, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# --- sessions -------------------------------------------------------------------------------------


class SignIn(Body):
    username: Annotated[str, Field(min_length=1, max_length=255)]
    password: Annotated[str, Field(min_length=1, max_length=255)]


class UserOut(Out):
    id: int
    username: str
    email: str | None
    role: Role
    parent_id: int | None
    status: UserStatus
    created_at: datetime | None = None


class SessionOut(Out):
    session: str  # the bearer token: `Authorization: Bearer <session>`
    user: UserOut


# --- users ----------------------------------------------------------------------------------------


class UserQuery(Request):
    q: Search | None = None  # case-insensitive substring of the username or e-mail
    role: Role | None = None
    status: UserStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_PAGE


class NewUser(Body):
    username: Username
    role: Role = "user"
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    # None: the service generates one and returns it once.
    password: Password | None = None
    # None: the caller (an admin's users are below it); a super_admin may name anyone or nobody (0).
    parent_id: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None


class CreatedUser(Out):
    user: UserOut
    password: str | None  # the generated password, shown once; None when the caller chose it


class RoleChange(Body):
    role: Role


class NewPassword(Out):
    password: str  # shown once


class RevokedOut(Out):
    user: UserOut
    zabbix_tokens: int  # disabled
    wialon_tokens: int  # deleted
    api_keys: int  # deleted


class TreeQuery(Request):
    # The tree below this user (itself included); None: every user the caller reaches.
    root: Id | None = None


class TreeNode(Out):
    id: int
    username: str
    role: Role
    status: UserStatus
    children: list[TreeNode] = Field(default_factory=list)


# --- tokens ---------------------------------------------------------------------------------------


class TokenQuery(Request):
    kind: Kind | None = None
    owner_id: Id | None = None
    q: Search | None = None  # case-insensitive substring of the name (Zabbix name, Wialon app)
    status: TokenStatus | None = None
    created_after: Moment | None = None
    created_before: Moment | None = None
    expires_after: Moment | None = None
    expires_before: Moment | None = None
    used_after: Moment | None = None
    used_before: Moment | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_PAGE


class TokenRow(Out):
    id: int
    kind: Kind
    owner_id: int
    owner: str  # the owner's username
    name: str | None  # Zabbix token name, Wialon app name, voucher code
    status: TokenStatus
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class TokenIds(Body):
    ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BULK)]


class BulkResult(Out):
    done: list[int]  # ids (or codes) acted on
    not_found: list[int]  # ids the caller does not reach, or that are gone


# --- apps -----------------------------------------------------------------------------------------


class AppOut(Out):
    app_id: str
    name: str
    daily_quota: int
    access_ttl: int
    refresh_ttl: int


class NewApp(Body):
    app_id: AppId
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    daily_quota: Annotated[int, Field(ge=0, le=10_000_000)] = 100
    access_ttl: Seconds = 86_400
    refresh_ttl: Seconds = 1_209_600


class AppUpdate(Body):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    daily_quota: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    access_ttl: Seconds | None = None
    refresh_ttl: Seconds | None = None


class AccountUsage(Out):
    user_id: int
    username: str
    email: str | None
    used: int
    refused: int


class AppUsageOut(Out):
    app_id: str
    day: str  # YYYY-MM-DD, UTC
    daily_quota: int
    accounts: list[AccountUsage]  # accounts with any use today, most used first


# --- vouchers -------------------------------------------------------------------------------------


class VoucherQuery(Request):
    """gettokens' filters: None ignores, True keeps vouchers with the attribute, False without."""

    used: bool | None = None
    repaid: bool | None = None
    multiple: bool | None = None
    validity: bool | None = None
    token: VoucherCode | None = None
    u_id: ExternalRef | None = None
    limit: Limit = DEFAULT_PAGE
    offset: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class VoucherOut(Out):
    token: str
    owner_id: int
    created_at: datetime
    used_at: datetime | None
    expired_at: datetime | None
    repaid_at: datetime | None
    mac: str | None
    multiple: bool
    validity: int  # seconds from first use; 0: none
    u_id: str | None


class NewVouchers(Body):
    count: Annotated[int, Field(ge=1, le=MAX_VOUCHER_BATCH)]
    multiple: bool = False
    lifetime: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    u_id: ExternalRef | None = None


class VoucherCodes(Body):
    codes: Annotated[list[VoucherCode], Field(min_length=1, max_length=MAX_BULK)]


class VoucherResult(Out):
    done: list[str]
    not_found: list[str]


# --- audit ----------------------------------------------------------------------------------------


class AuditQuery(Request):
    user_id: Id | None = None  # events by or about this user
    event: EventName | None = None
    since: Moment | None = None
    until: Moment | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_PAGE


class AuditRow(Out):
    id: int
    at: datetime
    event: str
    actor_id: int | None
    subject_id: int | None
    token_id: int | None
    kind: str | None
    client_addr: str | None
    details: dict[str, JsonValue]
    actor_name: str | None  # the actor's username, where the caller reaches it
    subject_name: str | None  # the subject's username, likewise


# --- summary --------------------------------------------------------------------------------------


class CountRow(Out):
    kind: Kind
    status: TokenStatus
    count: int


class HourBucket(Out):
    hour: datetime  # the hour's start
    issued: int  # tokens created in that hour
    failed_logins: int


class VerificationBucket(Out):
    hour: datetime  # the hour's start
    accepted: int  # credential checks the gateways answered with yes in that hour
    refused: int  # and with no (a backend that did not answer is neither)


class SummaryOut(Out):
    tokens: list[CountRow]
    hourly: list[HourBucket]  # the last 24 hours, oldest first, every hour present
    # The same 24 hours: every gateway's verifications, as flushed to Redis (gateway/verification_stats.py;
    # the last few seconds' not yet).
    verifications: list[VerificationBucket]
    sweeper_last_pass: datetime | None
