"""The issuer's side of its contract (shared/contracts/issuer.py): its app serves exactly ISSUER_API,
an app missing a handler refuses to be built, what stays internal never travels, and the registry
endpoints the issuer calls answer in their contract's models."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from aiohttp import web

from issuer.app import create_app as create_issuer
from issuer.routes import ROUTES
from shared.contracts.issuer import ISSUER_API, REFRESH_PAIR, MakePair
from shared.contracts.server import Route, add_api_routes
from shared.errors import NoSuchUser, NotFound
from shared.internal import INTERNAL_KEY_HEADER
from tests.inprocess.chatapp_world import add_account, add_app
from tests.inprocess.conftest import Trio


def served(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every internal route; the probes every service has are not the contract."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/v1/")
    }


async def test_the_issuer_serves_exactly_its_api(trio: Trio) -> None:
    app = await create_issuer(trio.settings)
    assert served(app) == {("POST", endpoint.path) for endpoint in ISSUER_API.endpoints}


def test_an_endpoint_without_a_handler_is_refused() -> None:
    missing = ROUTES[-1]
    with pytest.raises(RuntimeError, match=f"issuer: no handler for {missing.path}"):
        add_api_routes(web.Application(), ISSUER_API, ROUTES[:-1])


def test_a_route_outside_the_api_is_refused() -> None:
    extra = Route("/v1/pairs/extra", ROUTES[0].handle)
    with pytest.raises(RuntimeError, match="/v1/pairs/extra served but not in its Api"):
        add_api_routes(web.Application(), ISSUER_API, (*ROUTES, extra))


async def test_a_pair_travels_without_the_issuers_own_fields(trio: Trio) -> None:
    """The family's account epoch stays in the issuer: the wire carries the contract's fields only."""
    who, app_id = await add_account(trio), await add_app(trio)
    made = await trio.issuer.make_pair(MakePair(email=who.email, password=who.password, app_id=app_id))
    assert (made.user_id, made.app_id, made.quota.limit, made.quota.remaining) == (
        who.user_id,
        app_id,
        1000,
        999,
    )
    transport = trio.issuer.transport
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            transport.replicas.all[0].url + REFRESH_PAIR.path,
            data=orjson.dumps({"refresh_token": made.refresh_token}),
            headers={INTERNAL_KEY_HEADER: trio.settings.internal_key},
        ) as r,
    ):
        assert r.status == 200
        wire = orjson.loads(await r.read())
    assert set(wire) == {
        "user_id",
        "app_id",
        "access_token",
        "access_expires_at",
        "refresh_token",
        "refresh_expires_at",
    }
    verified = await trio.issuer.check_pair(wire["access_token"])
    assert (verified.user_id, verified.app_id, verified.access_expires_at) == (
        who.user_id,
        app_id,
        wire["access_expires_at"],
    )
    await trio.issuer.revoke_pair(wire["access_token"])
    with pytest.raises(NotFound):
        await trio.issuer.check_pair(wire["access_token"])


async def test_the_registry_answers_the_issuers_lookups_in_the_contracts_models(trio: Trio) -> None:
    who, app_id = await add_account(trio), await add_app(trio, daily_quota=7, access_ttl=60, refresh_ttl=120)
    user = await trio.registry.get_user(who.user_id)
    assert (user.id, user.email, user.role, user.status) == (who.user_id, who.email, "user", "active")
    app = await trio.registry.get_app(app_id)
    assert (app.app_id, app.daily_quota, app.access_ttl, app.refresh_ttl) == (app_id, 7, 60, 120)
    with pytest.raises(NoSuchUser) as missing:
        await trio.registry.get_user(2**62)
    assert missing.value.user_id == 2**62
    for odd in (f"no-such-app-{app_id}", ".", "..", "../../v1/users/1", "a/b", "{x}"):
        with pytest.raises(NotFound):
            await trio.registry.get_app(odd)
