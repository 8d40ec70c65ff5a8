"""The Remote API envelope: `GET|POST /wialon/ajax.html?svc=...&params={json}&sid=...`.

`svc`, `params` (a JSON text) and `sid` come from the query string or a form-encoded body (the
body wins where both have one). A request is checked in this order: the service exists (2),
`params` is JSON (4), then the service itself: the session (1), its parameters (4), the rights
(7). Every reply is JSON with HTTP 200, `{"error": N}` (and a `"reason"` where it helps) on
failure; a bug of ours is `{"error": 6}`, never a 500 or a traceback.

Domain errors of the services behind the gateway become Wialon errors here (`call`) and in the
services, nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy, MultiMapping

from gateway.dialects.common import client_addr
from gateway.dialects.wialon import params as p
from gateway.dialects.wialon.errors import (
    ACCESS_DENIED,
    INVALID_INPUT,
    INVALID_SERVICE,
    INVALID_SESSION,
    TOO_MANY_REQUESTS,
    UNAVAILABLE,
    UNKNOWN_ERROR,
    WialonError,
    invalid,
)
from gateway.keys import backends_key
from shared.errors import (
    BadCredentials,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    Throttled,
    TokenHubError,
    Unavailable,
)

log = logging.getLogger(__name__)

# The issuer's realm for Wialon sessions and their failed-login throttle.
SESSION_REALM = "wialon"
# "If server haven't received any requests for 5 minutes the session will be killed."
SESSION_IDLE_S = 300
# The issuer refuses longer session ids; Wialon's own are 32 hex characters.
MAX_SID_LENGTH = 128
FIELDS = ("svc", "params", "sid")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# What aiohttp's request.post() gives.
FormData = MultiDictProxy[str | bytes | bytearray | FileField]


@dataclass(frozen=True)
class Session:
    """A live session: who it acts as, and what it may do (-1: all; else the flags of the token
    that opened it)."""

    id: str
    user: dict[str, Any]
    token_id: int | None
    flags: int

    @property
    def user_id(self) -> int:
        user_id: int = self.user["id"]
        return user_id


@dataclass
class Context:
    """One call: the HTTP request and the `sid` it names (a core/batch shares it with its calls)."""

    request: web.Request
    sid: str | None

    @property
    def client_addr(self) -> str:
        return client_addr(self.request)

    async def issuer(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request.app[backends_key].issuer.call("POST", path, body)

    async def registry(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request.app[backends_key].registry.call("POST", path, body)

    async def session(self) -> Session:
        """The session `sid` names, its idle timeout slid by this use; error 1 if there is none."""
        if not self.sid or len(self.sid) > MAX_SID_LENGTH:
            raise WialonError(INVALID_SESSION)
        try:
            reply = await self.issuer(
                "/v1/sessions/resolve", {"realm": SESSION_REALM, "session_id": self.sid}
            )
        except (NotFound, InvalidInput) as exc:
            raise WialonError(INVALID_SESSION) from exc
        flags = reply.get("flags")
        return Session(
            self.sid, reply["user"], reply.get("token_id"), p.UNLIMITED if flags is None else flags
        )


Service = Callable[[Context, Any], Awaitable[Any]]
SERVICES: dict[str, Service] = {}


def service(name: str) -> Callable[[Service], Service]:
    """Register a service under its `svc` name (matched exactly, as Wialon does)."""

    def register(run: Service) -> Service:
        SERVICES[name] = run
        return run

    return register


# --- the HTTP endpoints --------------------------------------------------------------------------


def reply(body: Any) -> web.Response:
    # Exactly "application/json", no charset: python-wialon decodes the body only for that type.
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def handle(request: web.Request) -> web.Response:
    try:
        fields = await read_fields(request)
        svc = fields.get("svc")
        if svc is None or svc not in SERVICES:
            raise WialonError(INVALID_SERVICE)
        result = await call(Context(request, fields.get("sid")), svc, p.decode(fields.get("params")))
    except WialonError as exc:
        result = exc.body()
    except Exception:
        # A bug. The client still gets Wialon's "unknown error"; the log gets the traceback, never
        # the request (its query string holds the sid, its params may hold a token).
        log.exception("unhandled error in the Wialon dialect")
        result = {"error": UNKNOWN_ERROR}
    return reply(result)


async def avl_evts(request: web.Request) -> web.Response:
    """`/avl_evts?sid=...`: Wialon's event poll, which clients send to keep a session alive. TokenHub
    has no items, hence no events: it answers the time and an empty list, and slides the session."""
    try:
        fields = await read_fields(request)
        await Context(request, fields.get("sid")).session()
        result: Any = {"tm": int(time.time()), "events": []}
    except WialonError as exc:
        result = exc.body()
    except Unavailable:
        result = {"error": UNKNOWN_ERROR, "reason": UNAVAILABLE}
    except Exception:
        log.exception("unhandled error in the Wialon event poll")
        result = {"error": UNKNOWN_ERROR}
    return reply(result)


async def read_fields(request: web.Request) -> dict[str, str]:
    """svc, params and sid from the query string and a form body; a name twice in one is refused."""
    if request.method not in ("GET", "HEAD", "POST"):
        raise invalid("use GET or POST")
    sources: list[MultiMapping[Any]] = [request.query]
    if request.method == "POST" and request.content_type in FORM_TYPES:
        sources.append(await _read_form(request))
    fields: dict[str, str] = {}
    for source in sources:  # the body, read last, wins
        for name in FIELDS:
            values = source.getall(name, [])
            if len(values) > 1:
                raise invalid(f'"{name}" is given more than once')
            if values:
                if not isinstance(values[0], str):
                    raise invalid(f'"{name}" must be text, not a file')
                fields[name] = values[0]
    return fields


async def _read_form(request: web.Request) -> FormData:
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge as exc:
        raise invalid("the request body is too large") from exc
    except Exception as exc:
        # Whatever the form parsers choke on (an unknown charset, bytes that are not UTF-8, a broken
        # multipart body) is the client's body, not our bug; their exceptions are not one family.
        raise invalid("the form body cannot be read") from exc


async def call(ctx: Context, svc: str, params: Any) -> Any:
    """Run one service; what it did not turn into a Wialon error itself is translated here."""
    run = SERVICES.get(svc)
    if run is None:
        raise WialonError(INVALID_SERVICE)
    try:
        return await run(ctx, params)
    except Unavailable as exc:
        log.warning("backend unavailable during %s: %s", svc, exc.message)
        raise WialonError(UNKNOWN_ERROR, UNAVAILABLE) from exc
    except Throttled as exc:
        retry_after = exc.details.get("retry_after")
        wait = retry_after if isinstance(retry_after, int) and retry_after > 0 else 1
        raise WialonError(TOO_MANY_REQUESTS, f"too many failed logins, try again in {wait} s") from exc
    except (InvalidInput, Conflict) as exc:
        # The dialect checks every parameter first, so this is a value a service refused.
        raise WialonError(INVALID_INPUT, exc.message) from exc
    except (Forbidden, NotFound, Expired, BadCredentials) as exc:
        raise WialonError(ACCESS_DENIED) from exc
    except TokenHubError as exc:
        log.error("unexpected %s during %s: %s", exc.code, svc, exc.message)
        raise WialonError(UNKNOWN_ERROR) from exc
