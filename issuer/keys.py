"""Every key the issuer's application holds, typed."""

from __future__ import annotations

from aiohttp import web

from issuer.accounts import Accounts
from issuer.logins import Logins
from issuer.pairs import Pairs
from issuer.sessions import Sessions
from issuer.throttle import FailureThrottle
from shared.contracts.registry import RegistryClient
from shared.redis import AnyRedis
from shared.settings import Settings

# Annotated rather than given the class: the classes of Settings and Redis carry untyped parts.
settings_key: web.AppKey[Settings] = web.AppKey("settings")
redis_key: web.AppKey[AnyRedis] = web.AppKey("redis")
registry_key = web.AppKey("registry", RegistryClient)
sessions_key = web.AppKey("sessions", Sessions)
throttle_key = web.AppKey("throttle", FailureThrottle)
logins_key = web.AppKey("logins", Logins)
pairs_key = web.AppKey("pairs", Pairs)
accounts_key = web.AppKey("accounts", Accounts)
