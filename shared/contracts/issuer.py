"""The issuer's internal API: login sessions, failure throttles, and access/refresh pairs with their
daily quotas. TokenHub's own vocabulary only; the gateway's dialects translate it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.client import ServiceClient
from shared.contracts.endpoint import Api, Empty, Endpoint, Message, Reply
from shared.contracts.registry.accounts import ClientAddr, EventName, Realm, User

MIN_SESSION_IDLE_S = 10
MAX_SESSION_IDLE_S = 7 * 24 * 3600
# Longer than any token the issuer makes (81 characters), short enough that nobody posts megabytes
# to be hashed.
MAX_PAIR_TOKEN_CHARS = 4 * 81

SessionId = Annotated[str, Field(min_length=1, max_length=128)]
IdleSeconds = Annotated[int, Field(ge=MIN_SESSION_IDLE_S, le=MAX_SESSION_IDLE_S)]
TokenId = Annotated[int, Field(ge=1, le=2**63 - 1)]
PairToken = Annotated[str, Field(max_length=MAX_PAIR_TOKEN_CHARS)]


# --- sessions -------------------------------------------------------------------------------------


class OpenSession(Message):
    realm: Realm
    idle: IdleSeconds
    password: str
    username: str | None = None
    email: str | None = None
    client_addr: ClientAddr = "-"


class OpenTokenSession(Message):
    """A session for a long-lived token that the caller has just checked with the registry."""

    realm: Realm
    idle: IdleSeconds
    user_id: Annotated[int, Field(ge=1, le=2**63 - 1)]  # who the session acts as
    token_id: TokenId
    flags: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # the token's access flags, kept as given
    ends_at: Annotated[int, Field(ge=0)] | None = None  # the token's end, unix seconds; None: none


class SessionOpened(Reply):
    session_id: str
    user: User


class SessionRef(Message):
    realm: Realm
    session_id: SessionId


class SessionInfo(Reply):
    """A live session: its user and, when it was opened with a long-lived token, the token's id and
    access flags (whose meaning is the caller's business)."""

    user: User
    token_id: int | None = None
    flags: int | None = None


class Ended(Reply):
    ended: bool


class TokenSessionsRef(Message):
    realm: Realm
    token_ids: Annotated[list[TokenId], Field(min_length=1, max_length=10_000)]
    # The tokens are gone for good (deleted), rather than changed.
    revoked: bool


class EndedCount(Reply):
    ended: int  # how many live sessions the tokens had


# --- failure throttles ----------------------------------------------------------------------------

SubjectKind = Annotated[str, Field(pattern="^[a-z_]{1,32}$")]
Outcome = Literal["failed", "succeeded", "void"]


class Attempt(Message):
    """Something a caller lets only a few failures of through, e.g. guessing a voucher code: taken
    before the check it guards, settled after it (issuer/throttle.py)."""

    realm: Realm
    subjects: dict[SubjectKind, Annotated[str, Field(max_length=256)]]
    # An event for the audit log on the window's first refusal (e.g. "login_blocked"); none: not audited.
    blocked_event: EventName | None = None


class AttemptTaken(Reply):
    attempt: str  # to settle it with


class SettledAttempt(Attempt):
    attempt: Annotated[str, Field(pattern="^[0-9a-f]{16}$")]
    outcome: Outcome


# --- access/refresh pairs -------------------------------------------------------------------------


class MakePair(Message):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    app_id: Annotated[str, Field(min_length=1, max_length=100)]
    client_addr: ClientAddr = "-"


class RefreshPair(Message):
    refresh_token: PairToken
    client_addr: ClientAddr = "-"


class AccessTokenRef(Message):
    access_token: PairToken


class Pair(Reply):
    user_id: int
    app_id: str
    access_token: str
    access_expires_at: int  # unix seconds
    refresh_token: str
    refresh_expires_at: int  # unix seconds


class Quota(Reply):
    limit: int
    remaining: int
    reset_at: int  # unix seconds


class PairMade(Pair):
    quota: Quota


class Verified(Reply):
    """What a valid access token says about its bearer."""

    user_id: int
    app_id: str
    access_expires_at: int
    family: str  # revocations name families: a verification cache files the answer under it


# --- accounts (the admin API, issue 17) -----------------------------------------------------------

# Accounts one quota-usage call reads at most.
MAX_USAGE_ACCOUNTS = 1000


class AccountRef(Message):
    user_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


class EndAccount(AccountRef):
    """End every session and ChatApp family of the account (its epoch moves on); `disabled` True also
    refuses its credentials until enabled again, None leaves that flag (shared/revocations.py)."""

    disabled: bool | None = None


class QuotaUsageQuery(Message):
    app_id: Annotated[str, Field(min_length=1, max_length=100)]
    user_ids: Annotated[
        list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(min_length=1, max_length=MAX_USAGE_ACCOUNTS)
    ]


class AccountQuotaUsage(Reply):
    user_id: int
    used: int  # successful tokens.make today (UTC)
    refused: int  # refused for the quota today


class QuotaUsage(Reply):
    day: str  # YYYYMMDD, UTC
    accounts: list[AccountQuotaUsage]  # in the order asked


class Nothing(Message):
    """A request with nothing to say."""


class SweeperPass(Reply):
    at: int | None  # unix seconds the sweeper's last complete pass ended; None: none recorded


# Errors: bad_credentials, throttled (retry_after), unavailable (every attempt in flight too long).
OPEN_SESSION = Endpoint("/v1/sessions", OpenSession, SessionOpened, status=201)
# Errors: not_found (no such session, or ended by a revocation).
RESOLVE_SESSION = Endpoint("/v1/sessions/resolve", SessionRef, SessionInfo, idempotent=True)
END_SESSION = Endpoint("/v1/sessions/end", SessionRef, Ended)
# Errors: expired (the token has ended), forbidden (disabled user), not_found (no such user).
OPEN_TOKEN_SESSION = Endpoint("/v1/sessions/token", OpenTokenSession, SessionOpened, status=201)
END_TOKEN_SESSIONS = Endpoint("/v1/sessions/end-by-token", TokenSessionsRef, EndedCount)
# Errors: throttled (retry_after) when a subject has no attempts left; unavailable when they are
# all in flight for too long.
TAKE_ATTEMPT = Endpoint("/v1/attempts/take", Attempt, AttemptTaken)
# Failed counts; succeeded (which clears an account's failures) and void do not.
FINISH_ATTEMPT = Endpoint("/v1/attempts/finish", SettledAttempt, Empty)
# Errors: not_found (no such app), bad_credentials, forbidden (disabled account), throttled,
# quota_exceeded.
MAKE_PAIR = Endpoint("/v1/pairs", MakePair, PairMade, status=201)
# Errors: not_found for an unknown, expired, revoked or reused refresh token.
REFRESH_PAIR = Endpoint("/v1/pairs/refresh", RefreshPair, Pair)
# Errors: not_found unless the access token is valid now.
CHECK_PAIR = Endpoint("/v1/pairs/check", AccessTokenRef, Verified, idempotent=True)
# Revokes every token of the access token's family. Errors: not_found unless it is valid.
REVOKE_PAIR = Endpoint("/v1/pairs/revoke", AccessTokenRef, Empty)
END_ACCOUNT = Endpoint("/v1/accounts/end", EndAccount, Empty)
ENABLE_ACCOUNT = Endpoint("/v1/accounts/enable", AccountRef, Empty)
QUOTA_USAGE = Endpoint("/v1/quotas/usage", QuotaUsageQuery, QuotaUsage, idempotent=True)
SWEEPER_PASS = Endpoint("/v1/sweeper/last-pass", Nothing, SweeperPass, idempotent=True)

ISSUER_API = Api(
    "issuer",
    (
        OPEN_SESSION,
        RESOLVE_SESSION,
        END_SESSION,
        OPEN_TOKEN_SESSION,
        END_TOKEN_SESSIONS,
        TAKE_ATTEMPT,
        FINISH_ATTEMPT,
        MAKE_PAIR,
        REFRESH_PAIR,
        CHECK_PAIR,
        REVOKE_PAIR,
        END_ACCOUNT,
        ENABLE_ACCOUNT,
        QUOTA_USAGE,
        SWEEPER_PASS,
    ),
)


class IssuerClient(ServiceClient):
    async def open_session(self, req: OpenSession) -> SessionOpened:
        return await self.transport.send(OPEN_SESSION, req)

    async def resolve_session(self, realm: str, session_id: str) -> SessionInfo:
        return await self.transport.send(RESOLVE_SESSION, SessionRef(realm=realm, session_id=session_id))

    async def end_session(self, realm: str, session_id: str) -> bool:
        ref = SessionRef(realm=realm, session_id=session_id)
        return (await self.transport.send(END_SESSION, ref)).ended

    async def open_token_session(self, req: OpenTokenSession) -> SessionOpened:
        return await self.transport.send(OPEN_TOKEN_SESSION, req)

    async def end_token_sessions(self, req: TokenSessionsRef) -> int:
        return (await self.transport.send(END_TOKEN_SESSIONS, req)).ended

    async def take_attempt(self, req: Attempt) -> str:
        return (await self.transport.send(TAKE_ATTEMPT, req)).attempt

    async def finish_attempt(self, req: SettledAttempt) -> None:
        await self.transport.send(FINISH_ATTEMPT, req)

    async def make_pair(self, req: MakePair) -> PairMade:
        return await self.transport.send(MAKE_PAIR, req)

    async def refresh_pair(self, req: RefreshPair) -> Pair:
        return await self.transport.send(REFRESH_PAIR, req)

    async def check_pair(self, access_token: str) -> Verified:
        return await self.transport.send(CHECK_PAIR, AccessTokenRef(access_token=access_token))

    async def revoke_pair(self, access_token: str) -> None:
        await self.transport.send(REVOKE_PAIR, AccessTokenRef(access_token=access_token))

    async def end_account(self, user_id: int, *, disabled: bool | None) -> None:
        await self.transport.send(END_ACCOUNT, EndAccount(user_id=user_id, disabled=disabled))

    async def enable_account(self, user_id: int) -> None:
        await self.transport.send(ENABLE_ACCOUNT, AccountRef(user_id=user_id))

    async def quota_usage(self, app_id: str, user_ids: list[int]) -> QuotaUsage:
        return await self.transport.send(QUOTA_USAGE, QuotaUsageQuery(app_id=app_id, user_ids=user_ids))

    async def sweeper_last_pass(self) -> int | None:
        return (await self.transport.send(SWEEPER_PASS, Nothing())).at
