"""The internal JSON API between services: a client for callers, a key check for callees.

Every internal request carries `X-TokenHub-Internal-Key`; issuer and registry refuse anything
without the right one (401). Bodies are orjson. A target that does not answer, or answers
something that is not our error format, becomes `Unavailable` for the caller, never a hang.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInput, TokenHubError, Unavailable, from_wire
from shared.logging import REQUEST_ID_HEADER, current_request_id
from shared.metrics import BACKEND_ERRORS
from shared.secrets import same_secret

INTERNAL_KEY_HEADER = "X-TokenHub-Internal-Key"
# Probes and scrapes come from the orchestrator, which does not hold the internal key.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The error code of a request refused for its internal key: a deployment fault, not a domain error.
KEY_REFUSED = "internal_key_refused"

log = logging.getLogger(__name__)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def internal_key_middleware(key: str) -> Any:
    @web.middleware
    async def check_internal_key(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS and not same_secret(
            request.headers.get(INTERNAL_KEY_HEADER, ""), key
        ):
            return json_response(
                {
                    "error": {
                        "code": KEY_REFUSED,
                        "message": "missing or wrong internal key",
                        "details": {},
                    }
                },
                status=401,
            )
        response: web.StreamResponse = await handler(request)
        return response

    return check_internal_key


@web.middleware
async def domain_error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The one place where a service's domain errors become internal-API error replies."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except TokenHubError as exc:
        if exc.status >= 500:
            log.warning("request failed: %s", exc.message, extra={"error_code": exc.code})
        return json_response(exc.to_wire(), status=exc.status)
    except web.HTTPException:
        raise
    except Exception:
        # A bug. The caller gets our error format (and its dialect an internal error), the log the
        # traceback; the request's body is never logged, it may hold secrets.
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_response(TokenHubError("internal error").to_wire(), status=500)


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("body is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    return body


M = TypeVar("M", bound=BaseModel)


async def read_model(request: web.Request, model: type[M]) -> M:
    """The request's JSON body, validated into `model`; a mismatch is the caller's InvalidInput."""
    try:
        return model.model_validate(await read_json(request))
    except ValidationError as exc:
        raise InvalidInput(
            "malformed request", errors=exc.errors(include_url=False, include_input=False)
        ) from exc


class InternalClient:
    """One keep-alive session to one target service for the life of the process."""

    def __init__(self, name: str, base_url: str, key: str, timeout: float) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; return the decoded JSON of a 2xx reply or raise the domain error."""
        assert self._session is not None, "InternalClient.start() was not awaited"
        headers = {INTERNAL_KEY_HEADER: self._key, REQUEST_ID_HEADER: current_request_id()}
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, self.base_url + path, data=data, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            BACKEND_ERRORS.labels(self.name).inc()
            raise Unavailable(f"{self.name} did not answer: {type(exc).__name__}") from exc
        try:
            reply = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            reply = None
        if 200 <= status < 300:
            return reply
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict) and error.get("code") != KEY_REFUSED:
            raise from_wire(reply)
        # Not our error format (a proxy's page?) or our own key refused: the target is unusable.
        BACKEND_ERRORS.labels(self.name).inc()
        raise Unavailable(f"{self.name} answered HTTP {status}")

    async def ready(self) -> bool:
        try:
            await self.call("GET", "/readyz")
        except TokenHubError:
            return False
        return True
