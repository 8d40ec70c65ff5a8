"""Every key the gateway's application holds, typed."""

from __future__ import annotations

from aiohttp import web

from gateway.backends import Backends
from gateway.verification_cache import VerificationCache
from gateway.verification_stats import VerificationCounter
from shared.settings import Settings

# Annotated rather than given the class: the class of Settings carries untyped parts.
settings_key: web.AppKey[Settings] = web.AppKey("settings")
backends_key = web.AppKey("backends", Backends)
verification_cache_key = web.AppKey("verification_cache", VerificationCache)
# Counts every credential check the gateway answers (gateway/verification_stats.py).
verification_counter_key = web.AppKey("verification_counter", VerificationCounter)
# The console's sub-application (gateway/console/) holds the gateway's own application, whose
# backends the admin service it calls in-process uses.
console_gateway_key = web.AppKey("console_gateway", web.Application)
