"""The callee's side of the contract (shared/contracts/server.py) and the `Api` table: a service serves
exactly the endpoints its Api lists, decodes each request into the endpoint's model (a body that does
not fit is invalid_input, described without its content), and answers with the endpoint's status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import Field

from shared.contracts.endpoint import Api, Empty, Endpoint, Message, Reply
from shared.contracts.server import add_api_routes, route
from shared.errors import InvalidInput
from shared.internal import domain_error_middleware


class Login(Message):
    secret: Annotated[str, Field(min_length=8)]
    count: int = 0


class Welcome(Reply):
    count: int


LOGIN = Endpoint("/v1/test/login", Login, Welcome, status=201)
PING = Endpoint("/v1/test/ping", Empty, Empty, idempotent=True)
API = Api("unit", (LOGIN, PING))


async def login(request: web.Request, body: Login) -> Welcome:
    return Welcome(count=body.count + 1)


async def ping(request: web.Request, body: Empty) -> Empty:
    return Empty()


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[domain_error_middleware])
    add_api_routes(app, API, [route(LOGIN, login), route(PING, ping)])
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


# --- the table and the routes agree ------------------------------------------------------------------


def test_an_api_lists_each_path_once() -> None:
    again = Endpoint("/v1/test/login", Empty, Empty)
    with pytest.raises(ValueError, match="listed twice"):
        Api("unit", (LOGIN, PING, again))


def test_an_endpoint_without_a_handler_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no handler for /v1/test/ping"):
        add_api_routes(web.Application(), API, [route(LOGIN, login)])


def test_a_handler_outside_the_api_is_refused() -> None:
    extra = Endpoint("/v1/test/extra", Empty, Empty)
    with pytest.raises(RuntimeError, match="/v1/test/extra served but not in its Api"):
        add_api_routes(web.Application(), API, [route(LOGIN, login), route(PING, ping), route(extra, ping)])


def test_exactly_the_listed_endpoints_are_served_as_posts() -> None:
    app = web.Application()
    add_api_routes(app, API, [route(PING, ping), route(LOGIN, login)])
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    assert served == {("POST", LOGIN.path), ("POST", PING.path)}


# --- requests and replies ----------------------------------------------------------------------------


async def test_a_request_is_decoded_and_answered_with_the_endpoints_status(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post(LOGIN.path, json={"secret": "long enough", "count": 2})
    assert response.status == 201
    assert response.content_type == "application/json"
    assert await response.json() == {"count": 3}
    response = await client.post(PING.path, json={})
    assert response.status == 200
    assert await response.json() == {}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"secret": "SECRET-CANARY-1", "count": "SECRET-CANARY-2"}', "count: "),
        (
            b'{"secret": "SECRET-CANARY-1", "admin": "SECRET-CANARY-2"}',
            "admin: Extra inputs are not permitted",
        ),
        (b'{"secret": "SECRET"}', "secret: String should have at least 8 characters"),
        (b'{"count": 1}', "secret: Field required"),
        (b'["SECRET-CANARY-1"]', "Input should be an object"),
        (b'{"secret": "SECRET-CANARY-1",', "Invalid JSON"),
        (b"", "Invalid JSON"),
    ],
)
async def test_a_malformed_body_is_invalid_input_that_never_echoes_it(
    client: TestClient[web.Request, web.Application], raw: bytes, problem: str
) -> None:
    response = await client.post(LOGIN.path, data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    text = await response.text()
    body = await response.json()
    assert body["error"]["code"] == InvalidInput.code
    assert body["error"]["kind"] == InvalidInput.known_as()
    problems = body["error"]["fields"]["problems"]
    assert any(problem in line for line in problems), problems
    # What the caller sent may be a secret: the refusal names fields and rules, never values.
    assert "SECRET" not in text


async def test_only_post_is_served(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get(PING.path)
    assert response.status == 405
