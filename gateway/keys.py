"""Every key the gateway's application holds, typed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.backends import Backends
from shared.settings import Settings

if TYPE_CHECKING:
    from gateway.verification_cache import VerificationCache

settings_key = web.AppKey("settings", Settings)
backends_key = web.AppKey("backends", Backends)
verification_cache_key: web.AppKey[VerificationCache] = web.AppKey("verification_cache")
