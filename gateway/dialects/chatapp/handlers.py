"""The ChatApp methods, one function each, reading like the API reference (docs/chatapp.md). The
issuer holds the pairs; these only translate its words (access_token...) into ChatApp's."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.dialects.chatapp.envelope import (
    MAKE_ERRORS,
    TOKEN_ERRORS,
    endpoint,
    rate_limit_headers,
    success,
)
from gateway.dialects.chatapp.params import access_token, make_params, plausible, read_body, refresh_token
from gateway.dialects.common import JsonObject, client_addr
from gateway.keys import backends_key, verification_cache_key, verification_counter_key
from gateway.verification_cache import cache_key, family_tag, user_tag
from shared.contracts.issuer import IssuerClient, MakePair, Pair, RefreshPair, Verified

# The headers a reverse proxy's forward-auth (Traefik forwardAuth, nginx auth_request) passes on.
USER_ID_HEADER = "X-TokenHub-User-Id"
APP_ID_HEADER = "X-TokenHub-App-Id"
# The verification cache's realm for this dialect's access tokens.
CACHE_REALM = "chatapp"


def _issuer(request: web.Request) -> IssuerClient:
    return request.app[backends_key].issuer


def pair_data(pair: Pair) -> JsonObject:
    """The issuer's pair in ChatApp's words; times are unix seconds, as ChatApp's own are."""
    return {
        "cabinetUserId": pair.user_id,
        "accessToken": pair.access_token,
        "accessTokenEndTime": pair.access_expires_at,
        "refreshToken": pair.refresh_token,
        "refreshTokenEndTime": pair.refresh_expires_at,
    }


@endpoint(MAKE_ERRORS)
async def tokens_make(request: web.Request) -> web.StreamResponse:
    """tokens.make: `POST /v1/tokens` {email, password, appId} → a new pair (counts against the
    app's daily quota for this account)."""
    email, password, app_id = make_params(await read_body(request))
    asked = MakePair(email=email, password=password, app_id=app_id, client_addr=client_addr(request))
    made = await _issuer(request).make_pair(asked)
    quota = made.quota
    return success(pair_data(made), rate_limit_headers(quota.limit, quota.remaining, quota.reset_at))


@endpoint(TOKEN_ERRORS)
async def tokens_refresh(request: web.Request) -> web.StreamResponse:
    """tokens.refresh: `POST /v1/tokens/refresh` with `Refresh: <refreshToken>` or {refreshToken}.
    The presented refresh token dies; presenting it again revokes its whole family."""
    token = plausible(await refresh_token(request), "rt")
    pair = await _issuer(request).refresh_pair(
        RefreshPair(refresh_token=token, client_addr=client_addr(request))
    )
    return success(pair_data(pair))


async def _verify(request: web.Request) -> Verified:
    """The issuer's verdict on the request's `Authorization` access token, or ApiInvalidTokenError.
    A verdict the gateway got within the last second is reused (gateway/verification_cache.py).
    Counted either way (gateway/verification_stats.py)."""
    with request.app[verification_counter_key].checking():
        return await _verdict(request)


async def _verdict(request: web.Request) -> Verified:
    token = access_token(request)
    cache = request.app[verification_cache_key]
    key = cache_key(CACHE_REALM, token)
    cached = cache.get(key, Verified)
    if cached is not None and cached.access_expires_at > time.time():
        return cached
    verified = await _issuer(request).check_pair(token)
    tags = (family_tag(verified.family), user_tag(verified.user_id))
    cache.put(key, tags, verified, verified.access_expires_at - time.time())
    return verified


@endpoint(TOKEN_ERRORS)
async def tokens_check(request: web.Request) -> web.StreamResponse:
    """`GET /v1/tokens/check` with `Authorization: <accessToken>`: whose token it is, until when."""
    verified = await _verify(request)
    return success(
        {
            "cabinetUserId": verified.user_id,
            "appId": verified.app_id,
            "accessTokenEndTime": verified.access_expires_at,
        }
    )


@endpoint(TOKEN_ERRORS)
async def tokens_revoke(request: web.Request) -> web.StreamResponse:
    """`DELETE /v1/tokens` with `Authorization: <accessToken>`: log out, ending every access and
    refresh token descended from the same tokens.make."""
    await _issuer(request).revoke_pair(access_token(request))
    return success({})


@endpoint(TOKEN_ERRORS)
async def forward_auth(request: web.Request) -> web.StreamResponse:
    """`GET /v1/auth` for a reverse proxy: 204 with the bearer's user and app ids as headers for the
    protected service, or 401 (with the ChatApp error body the proxy passes to the client)."""
    verified = await _verify(request)
    return web.Response(
        status=204, headers={USER_ID_HEADER: str(verified.user_id), APP_ID_HEADER: verified.app_id}
    )
