"""The issuer's internal API (shared/contracts/issuer.py): one handler per endpoint, each a thin call
into the domain objects, which speak the contract's models."""

from __future__ import annotations

from aiohttp import web
from pydantic import JsonValue

from issuer.keys import accounts_key, logins_key, pairs_key, sessions_key, throttle_key
from shared.contracts import issuer as api
from shared.contracts.endpoint import Empty
from shared.contracts.server import Route, route

# --- sessions -------------------------------------------------------------------------------------


async def open_session(request: web.Request, body: api.OpenSession) -> api.SessionOpened:
    return await request.app[sessions_key].open(
        body.realm, body.idle, body.password, body.client_addr, username=body.username, email=body.email
    )


async def resolve_session(request: web.Request, body: api.SessionRef) -> api.SessionInfo:
    return await request.app[sessions_key].resolve_info(body.realm, body.session_id)


async def end_session(request: web.Request, body: api.SessionRef) -> api.Ended:
    return api.Ended(ended=await request.app[sessions_key].end(body.realm, body.session_id))


# --- sessions opened with a long-lived token (Wialon's token/login) --------------------------------


async def open_token_session(request: web.Request, body: api.OpenTokenSession) -> api.SessionOpened:
    return await request.app[sessions_key].open_with_token(
        body.realm, body.idle, body.user_id, body.token_id, body.flags, body.ends_at
    )


async def end_token_sessions(request: web.Request, body: api.TokenSessionsRef) -> api.EndedCount:
    sessions = request.app[sessions_key]
    ended = await sessions.end_token_sessions(body.realm, body.token_ids, revoked=body.revoked)
    return api.EndedCount(ended=ended)


# --- failure throttles ----------------------------------------------------------------------------


async def take_attempt(request: web.Request, body: api.Attempt) -> api.AttemptTaken:
    subjects: list[JsonValue] = [*sorted(body.subjects)]
    taken = await request.app[logins_key].hold(
        body.realm, body.subjects, blocked_event=body.blocked_event, details={"subjects": subjects}
    )
    return api.AttemptTaken(attempt=taken)


async def finish_attempt(request: web.Request, body: api.SettledAttempt) -> Empty:
    await request.app[throttle_key].finish(body.realm, body.subjects, body.attempt, body.outcome)
    return Empty()


# --- access/refresh pairs (ChatApp's tokens.make / tokens.refresh) ---------------------------------


async def make_pair(request: web.Request, body: api.MakePair) -> api.PairMade:
    return await request.app[pairs_key].make(body)


async def refresh_pair(request: web.Request, body: api.RefreshPair) -> api.Pair:
    return await request.app[pairs_key].refresh(body)


async def check_pair(request: web.Request, body: api.AccessTokenRef) -> api.Verified:
    return await request.app[pairs_key].check(body.access_token)


async def revoke_pair(request: web.Request, body: api.AccessTokenRef) -> Empty:
    await request.app[pairs_key].revoke(body.access_token)
    return Empty()


# --- accounts (the admin API) ----------------------------------------------------------------------


async def end_account(request: web.Request, body: api.EndAccount) -> Empty:
    await request.app[accounts_key].end(body.user_id, body.disabled)
    return Empty()


async def enable_account(request: web.Request, body: api.AccountRef) -> Empty:
    await request.app[accounts_key].enable(body.user_id)
    return Empty()


async def quota_usage(request: web.Request, body: api.QuotaUsageQuery) -> api.QuotaUsage:
    return await request.app[accounts_key].quota_usage(body.app_id, body.user_ids)


async def sweeper_last_pass(request: web.Request, body: api.Nothing) -> api.SweeperPass:
    return api.SweeperPass(at=await request.app[accounts_key].sweeper_last_pass())


ROUTES: tuple[Route, ...] = (
    route(api.OPEN_SESSION, open_session),
    route(api.RESOLVE_SESSION, resolve_session),
    route(api.END_SESSION, end_session),
    route(api.OPEN_TOKEN_SESSION, open_token_session),
    route(api.END_TOKEN_SESSIONS, end_token_sessions),
    route(api.TAKE_ATTEMPT, take_attempt),
    route(api.FINISH_ATTEMPT, finish_attempt),
    route(api.MAKE_PAIR, make_pair),
    route(api.REFRESH_PAIR, refresh_pair),
    route(api.CHECK_PAIR, check_pair),
    route(api.REVOKE_PAIR, revoke_pair),
    route(api.END_ACCOUNT, end_account),
    route(api.ENABLE_ACCOUNT, enable_account),
    route(api.QUOTA_USAGE, quota_usage),
    route(api.SWEEPER_PASS, sweeper_last_pass),
)
