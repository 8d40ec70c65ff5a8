"""The Remote API envelope: `GET|POST /wialon/ajax.html?svc=...&params={json}&sid=...`.

`svc`, `params` (a JSON text) and `sid` come from the query string or a form-encoded body (the
body wins where both have one). A request is checked in this order: the service exists (2),
`params` is JSON (4), then the service itself: the session (1), its parameters (4), the rights
(7). Every reply is JSON with HTTP 200, `{"error": N}` (and a `"reason"` where it helps) on
failure; a bug of ours is `{"error": 6}`, never a 500 or a traceback.

Domain errors of the services behind the gateway become Wialon errors here (`ERRORS`) and, where
a service means something more particular by one, in that service (`saying`), nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiMapping
from pydantic import JsonValue, ValidationError

from gateway.dialects.common import (
    BadField,
    ErrorTable,
    FormData,
    JsonObject,
    UnreadableBody,
    client_addr,
    json_reply,
    read_form,
    saying,
    text_fields,
    translate,
)
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
from gateway.keys import backends_key, verification_counter_key
from shared import errors as domain
from shared.contracts.issuer import IssuerClient
from shared.contracts.registry import RegistryClient
from shared.contracts.registry.accounts import User
from shared.errors import TokenHubError

log = logging.getLogger(__name__)

# The issuer's realm for Wialon sessions and their failed-login throttle.
SESSION_REALM = "wialon"
# "If server haven't received any requests for 5 minutes the session will be killed."
SESSION_IDLE_S = 300
# The issuer refuses longer session ids; Wialon's own are 32 hex characters.
MAX_SID_LENGTH = 128
FIELDS = ("svc", "params", "sid")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


# --- domain errors in Wialon's numbers ------------------------------------------------------------


def _throttled(exc: TokenHubError) -> WialonError:
    wait = exc.retry_after if isinstance(exc, domain.Throttled) and exc.retry_after > 0 else 1
    return WialonError(TOO_MANY_REQUESTS, f"too many failed logins, try again in {wait} s")


def _refused_value(exc: TokenHubError) -> WialonError:
    # The dialect checks every parameter first, so this is a value a service refused.
    return WialonError(INVALID_INPUT, exc.message)


def _denied(exc: TokenHubError) -> WialonError:
    return WialonError(ACCESS_DENIED)


# What a service's domain error is in Wialon's numbers, unless the service says it otherwise; any
# other is a 6 (and a line in the log).
ERRORS: ErrorTable[WialonError] = {
    domain.Unavailable: lambda exc: WialonError(UNKNOWN_ERROR, UNAVAILABLE),
    domain.Throttled: _throttled,
    domain.InvalidInput: _refused_value,
    domain.Conflict: _refused_value,
    domain.Forbidden: _denied,
    domain.NotFound: _denied,
    domain.Expired: _denied,
    domain.BadCredentials: _denied,
}
# A session the issuer does not know (or an id it refuses to look up) is no session.
_NO_SESSION: ErrorTable[WialonError] = {
    domain.NotFound: lambda exc: WialonError(INVALID_SESSION),
    domain.InvalidInput: lambda exc: WialonError(INVALID_SESSION),
}


# --- one call --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A live session: who it acts as, and what it may do (-1: all; else the flags of the token
    that opened it)."""

    id: str
    user: User
    token_id: int | None
    flags: int


