"""`token/*`: log in with a token, create, change, delete and list tokens (DESIGN §2.2).

A token as Wialon shows it: `{h, app, at, ct, dur, fl, items, p}` (+ `ll` in token/list), where
`h` is the 72-character token itself, `at` its activation and `ct` its creation (unix seconds),
`dur` its lifetime after `at` (0: none), `fl` its access flags (-1: all), `p` a JSON text.
"""

from __future__ import annotations

import logging
from typing import TypedDict

from pydantic import JsonValue

from gateway.dialects.common import ErrorTable, JsonObject, guess_attempt, saying
from gateway.dialects.wialon import params as p
from gateway.dialects.wialon.core import escaped, login_reply
from gateway.dialects.wialon.envelope import SESSION_IDLE_S, SESSION_REALM, Context, Session
from gateway.dialects.wialon.errors import UNKNOWN_ERROR, WialonError, denied, invalid
from gateway.keys import verification_counter_key
from shared.contracts.issuer import OpenTokenSession, TokenSessionsRef
from shared.contracts.registry.wialon_tokens import (
    CreateToken,
    DeleteTokens,
    ListTokens,
    Params,
    TokenLogin,
    UpdateToken,
    WialonToken,
)
from shared.errors import (
    BadCredentials,
    Expired,
    Forbidden,
    NotFound,
    RefusalReason,
    Refused,
    TokenHubError,
    Unavailable,
)

log = logging.getLogger(__name__)

# The registry's reasons for refusing a login with a token, in words for the client.
_LOGIN_REFUSALS: dict[RefusalReason, str] = {
    "disabled": "the user or the token is disabled",
    "not_active": "the token is not active yet",
    "operate_as": "no such user to operate as",
}
# The issuer ends the sessions of at most this many tokens per call.
_END_CHUNK = 10_000


def _login_refused(exc: TokenHubError) -> WialonError:
    return denied(_LOGIN_REFUSALS.get(exc.reason) if isinstance(exc, Refused) else None)


# The registry's refusals of a token login. Only an unknown token is a guess (the throttle's).
_TOKEN_REFUSED: ErrorTable[WialonError] = {
    BadCredentials: lambda exc: denied("invalid token"),
    Forbidden: _login_refused,
    Expired: lambda exc: denied("the token has expired"),
}
# The issuer's refusals of the session for a token the registry has just accepted.
_SESSION_REFUSED: ErrorTable[WialonError] = {
    # It ended between the registry's check and now.
    Expired: lambda exc: denied("the token has expired"),
    Forbidden: lambda exc: denied(_LOGIN_REFUSALS["disabled"]),
    NotFound: lambda exc: denied(_LOGIN_REFUSALS["disabled"]),
}


def wialon_token(token: WialonToken) -> JsonObject:
    """A registry token as token/update answers it."""
    return {
        "h": token.secret,
        "app": token.app,
        "at": token.activates_at,
        "ct": token.created_at,
        "dur": token.lifetime_s,
        "fl": token.flags,
        "items": list[JsonValue](token.items),
        "p": escaped(token.params),
    }


def login_token(token: WialonToken) -> str:
    """token/login's `token`: the token's settings as an escaped JSON text, in the reference's order."""
    return escaped(
        {
            "app": token.app,
            "ct": token.created_at,
            "at": token.activates_at,
            "dur": token.lifetime_s,
            "fl": token.flags,
            "p": escaped(token.params),
            "items": token.items,
        }
    )


async def login(ctx: Context, params: JsonValue) -> JsonObject:
    """{token, operateAs?, fl?, appName?} → a session acting as the token's owner (or as the
    sub-user named by operateAs) with the token's access flags. `fl` here are response flags;
    TokenHub always answers the whole object. Unknown tokens are failed logins of the client's
    address (error 1003 once too many); a known token that cannot log in now is not a guess."""
    args = p.as_object(params)
    secret = p.token(args, "token")
    # Empty means none, as some clients send it.
    operate_as = p.optional_text(args, "operateAs", p.MAX_USER_NAME) or None
    response_flags = args.get("fl")
    if response_flags is not None and not p.is_integer(response_flags):
        raise invalid('"fl" must be a number')
    p.optional_text(args, "appName", 4 * p.MAX_APP_NAME)
    subjects = {"address": ctx.client_addr}
    checking = TokenLogin(secret=secret, operate_as=operate_as, client_addr=ctx.client_addr)
    with ctx.request.app[verification_counter_key].checking(), saying(_TOKEN_REFUSED):
        async with guess_attempt(
            ctx.request, SESSION_REALM, subjects, guess=BadCredentials, blocked_event="login_blocked"
        ):
            checked = await ctx.registry.authenticate_wialon_token(checking)
    token = checked.token
    opening = OpenTokenSession(
        realm=SESSION_REALM,
        idle=SESSION_IDLE_S,
        user_id=checked.user.id,
        token_id=token.id,
        flags=token.flags,
        ends_at=token.expires_at,
    )
    with saying(_SESSION_REFUSED):
        opened = await ctx.issuer.open_token_session(opening)
    return login_reply(ctx, opened.session_id, opened.user, {"token": login_token(token), "th": secret})


