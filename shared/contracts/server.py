"""The callee's side of the contract: a handler is registered under its `Endpoint`, which decodes
the request into the endpoint's model and encodes the handler's reply. A service registers exactly
the endpoints its `Api` lists (checked when the app is built), so the table and the routes agree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from pydantic import ValidationError

from shared.contracts.endpoint import Api, Endpoint, Rep, Req
from shared.errors import InvalidInput

AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    path: str
    handle: AiohttpHandler


def route(endpoint: Endpoint[Req, Rep], handler: Callable[[web.Request, Req], Awaitable[Rep]]) -> Route:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = endpoint.request.model_validate_json(await request.read())
        except ValidationError as exc:
            raise InvalidInput.from_validation(exc) from exc
        reply = await handler(request, body)
        return web.Response(
            body=reply.__pydantic_serializer__.to_json(reply),
            status=endpoint.status,
            content_type="application/json",
        )

    return Route(endpoint.path, handle)


def add_api_routes(app: web.Application, api: Api, routes: Iterable[Route]) -> None:
    """Serve `api`: every endpoint it lists has one route here, and nothing else is served."""
    by_path = {r.path: r for r in routes}
    listed = {endpoint.path for endpoint in api.endpoints}
    if missing := sorted(listed - by_path.keys()):
        raise RuntimeError(f"{api.service}: no handler for {', '.join(missing)}")
    if unlisted := sorted(by_path.keys() - listed):
        raise RuntimeError(f"{api.service}: {', '.join(unlisted)} served but not in its Api")
    for r in by_path.values():
        app.router.add_post(r.path, r.handle)
