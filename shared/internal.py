"""The internal JSON API between services: a client for callers, a key check for callees.

Every internal request carries `X-TokenHub-Internal-Key`; issuer and registry refuse anything
without the right one (401). Bodies are orjson. A target that does not answer, or answers
something that is not our error format, becomes `Unavailable` for the caller, never a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

import aiohttp
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import ValidationError

from shared.balancer import Replica, Replicas, Resolver, resolve_with_dns
from shared.contracts.endpoint import Endpoint, Rep, Req
from shared.errors import TokenHubError, Unavailable, from_wire
from shared.logging import REQUEST_ID_HEADER, current_request_id
from shared.metrics import BACKEND_ERRORS
from shared.secrets import same_secret

INTERNAL_KEY_HEADER = "X-TokenHub-Internal-Key"
# Probes and scrapes come from the orchestrator, which does not hold the internal key.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Sent on every reply of a replica told to stop (shared/web.py): set it aside at once, before it
# stops accepting, so no call meets its closed door.
DRAINING_HEADER = "X-TokenHub-Draining"
# The error code of a request refused for its internal key: a deployment fault, not a domain error.
KEY_REFUSED = "internal_key_refused"

log = logging.getLogger(__name__)


def json_response(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """`body` is JSON-shaped: dicts, lists, strings, numbers, booleans, None."""
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def internal_key_middleware(key: str) -> Middleware:
    @web.middleware
    async def check_internal_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS and not same_secret(
            request.headers.get(INTERNAL_KEY_HEADER, ""), key
        ):
            refusal = {"code": KEY_REFUSED, "message": "missing or wrong internal key", "fields": {}}
            return json_response({"error": refusal}, status=401)
        return await handler(request)

    return check_internal_key


@web.middleware
async def domain_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where a service's domain errors become internal-API error replies."""
    try:
        return await handler(request)
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


class InternalClient:
    """The one transport for internal calls: a keep-alive session for the life of the process, and
    the replicas of the target service (`shared/balancer.py`), one picked per call.

    A call that got no usable answer from the replica it went to is tried once more, on another
    replica, when that cannot do harm: always when the connection was never made (nothing reached a
    replica), and after a timeout, a dropped connection or a 503 only for an endpoint the contract
    marks idempotent. Nothing is tried a third time. With no replica to try, the caller is told
    Unavailable at once."""

    def __init__(
        self,
        name: str,
        base_url: str,
        key: str,
        timeout: float,
        *,
        resolve_interval: float = 5.0,
        resolver: Resolver = resolve_with_dns,
    ) -> None:
        self.name = name
        self.replicas = Replicas.from_setting(name, base_url, resolve_interval, resolver)
        self._key = key
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
        )
        await self.replicas.start()

    async def close(self) -> None:
        await self.replicas.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, endpoint: Endpoint[Req, Rep], request: Req) -> Rep:
        """Make one internal call: its typed reply, or the domain error the callee answered with."""
        data = request.__pydantic_serializer__.to_json(request)
        raw, status = await self._exchange(endpoint.path, data, idempotent=endpoint.idempotent)
        if 200 <= status < 300:
            try:
                return endpoint.reply.model_validate_json(raw)
            except ValidationError as exc:
                # The two sides disagree about the contract: a bug or a half-done upgrade.
                BACKEND_ERRORS.labels(self.name).inc()
                raise TokenHubError(f"{self.name} answered {endpoint.path} off contract") from exc
        raise self._error(raw, status)

    def _error(self, raw: bytes, status: int) -> TokenHubError:
        try:
            reply = cast(object, orjson.loads(raw)) if raw else None
        except orjson.JSONDecodeError:
            reply = None
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict) and error.get("code") != KEY_REFUSED:
            return from_wire(reply)
        # Not our error format (a proxy's page?) or our own key refused: the target is unusable.
        BACKEND_ERRORS.labels(self.name).inc()
        return Unavailable(f"{self.name} answered HTTP {status}")

    async def _exchange(self, path: str, data: bytes, *, idempotent: bool) -> tuple[bytes, int]:
        """POST to one replica, and to a second one when the first gave no usable answer and trying
        again is safe; the last answer's body and status."""
        tried: Replica | None = None
        while True:
            replica = self.replicas.pick(avoid=tried)
            if replica is None:
                BACKEND_ERRORS.labels(self.name).inc()
                raise Unavailable(f"{self.name}: no replica to call (all set aside or none resolved)")
            retry_allowed = tried is None
            tried = replica
            call = self.replicas.sent(replica)
            try:
                raw, status, draining = await self._post(replica.url + path, data)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # The connection was never made: the call reached no replica, whatever it was.
                self.replicas.failed(replica, slowly=isinstance(exc, TimeoutError), call=call)
                if retry_allowed:
                    continue
                BACKEND_ERRORS.labels(self.name).inc()
                raise Unavailable(f"{self.name} did not answer: {type(exc).__name__}") from exc
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                # It may have been served: only a call that changes nothing may go again.
                self.replicas.failed(replica, slowly=isinstance(exc, TimeoutError), call=call)
                if retry_allowed and idempotent:
                    continue
                BACKEND_ERRORS.labels(self.name).inc()
                raise Unavailable(f"{self.name} did not answer: {type(exc).__name__}") from exc
            except BaseException:
                # Cancelled: the call is no longer outstanding, and says nothing of the replica.
                self.replicas.abandoned(replica)
                raise
            # A 503 is the replica's own "try again" (its store did not answer): not a reason to set
            # it aside (one slow query would empty a single-replica set), but a read may go elsewhere.
            self.replicas.answered(replica, draining=draining)
            if status == 503 and retry_allowed and idempotent:
                continue
            return raw, status

    async def _post(self, url: str, data: bytes | None, method: str = "POST") -> tuple[bytes, int, bool]:
        """The reply's body, status, and whether the replica is draining."""
        assert self._session is not None, "InternalClient.start() was not awaited"
        headers = {INTERNAL_KEY_HEADER: self._key, REQUEST_ID_HEADER: current_request_id()}
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self._session.request(method, url, data=data, headers=headers) as response:
            return await response.read(), response.status, DRAINING_HEADER in response.headers

    async def ready(self) -> bool:
        """Whether some replica of the target says it is ready."""
        for replica in self.replicas.all:
            try:
                _, status, _ = await self._post(replica.url + "/readyz", None, "GET")
            except (TimeoutError, aiohttp.ClientError, OSError):
                continue
            if status == 200:
                return True
        return False
