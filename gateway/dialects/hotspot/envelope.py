"""The envelope: a JSON body, or the same three fields form-encoded with `parameters` as a JSON
string; authentication by the operator's `api_token`; then the method. Every reply is one of

    {"status": "success", "data": {"0": {...}, "1": {...}}}
    {"status": "error", "error": {"code": "...", "message": "..."}}

with a matching HTTP status, never 500. Checked in the order docs/hotspot.md gives: the body and
envelope, the api_token, the method, its parameters, then the call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from pydantic import JsonValue, ValidationError

from gateway.dialects.common import (
    BadField,
    FormData,
    JsonObject,
    UnreadableBody,
    client_addr,
    decode_json,
    json_object,
    json_reply,
    read_form,
    read_raw,
    text_fields,
    translate,
)
from gateway.dialects.hotspot.auth import authenticate
from gateway.dialects.hotspot.errors import CALL_ERRORS, STATUS, HotspotError, internal_error, invalid
from gateway.keys import backends_key
from shared.contracts.registry import RegistryClient
from shared.contracts.registry.accounts import User
from shared.errors import InvalidInput, TokenHubError

log = logging.getLogger(__name__)

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
FIELDS = ("api_token", "method", "parameters")

_UNREADABLE = {
    "too_large": ("payload_too_large", "the request body is too large"),
    "not_json": ("invalid_request", "the body is not JSON"),
    "not_object": ("invalid_request", "the body must be a JSON object"),
    "bad_form": ("invalid_request", "the form body cannot be read"),
}


@dataclass(frozen=True)
class Context:
    """One call: who is calling, from where, and the registry behind the gateway."""

    request: web.Request
    user: User
    client_addr: str

    @property
    def actor_id(self) -> int:
        return self.user.id

    @property
    def registry(self) -> RegistryClient:
        return self.request.app[backends_key].registry


# A method: its parameters in, the items of the reply's `data` out.
Method = Callable[[Context, JsonObject], Awaitable[list[JsonObject]]]


@dataclass(frozen=True)
class Envelope:
    api_token: str | None
    method: str
    parameters: JsonObject


def positional(items: Sequence[JsonObject]) -> dict[str, JsonObject]:
    """The source document's `data`: an object keyed by position ("0", "1", ...), not an array."""
    return {str(i): item for i, item in enumerate(items)}


def error_reply(exc: HotspotError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.code == "method_not_allowed":
        headers = {"Allow": "POST"}
    return json_reply(
        {"status": "error", "error": {"code": exc.code, "message": exc.message}}, STATUS[exc.code], headers
    )


async def serve(request: web.Request, methods: Mapping[str, Method]) -> web.Response:
    try:
        if request.method != "POST":
            raise HotspotError("method_not_allowed", "use POST")
        envelope = await read_envelope(request)
        data = await _run(request, envelope, methods)
    except HotspotError as exc:
        return error_reply(exc)
    except Exception:
        # A bug. The client still gets the envelope; the log gets the traceback, never the body.
        log.exception("unhandled error in the hotspot dialect")
        return error_reply(internal_error())
    return json_reply({"status": "success", "data": positional(data)})


async def read_envelope(request: web.Request) -> Envelope:
    """The body's fields, from JSON or a form, checked; `parameters` decoded into an object."""
    try:
        if request.content_type in FORM_TYPES:
            fields = _form_fields(await read_form(request))
        else:
            fields = json_object(await read_raw(request))
    except UnreadableBody as exc:
        raise HotspotError(*_UNREADABLE[exc.problem]) from exc
    parameters = _parameters(fields.get("parameters"))
    api_token = fields.get("api_token")
    method = fields.get("method")
    if api_token is not None and not isinstance(api_token, str):
        raise invalid('"api_token" must be a string')
    if method is None:
        raise invalid('"method" is missing')
    if not isinstance(method, str):
        raise invalid('"method" must be a string')
    return Envelope(api_token, method, parameters)


def _form_fields(form: FormData) -> JsonObject:
    try:
        return dict[str, JsonValue](text_fields(form, FIELDS))
    except BadField as exc:
        raise invalid(str(exc)) from exc


def _parameters(value: JsonValue) -> JsonObject:
    # Absent, null and "" all mean "no parameters"; a JSON string is what form-encoding clients send
    # (and some JSON clients double-encode), so it is accepted in both.
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = decode_json(value)
        except UnreadableBody as exc:
            raise invalid('"parameters" is not valid JSON') from exc
    if not isinstance(value, dict):
        raise invalid('"parameters" must be an object')
    return value


async def _run(request: web.Request, envelope: Envelope, methods: Mapping[str, Method]) -> list[JsonObject]:
    """Authenticate, then run the method; a domain error it did not word itself is saying here."""
    try:
        try:
            user = await authenticate(request, envelope.api_token)
            run = methods.get(envelope.method)
            if run is None:
                raise HotspotError("unknown_method", f'unknown method "{envelope.method[:64]}"')
            return await run(Context(request, user, client_addr(request)), envelope.parameters)
        except ValidationError as exc:
            # A value the contract refuses that the parameters let through: the registry would
            # have refused it the same way.
            raise InvalidInput.from_validation(exc) from exc
    except TokenHubError as exc:
        said = translate(exc, CALL_ERRORS) or internal_error()
        if said.code == "service_unavailable":
            log.warning("backend unavailable during %s: %s", envelope.method, exc.message)
        elif said.code == "internal_error":
            log.error("unexpected %s during %s: %s", exc.code, envelope.method, exc.message)
        raise said from exc
