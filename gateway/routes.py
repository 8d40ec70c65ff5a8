"""Every public route of the gateway, one line per dialect endpoint."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.api import setup_admin_routes
from gateway.dialects import chatapp, hotspot, wialon, zabbix


def setup_routes(app: web.Application) -> None:
    # Every method: api_jsonrpc.php checks only the Content-Type (412 otherwise), never the method.
    app.router.add_route("*", "/api_jsonrpc.php", zabbix.handle)
    app.router.add_route("*", "/hotspot/api", hotspot.handle)
    app.router.add_route("*", "/wialon/ajax.html", wialon.handle)
    app.router.add_route("*", "/avl_evts", wialon.avl_evts)
    app.router.add_post("/v1/tokens", chatapp.tokens_make)
    app.router.add_post("/v1/tokens/refresh", chatapp.tokens_refresh)
    app.router.add_get("/v1/tokens/check", chatapp.tokens_check)
    app.router.add_delete("/v1/tokens", chatapp.tokens_revoke)
    app.router.add_get("/v1/auth", chatapp.forward_auth)
    setup_admin_routes(app)
    # Last, so that they see only the methods the routes above do not take.
    app.router.add_route("*", "/v1/tokens", chatapp.refuse_other_methods("POST", "DELETE"))
    app.router.add_route("*", "/v1/tokens/refresh", chatapp.refuse_other_methods("POST"))
    app.router.add_route("*", "/v1/tokens/check", chatapp.refuse_other_methods("GET"))
    app.router.add_route("*", "/v1/auth", chatapp.refuse_other_methods("GET"))
