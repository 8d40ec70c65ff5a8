"""What a ChatApp request carries: its JSON body, the fields of tokens.make, and tokens in headers.
Everything refused here is refused with ApiValidationError or ApiInvalidTokenError, before the
issuer is asked anything."""

from __future__ import annotations

import re
from typing import NamedTuple

from aiohttp import web

from gateway.dialects.chatapp.envelope import invalid_token, validation_error
from gateway.dialects.common import JsonObject, header_text, json_object, read_raw

# Longest token we look at; ours are 81 characters. Anything longer is not ours, unhashed.
MAX_TOKEN_LENGTH = 256
# Ours, by kind: "at" (access) or "rt" (refresh), a family id, a secret (issuer/pair_tokens.py).
_TOKEN_SHAPES = {kind: re.compile(rf"th_{kind}_[0-9a-f]{{32}}[A-Za-z0-9_-]{{43}}") for kind in ("at", "rt")}


async def read_body(request: web.Request) -> JsonObject:
    """The JSON object in the body (an empty body is an empty object). Clients do not always send a
    JSON Content-Type; the body decides. UnreadableBody for anything else."""
    raw = await read_raw(request)
    return json_object(raw) if raw.strip() else {}


def _string(body: JsonObject, name: str, max_length: int, *, numbers: bool = False) -> str:
    value = body.get(name)
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an appId sent as a number means the same app
    if value is None or value == "":
        raise validation_error(f"{name} is required")
    if not isinstance(value, str):
        raise validation_error(f"{name} must be a string")
    if len(value) > max_length:
        raise validation_error(f"{name} is too long")
    return value


class MakeParams(NamedTuple):
    email: str
    password: str
    app_id: str


def make_params(body: JsonObject) -> MakeParams:
    """(email, password, appId) of a tokens.make body, or ApiValidationError."""
    email = _string(body, "email", 254)
    if "@" not in email:
        raise validation_error("email must be an e-mail address")
    password, app_id = _string(body, "password", 1024), _string(body, "appId", 100, numbers=True)
    # Both are looked up in Postgres, whose text cannot hold NUL: refused here, with a reason,
    # rather than by the registry as a mystery. The password is only hashed, so any character goes.
    for name, value in (("email", email), ("appId", app_id)):
        if "\x00" in value:
            raise validation_error(f"{name} must not contain NUL")
    return MakeParams(email, password, app_id)


async def refresh_token(request: web.Request) -> str:
    """The refresh token, from the `Refresh` header or else {refreshToken} in the body."""
    header = request.headers.get("Refresh")
    if header is not None and header_text(request, "Refresh") is None:
        raise invalid_token()  # given, but not UTF-8: it cannot be a token of ours
    token = token_from_header(header)
    if token is not None:
        return token
    value = (await read_body(request)).get("refreshToken")
    if value is None or value == "":
        raise validation_error("refreshToken is required (Refresh header or body)")
    if not isinstance(value, str):
        raise validation_error("refreshToken must be a string")
    return value


def token_from_header(value: str | None) -> str | None:
    """The token in `Authorization:` / `Refresh:`: the bare token as ChatApp documents it, or
    `Bearer <token>` as most HTTP clients send it."""
    if value is None:
        return None
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


def plausible(token: str | None, kind: str) -> str:
    """The token if it has the shape of ours of this kind ("at" or "rt"); else ApiInvalidTokenError,
    without asking the issuer about strings that cannot be tokens."""
    shape = _TOKEN_SHAPES.get(kind)
    if token is None or shape is None or len(token) > MAX_TOKEN_LENGTH or shape.fullmatch(token) is None:
        raise invalid_token()
    return token


def access_token(request: web.Request) -> str:
    """The request's `Authorization` access token, if it can be one of ours."""
    return plausible(token_from_header(header_text(request, "Authorization")), "at")