@dataclass(frozen=True)
class Context:
    """One call: the HTTP request, the `sid` it names (a core/batch shares it with its calls), and
    the services it may run (a core/batch runs others)."""

    request: web.Request
    sid: str | None
    services: Services

    @property
    def client_addr(self) -> str:
        return client_addr(self.request)

    @property
    def issuer(self) -> IssuerClient:
        return self.request.app[backends_key].issuer

    @property
    def registry(self) -> RegistryClient:
        return self.request.app[backends_key].registry

    async def session(self) -> Session:
        """The session `sid` names, its idle timeout slid by this use; error 1 if there is none."""
        with self.request.app[verification_counter_key].checking():  # one verification, counted
            if not self.sid or len(self.sid) > MAX_SID_LENGTH:
                raise WialonError(INVALID_SESSION)
            with saying(_NO_SESSION):
                info = await self.issuer.resolve_session(SESSION_REALM, self.sid)
        return Session(self.sid, info.user, info.token_id, p.UNLIMITED if info.flags is None else info.flags)

    async def call(self, svc: str, params: JsonValue) -> JsonValue:
        """Run one service; what it did not turn into a Wialon error itself is translated here."""
        run = self.services.get(svc)
        if run is None:
            raise WialonError(INVALID_SERVICE)
        try:
            return await run(self, params)
        except ValidationError as exc:
            # A request the contract refuses that the dialect's checks let through (their gap, so
            # logged): answered as the service would have, had it been sent.
            refused = domain.InvalidInput.from_validation(exc)
            log.warning("%s built a request off contract: %s", svc, "; ".join(refused.problems))
            raise WialonError(INVALID_INPUT, refused.message) from exc
        except TokenHubError as exc:
            if isinstance(exc, domain.Unavailable):
                log.warning("backend unavailable during %s: %s", svc, exc.message)
            said = translate(exc, ERRORS)
            if said is None:
                log.error("unexpected %s during %s: %s", exc.code, svc, exc.message)
                said = WialonError(UNKNOWN_ERROR)
            raise said from exc


# A service: its `params` (decoded JSON) → its answer. Registered by its `svc` name (matched
# exactly, as Wialon does) in the package's SERVICES.
Service = Callable[[Context, JsonValue], Awaitable[JsonValue]]
Services = Mapping[str, Service]


# --- the HTTP endpoints --------------------------------------------------------------------------


def reply(body: JsonValue) -> web.Response:
    # Exactly "application/json", no charset: python-wialon decodes the body only for that type.
    return json_reply(body)


@dataclass(frozen=True)
class Envelope:
    """The dialect's two HTTP endpoints, serving `services`."""

    services: Services

    async def handle(self, request: web.Request) -> web.Response:
        result: JsonValue
        try:
            fields = await read_fields(request)
            svc = fields.get("svc")
            if svc is None or svc not in self.services:
                raise WialonError(INVALID_SERVICE)
            ctx = Context(request, fields.get("sid"), self.services)
            result = await ctx.call(svc, p.decode(fields.get("params")))
        except WialonError as exc:
            result = exc.body()
        except Exception:
            # A bug. The client still gets Wialon's "unknown error"; the log gets the traceback,
            # never the request (its query string holds the sid, its params may hold a token).
            log.exception("unhandled error in the Wialon dialect")
            result = {"error": UNKNOWN_ERROR}
        return reply(result)

    async def avl_evts(self, request: web.Request) -> web.Response:
        """`/avl_evts?sid=...`: Wialon's event poll, which clients send to keep a session alive.
        TokenHub has no items, hence no events: it answers the time and an empty list, and slides
        the session."""
        result: JsonObject
        try:
            fields = await read_fields(request)
            await Context(request, fields.get("sid"), self.services).session()
            result = {"tm": int(time.time()), "events": []}
        except WialonError as exc:
            result = exc.body()
        except domain.Unavailable:
            result = {"error": UNKNOWN_ERROR, "reason": UNAVAILABLE}
        except Exception:
            log.exception("unhandled error in the Wialon event poll")
            result = {"error": UNKNOWN_ERROR}
        return reply(result)


async def read_fields(request: web.Request) -> dict[str, str]:
    """svc, params and sid from the query string and a form body; a name twice in one is refused."""
    if request.method not in ("GET", "HEAD", "POST"):
        raise invalid("use GET or POST")
    sources: list[MultiMapping[str | bytes | bytearray | FileField]] = [request.query]
    if request.method == "POST" and request.content_type in FORM_TYPES:
        sources.append(await _read_form(request))
    fields: dict[str, str] = {}
    try:
        for source in sources:  # the body, read last, wins
            fields.update(text_fields(source, FIELDS))
    except BadField as exc:
        raise invalid(str(exc)) from exc
    return fields


async def _read_form(request: web.Request) -> FormData:
    try:
        return await read_form(request)
    except UnreadableBody as exc:
        if exc.problem == "too_large":
            raise invalid("the request body is too large") from exc
        raise invalid("the form body cannot be read") from exc