def _may_manage(session: Session) -> None:
    """Only a session with every right (a password login, or a token with fl -1) manages tokens."""
    if session.flags != p.UNLIMITED:
        raise denied("the session's token may not manage tokens")


class _Acting(TypedDict):
    """Who acts, for whom, from where: every token request's first fields."""

    actor_id: int
    owner_id: int | None
    client_addr: str


class _Definition(TypedDict):
    """What create and update set."""

    actor_flags: int
    app: str
    activates_at: int | None
    lifetime_s: int
    flags: int
    items: list[int]
    params: Params


def _acting(ctx: Context, session: Session, args: JsonObject) -> _Acting:
    return {"actor_id": session.user.id, "owner_id": p.user_id(args), "client_addr": ctx.client_addr}


def _definition(session: Session, args: JsonObject) -> _Definition:
    """All of app, at, dur, fl and p (the reference requires each), and items (optional: none means
    no restriction)."""
    app = p.text(args, "app", p.MAX_APP_NAME)
    if not app:
        raise invalid('"app" must not be empty')
    activates_at = p.uint(args, "at")
    lifetime = p.uint(args, "dur", p.MAX_DURATION_S)
    return {
        # The new flags may not exceed the session's own: the registry checks against these.
        "actor_flags": session.flags,
        "app": app,
        "activates_at": activates_at or None,  # 0: now
        "lifetime_s": lifetime,
        "flags": p.access_flags(args),
        "items": p.items(args),
        "params": p.custom_params(args),
    }


async def _end_sessions(ctx: Context, token_ids: list[int], *, revoked: bool) -> None:
    """End the sessions opened with tokens just changed or deleted. The change is committed by now;
    if the issuer does not answer, the client is told so (6) and the operator by the log."""
    try:
        for start in range(0, len(token_ids), _END_CHUNK):
            chunk = token_ids[start : start + _END_CHUNK]
            await ctx.issuer.end_token_sessions(
                TokenSessionsRef(realm=SESSION_REALM, token_ids=chunk, revoked=revoked)
            )
    except Unavailable as exc:
        log.error("sessions of changed tokens %s could not be ended: %s", token_ids, exc.message)
        raise WialonError(
            UNKNOWN_ERROR, "the token is changed, but the sessions opened with it could not be ended yet"
        ) from exc


async def update(ctx: Context, params: JsonValue) -> JsonObject:
    """{callMode: create|update|delete, userId?, h, app, at, dur, fl, p, items?, deleteAll?}.
    create and update answer the token; delete answers the deleted token, or {} with deleteAll.
    Every session opened with an updated or deleted token ends (its holders log in again)."""
    session = await ctx.session()
    args = p.as_object(params)
    _may_manage(session)
    mode = args.get("callMode")
    if mode == "create":
        acting = _acting(ctx, session, args)
        created = await ctx.registry.create_wialon_token(CreateToken(**acting, **_definition(session, args)))
        return wialon_token(created)
    if mode == "update":
        secret = p.token(args, "h")
        acting = _acting(ctx, session, args)
        changing = UpdateToken(**acting, **_definition(session, args), secret=secret)
        updated = await ctx.registry.update_wialon_token(changing)
        await _end_sessions(ctx, [updated.id], revoked=False)
        return wialon_token(updated)
    if mode == "delete":
        every = p.switch(args, "deleteAll")
        secret_or_none = None if every else p.token(args, "h")
        acting = _acting(ctx, session, args)
        deleting = DeleteTokens(**acting, secret=secret_or_none, all=every)
        deleted = await ctx.registry.delete_wialon_tokens(deleting)
        if deleted:
            await _end_sessions(ctx, [token.id for token in deleted], revoked=True)
        return {} if every else wialon_token(deleted[0])
    raise invalid('"callMode" must be create, update or delete')


async def list_tokens(ctx: Context, params: JsonValue) -> list[JsonValue]:
    """{userId?} → the tokens of the caller or of a user below it, with `ll` (last login, 0: never)."""
    session = await ctx.session()
    args = p.as_object(params)
    _may_manage(session)
    listed = await ctx.registry.list_wialon_tokens(ListTokens(**_acting(ctx, session, args)))
    return [wialon_token(token) | {"ll": token.last_used_at or 0} for token in listed]
