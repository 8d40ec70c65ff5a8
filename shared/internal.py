"""The internal JSON API between services: a client for callers, a key check for callees.

Every internal request carries `X-TokenHub-Internal-Key`; issuer and registry refuse anything
without the right one (401). Bodies are orjson. A target that does not answer, or answers
something that is not our error format, becomes `Unavailable` for the caller, never a hang.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar, cast

import aiohttp
import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from shared.contracts.endpoint import Endpoint, Rep, Req
from shared.errors import InvalidInput, TokenHubError, Unavailable, from_wire
from shared.logging import REQUEST_ID_HEADER, current_request_id
from shared.metrics import BACKEND_ERRORS
from shared.secrets import same_secret

M = TypeVar("M", bound=BaseModel)

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
                        "fields": {},
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


async def read_model(request: web.Request, model: type[M]) -> M:
    """TRANSITIONAL (issue 14): the request's JSON body validated into `model`."""
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc) from exc


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

    async def send(self, endpoint: Endpoint[Req, Rep], request: Req) -> Rep:
        """Make one internal call: its typed reply, or the domain error the callee answered with."""
        raw, status = await self._post(endpoint.path, request.__pydantic_serializer__.to_json(request))
        if 200 <= status < 300:
            try:
                return endpoint.reply.model_validate_json(raw)
            except ValidationError as exc:
                # The two sides disagree about the contract: a bug or a half-done upgrade.
                BACKEND_ERRORS.labels(self.name).inc()
                raise TokenHubError(f"{self.name} answered {endpoint.path} off contract") from exc
        try:
            reply = cast(object, orjson.loads(raw)) if raw else None
        except orjson.JSONDecodeError:
            reply = None
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict) and error.get("code") != KEY_REFUSED:
            raise from_wire(reply)
        # Not our error format (a proxy's page?) or our own key refused: the target is unusable.
        BACKEND_ERRORS.labels(self.name).inc()
        raise Unavailable(f"{self.name} answered HTTP {status}")

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """TRANSITIONAL (issue 14): an untyped call, for code not yet on `send`."""
        raw, status = await self._post(path, None if body is None else orjson.dumps(body), method)
        try:
            reply = cast(object, orjson.loads(raw)) if raw else None
        except orjson.JSONDecodeError:
            reply = None
        if 200 <= status < 300:
            return reply
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict) and error.get("code") != KEY_REFUSED:
            raise from_wire(reply)
        BACKEND_ERRORS.labels(self.name).inc()
        raise Unavailable(f"{self.name} answered HTTP {status}")

    async def _post(self, path: str, data: bytes | None, method: str = "") -> tuple[bytes, int]:
        assert self._session is not None, "InternalClient.start() was not awaited"
        headers = {INTERNAL_KEY_HEADER: self._key, REQUEST_ID_HEADER: current_request_id()}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method or ("GET" if data is None else "POST"),
                self.base_url + path,
                data=data,
                headers=headers,
            ) as response:
                return await response.read(), response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            BACKEND_ERRORS.labels(self.name).inc()
            raise Unavailable(f"{self.name} did not answer: {type(exc).__name__}") from exc

    async def ready(self) -> bool:
        try:
            _, status = await self._post("/readyz", None)
        except Unavailable:
            return False
        return status == 200
