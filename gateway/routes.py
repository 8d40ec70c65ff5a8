"""Every public route of the gateway, one line per dialect endpoint."""

from __future__ import annotations

from aiohttp import web

from gateway.dialects import zabbix


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api_jsonrpc.php", zabbix.handle)
