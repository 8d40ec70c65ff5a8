"""The issuer's internal API: login sessions, failure throttles, and access/refresh pairs with their
daily quotas. TokenHub's own vocabulary only; the gateway's dialects translate it."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from issuer.keys import logins_key, pairs_key, sessions_key, throttle_key
from issuer.pairs import TOKEN_LENGTH
from issuer.redis_keys import MAX_SESSION_IDLE_S, MIN_SESSION_IDLE_S, REALM_PATTERN
from shared.internal import json_response, read_model

Realm = Annotated[str, Field(pattern=f"^{REALM_PATTERN}$")]
SessionId = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenSession(_Body):
    realm: Realm
    idle: Annotated[int, Field(ge=MIN_SESSION_IDLE_S, le=MAX_SESSION_IDLE_S)]
    password: str
    username: str | None = None
    email: str | None = None
    client_addr: Annotated[str, Field(max_length=64)] = "-"


class SessionRef(_Body):
    realm: Realm
    session_id: SessionId


async def open_session(request: web.Request) -> web.Response:
    body = await read_model(request, OpenSession)
    session_id, user = await request.app[sessions_key].open(
        body.realm, body.idle, body.password, body.client_addr, username=body.username, email=body.email
    )
    return json_response({"session_id": session_id, "user": user}, status=201)


async def resolve_session(request: web.Request) -> web.Response:
    """{user}, plus {token_id, flags} for a session opened with a long-lived token."""
    body = await read_model(request, SessionRef)
    info = await request.app[sessions_key].resolve_info(body.realm, body.session_id)
    return json_response(info.to_wire())


async def end_session(request: web.Request) -> web.Response:
    body = await read_model(request, SessionRef)
    ended = await request.app[sessions_key].end(body.realm, body.session_id)
    return json_response({"ended": ended})


# --- sessions opened with a long-lived token (Wialon's token/login) --------------------------------

TokenId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class OpenTokenSession(_Body):
    """A session for a long-lived token that the caller has just checked with the registry."""

    realm: Realm
    idle: Annotated[int, Field(ge=MIN_SESSION_IDLE_S, le=MAX_SESSION_IDLE_S)]
    user_id: Annotated[int, Field(ge=1, le=2**63 - 1)]  # who the session acts as
    token_id: TokenId
    flags: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # the token's access flags, kept as given
    ends_at: Annotated[int, Field(ge=0)] | None = None  # the token's end, unix seconds; None: none


class TokenSessionsRef(_Body):
    realm: Realm
    token_ids: Annotated[list[TokenId], Field(min_length=1, max_length=10_000)]
    # The tokens are gone for good (deleted), rather than changed.
    revoked: bool


async def open_token_session(request: web.Request) -> web.Response:
    """201 {session_id, user}. Errors: expired (the token has ended), forbidden (disabled user),
    not_found (no such user)."""
    body = await read_model(request, OpenTokenSession)
    session_id, user = await request.app[sessions_key].open_with_token(
        body.realm, body.idle, body.user_id, body.token_id, body.flags, body.ends_at
    )
    return json_response({"session_id": session_id, "user": user}, status=201)


async def end_token_sessions(request: web.Request) -> web.Response:
    """{ended}: how many live sessions the tokens had."""
    body = await read_model(request, TokenSessionsRef)
    ended = await request.app[sessions_key].end_token_sessions(
        body.realm, body.token_ids, revoked=body.revoked
    )
    return json_response({"ended": ended})


class Attempt(_Body):
    """Something a caller lets only a few failures of through, e.g. guessing a voucher code: taken
    before the check it guards, settled after it (issuer/throttle.py)."""

    realm: Realm
    subjects: dict[Annotated[str, Field(pattern="^[a-z_]{1,32}$")], Annotated[str, Field(max_length=256)]]
    # An event for the audit log on the window's first refusal (e.g. "login_blocked"); none: not audited.
    blocked_event: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None


async def take_attempt(request: web.Request) -> web.Response:
    """{attempt: id} (to settle it with), or throttled (with retry_after) when a subject has no
    attempts left; unavailable when they are all in flight for too long."""
    body = await read_model(request, Attempt)
    taken = await request.app[logins_key].hold(
        body.realm,
        body.subjects,
        blocked_event=body.blocked_event,
        details={"subjects": sorted(body.subjects)},
    )
    return json_response({"attempt": taken})


class SettledAttempt(Attempt):
    attempt: Annotated[str, Field(pattern="^[0-9a-f]{16}$")]
    outcome: Literal["failed", "succeeded", "void"]


async def finish_attempt(request: web.Request) -> web.Response:
    """Settle an attempt taken before: failed (it counts), succeeded or void (it does not)."""
    body = await read_model(request, SettledAttempt)
    await request.app[throttle_key].finish(body.realm, body.subjects, body.attempt, body.outcome)
    return json_response({"settled": True})


# --- access/refresh pairs (ChatApp's tokens.make / tokens.refresh) ---------------------------------

# Long enough for any token we issue, short enough that nobody posts megabytes to be hashed.
PairToken = Annotated[str, Field(max_length=4 * TOKEN_LENGTH)]


class MakePair(_Body):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    app_id: Annotated[str, Field(min_length=1, max_length=100)]
    client_addr: Annotated[str, Field(max_length=64)] = "-"


class RefreshPair(_Body):
    refresh_token: PairToken
    client_addr: Annotated[str, Field(max_length=64)] = "-"


class AccessTokenRef(_Body):
    access_token: PairToken


async def make_pair(request: web.Request) -> web.Response:
    """201 {pair..., quota: {limit, remaining, reset_at}}. Errors: not_found (no such app),
    bad_credentials, forbidden (disabled account), throttled and quota_exceeded (both with
    retry_after; quota_exceeded also limit, remaining, reset_at)."""
    body = await read_model(request, MakePair)
    pair, quota = await request.app[pairs_key].make(body.email, body.password, body.app_id, body.client_addr)
    return json_response({**pair.to_wire(), "quota": quota.to_wire()}, status=201)


async def refresh_pair(request: web.Request) -> web.Response:
    """The next pair; not_found for an unknown, expired, revoked or reused refresh token."""
    body = await read_model(request, RefreshPair)
    pair = await request.app[pairs_key].refresh(body.refresh_token, body.client_addr)
    return json_response(pair.to_wire())


async def check_pair(request: web.Request) -> web.Response:
    """{user_id, app_id, access_expires_at, family}; not_found unless the access token is valid now."""
    body = await read_model(request, AccessTokenRef)
    verified = await request.app[pairs_key].check(body.access_token)
    return json_response(verified.to_wire())


async def revoke_pair_family(request: web.Request) -> web.Response:
    """Revoke every token of the access token's family; not_found unless the token is valid."""
    body = await read_model(request, AccessTokenRef)
    await request.app[pairs_key].revoke(body.access_token)
    return json_response({"revoked": True})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/attempts/take", take_attempt)
    app.router.add_post("/v1/attempts/finish", finish_attempt)
    app.router.add_post("/v1/sessions", open_session)
    app.router.add_post("/v1/sessions/resolve", resolve_session)
    app.router.add_post("/v1/sessions/end", end_session)
    app.router.add_post("/v1/sessions/token", open_token_session)
    app.router.add_post("/v1/sessions/end-by-token", end_token_sessions)
    app.router.add_post("/v1/pairs", make_pair)
    app.router.add_post("/v1/pairs/refresh", refresh_pair)
    app.router.add_post("/v1/pairs/check", check_pair)
    app.router.add_post("/v1/pairs/revoke", revoke_pair_family)
