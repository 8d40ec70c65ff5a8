"""The registry's internal API: one routes module per area of its contract
(shared/contracts/registry/), served together. It speaks TokenHub's own vocabulary, never a
dialect's."""

from __future__ import annotations

from aiohttp import web

from registry import accounts_routes, admin_routes, voucher_routes, wialon_routes, zabbix_routes
from shared.contracts.registry import REGISTRY_API
from shared.contracts.server import add_api_routes


def setup_routes(app: web.Application) -> None:
    add_api_routes(
        app,
        REGISTRY_API,
        [
            *accounts_routes.ROUTES,
            *zabbix_routes.ROUTES,
            *wialon_routes.ROUTES,
            *voucher_routes.ROUTES,
            *admin_routes.ROUTES,
        ],
    )
