"""The internal contract holds for the whole tree: every internal path is written once (in its
contract module), and each service serves exactly the endpoints its Api lists."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from issuer.app import create_app as create_issuer
from registry.app import create_app as create_registry
from shared.contracts.endpoint import Api
from shared.contracts.issuer import ISSUER_API
from shared.contracts.registry import REGISTRY_API
from shared.settings import Settings
from tests.conftest import ROOT

PRODUCT = ("gateway", "issuer", "registry", "shared", "sweeper", "tokenhub")
# The gateway's public ChatApp routes share the /v1/ prefix; they are not internal paths.
PUBLIC = {"/v1/tokens", "/v1/tokens/refresh", "/v1/tokens/check", "/v1/auth"}


def _string_literals() -> Counter[str]:
    found: Counter[str] = Counter()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found[node.value] += 1
    return found


def test_every_internal_path_is_written_once() -> None:
    literals = _string_literals()
    internal = [e.path for api in (ISSUER_API, REGISTRY_API) for e in api.endpoints]
    assert {path: literals[path] for path in internal} == dict.fromkeys(internal, 1)
    # And no other internal-looking path hides anywhere (a call built by hand).
    stray = {s for s in literals if s.startswith("/v1/") and s not in PUBLIC and s not in internal}
    assert stray == set()


def _served_paths(app: web.Application) -> set[str]:
    return {
        resource.canonical
        for resource in app.router.resources()
        if resource.canonical not in {"/healthz", "/readyz", "/metrics"}
    }


@pytest.mark.parametrize(
    ("api", "factory"),
    [(ISSUER_API, create_issuer), (REGISTRY_API, create_registry)],
    ids=["issuer", "registry"],
)
async def test_each_service_serves_exactly_its_api(
    api: Api, factory: Callable[[Settings], Awaitable[web.Application]]
) -> None:
    # Routes are added by the factory; nothing is connected until the app starts.
    app = await factory(Settings())
    assert _served_paths(app) == {e.path for e in api.endpoints}
    for resource in app.router.resources():
        if resource.canonical in _served_paths(app):
            assert {route.method for route in resource} == {"POST"}
