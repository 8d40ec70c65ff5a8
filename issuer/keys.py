"""Every key the issuer's application holds, typed."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from issuer.logins import Logins
from issuer.pairs import Pairs
from issuer.sessions import Sessions
from issuer.throttle import FailureThrottle
from shared.internal import InternalClient
from shared.settings import Settings

settings_key = web.AppKey("settings", Settings)
redis_key = web.AppKey("redis", Redis)
registry_key = web.AppKey("registry", InternalClient)
sessions_key = web.AppKey("sessions", Sessions)
throttle_key = web.AppKey("throttle", FailureThrottle)
logins_key = web.AppKey("logins", Logins)
pairs_key = web.AppKey("pairs", Pairs)
