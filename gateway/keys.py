"""Every key the gateway's application holds, typed."""

from __future__ import annotations

from aiohttp import web

from gateway.backends import Backends
from shared.settings import Settings

settings_key = web.AppKey("settings", Settings)
backends_key = web.AppKey("backends", Backends)
