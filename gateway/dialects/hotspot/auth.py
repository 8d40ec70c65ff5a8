"""Who is calling: the operator whose API key `api_token` is, checked by the registry, or taken from
the verification cache when the same key was checked within the last second (its entry is dropped
at once when the operator is disabled or revoked: gateway/verification_cache.py)."""

from __future__ import annotations

from aiohttp import web

from gateway.dialects.common import saying
from gateway.dialects.hotspot.errors import AUTH_ERRORS, HotspotError
from gateway.keys import backends_key, verification_cache_key, verification_counter_key
from gateway.verification_cache import cache_key, user_tag
from shared.contracts.registry.accounts import User

# The dialect's realm in the verification cache.
REALM = "hotspot"
# Longer than any API key TokenHub issues (thk_ + 64 hex); the registry refuses longer ones too.
MAX_API_TOKEN_LENGTH = 256


async def authenticate(request: web.Request, api_token: str | None) -> User:
    with request.app[verification_counter_key].checking():
        return await _authenticate(request, api_token)


async def _authenticate(request: web.Request, api_token: str | None) -> User:
    if not api_token:
        raise HotspotError("unauthorized", '"api_token" is missing')
    if len(api_token) > MAX_API_TOKEN_LENGTH:
        raise HotspotError("unauthorized", "the api_token is not valid")
    cache = request.app[verification_cache_key]
    key = cache_key(REALM, api_token)
    cached = cache.get(key, User)
    if cached is not None:
        return cached
    with saying(AUTH_ERRORS):
        user = await request.app[backends_key].registry.authenticate_api_key(api_token)
    cache.put(key, (user_tag(user.id),), user, cache.ttl)
    return user
