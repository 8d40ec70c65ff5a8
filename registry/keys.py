"""Every key the registry's application holds, typed."""

from __future__ import annotations

from aiohttp import web

from registry.store import Store
from shared.settings import Settings

settings_key = web.AppKey("settings", Settings)
store_key = web.AppKey("store", Store)
