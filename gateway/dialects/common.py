"""What every dialect does with a request the same way: reading its body (JSON or a form), writing a
JSON reply, saying a domain error in the dialect's words (from one table per dialect), who the
client is, header text that is safe to use, and a guess held against the issuer's throttle. Each
dialect's own envelope is in its package and uses these."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

import orjson
from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy, MultiMapping
from pydantic import JsonValue

from gateway.keys import backends_key, settings_key
from shared.contracts.issuer import Attempt, SettledAttempt
from shared.errors import TokenHubError
from shared.internal import json_response
from shared.settings import Network

NO_ADDRESS = "-"

JsonObject = dict[str, JsonValue]
FormData = MultiDictProxy[str | bytes | bytearray | FileField]  # what aiohttp's request.post() gives


# --- reading a request's body ---------------------------------------------------------------------


@dataclass
class UnreadableBody(Exception):
    """The body cannot be what the dialect expects; each dialect words each problem its own way."""

    problem: Literal["too_large", "not_json", "not_object", "bad_form"]


async def read_raw(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise UnreadableBody("too_large") from exc


def decode_json(raw: bytes | str) -> JsonValue:
    try:
        return cast(JsonValue, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise UnreadableBody("not_json") from exc


def json_object(raw: bytes | str) -> JsonObject:
    decoded = decode_json(raw)
    if not isinstance(decoded, dict):
        raise UnreadableBody("not_object")
    return decoded


async def read_form(request: web.Request) -> FormData:
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge as exc:
        raise UnreadableBody("too_large") from exc
    except Exception as exc:
        # Whatever the form parsers choke on (an unknown charset, a broken multipart body, a
        # missing boundary) is the client's body, not our bug; their exceptions are not one family.
        raise UnreadableBody("bad_form") from exc


class BadField(Exception):
    """A form or query field given twice, or given as a file: the message says which, in words both
    form-reading dialects use."""


def text_fields(
    source: MultiMapping[str | bytes | bytearray | FileField], names: Sequence[str]
) -> dict[str, str]:
    """The named fields of a form or a query string, each given at most once and as text."""
    fields: dict[str, str] = {}
    for name in names:
        values = source.getall(name, [])
        if len(values) > 1:
            raise BadField(f'"{name}" is given more than once')
        if values:
            value = values[0]
            if not isinstance(value, str):
                raise BadField(f'"{name}" must be text, not a file')
            fields[name] = value
    return fields


# --- writing a reply ------------------------------------------------------------------------------


# The one JSON reply every service writes (shared/internal.py), by the name the dialects use.
json_reply = json_response


# --- domain errors in a dialect's words ------------------------------------------------------------

E = TypeVar("E", bound=Exception)
# A dialect's table: for each domain error class, how to say it. The most specific class listed for
# an error wins (a NameTaken finds its own entry before Conflict's).
ErrorTable = Mapping[type[TokenHubError], Callable[[TokenHubError], E]]


def translate(exc: TokenHubError, table: ErrorTable[E]) -> E | None:
    """The dialect's error for `exc`, or None when its table says nothing of any of its classes."""
    for cls in type(exc).__mro__:
        if issubclass(cls, TokenHubError) and (say := table.get(cls)) is not None:
            return say(exc)
    return None


@contextlib.contextmanager
def saying(table: ErrorTable[E]) -> Iterator[None]:
    """Raise the dialect's error `table` gives for a domain error raised in the block: where a call
    means something more particular by an error than the envelope's own table says (a failed
    password login, a voucher already spent). One the table does not name goes on up."""
    try:
        yield
    except TokenHubError as exc:
        said = translate(exc, table)
        if said is None:
            raise
        raise said from exc


X = TypeVar("X", bound=TokenHubError)


def typed(cls: type[X], say: Callable[[X], E]) -> Callable[[TokenHubError], E]:
    """A table entry that reads the typed fields of its own error class (`QuotaExceeded.limit`)."""

    def said(exc: TokenHubError) -> E:
        assert isinstance(exc, cls)
        return say(exc)

    return said


def header_text(request: web.Request, name: str) -> str | None:
    """A header's value, or None when it is absent or is not UTF-8. aiohttp hands over bytes that are
    not UTF-8 as lone surrogates, which no secret of ours contains and no JSON encoder accepts: such
    a value is treated as not given, and so as no credential at all."""
    value = request.headers.get(name)
    if value is None or value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return None
    return value


def client_addr(request: web.Request) -> str:
    """The client's address, for throttles and the audit log: the socket's peer, unless that peer is
    one of TOKENHUB_TRUSTED_PROXIES; then the right-most address in X-Forwarded-For that is not a
    trusted proxy (every hop to its right was appended by a proxy we trust; anything to its left
    the client may have written itself)."""
    peer = request.remote or NO_ADDRESS
    trusted = request.app[settings_key].trusted_proxies
    if not trusted or not _within(peer, trusted):
        return peer
    return forwarded_client(request.headers.getall("X-Forwarded-For", []), trusted) or peer


def forwarded_client(header_lines: Sequence[str], trusted: Sequence[Network]) -> str | None:
    """The right-most hop of X-Forwarded-For outside `trusted`; if every hop is trusted, the left-most.
    A hop that is not an address ends the walk at the trusted hop to its right: a proxy we trust
    would not have written it, so it came from the client. None without any usable hop."""
    hops = [hop.strip() for line in header_lines for hop in line.split(",")]
    vouched: str | None = None
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return vouched
        if not any(address in network for network in trusted):
            return str(address)
        vouched = str(address)
    return vouched


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


@contextlib.asynccontextmanager
async def guess_attempt(
    request: web.Request,
    realm: str,
    subjects: dict[str, str],
    guess: type[TokenHubError],
    blocked_event: str | None = None,
) -> AsyncIterator[None]:
    """Hold an attempt of the issuer's failure throttle around a lookup a guesser could make (an
    unknown voucher code, an unknown token): taken before it, so parallel guesses cannot outrun the
    count (Throttled when there is none left), and settled after it: failed when the block raises
    `guess`, void on another domain error (the lookup said nothing about the guess), succeeded
    otherwise. `blocked_event` is audited on the window's first refusal."""
    issuer = request.app[backends_key].issuer
    taking = Attempt(realm=realm, subjects=subjects, blocked_event=blocked_event)
    attempt = await issuer.take_attempt(taking)
    outcome = "failed"  # anything unforeseen counts, erring on the safe side
    try:
        yield
        outcome = "succeeded"
    except guess:
        raise
    except TokenHubError:
        outcome = "void"
        raise
    finally:
        settled = SettledAttempt(
            realm=realm, subjects=subjects, blocked_event=blocked_event, attempt=attempt, outcome=outcome
        )
        await issuer.finish_attempt(settled)
