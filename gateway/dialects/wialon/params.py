"""The values Wialon's services take, checked as the Remote API reference types them. Every
failure is error 4 (invalid input) with a reason naming the parameter."""

from __future__ import annotations

import re

import orjson
from pydantic import JsonValue
from typing_extensions import TypeIs

from gateway.dialects.common import JsonObject, UnreadableBody, decode_json
from gateway.dialects.wialon.errors import invalid
from shared.contracts.registry.wialon_tokens import Params
from shared.limits import too_deep

# Wialon's access flags of a token (the reference's table, plus 0x4000 of the newer one).
ONLINE_TRACKING = 0x100
VIEW_DATA = 0x200
EDIT_NON_SENSITIVE = 0x400
EDIT_SENSITIVE = 0x800
EDIT_CRITICAL = 0x1000
COMMUNICATION = 0x2000
ACTIVATION_CODES = 0x4000
KNOWN_FLAGS = (
    ONLINE_TRACKING
    | VIEW_DATA
    | EDIT_NON_SENSITIVE
    | EDIT_SENSITIVE
    | EDIT_CRITICAL
    | COMMUNICATION
    | ACTIVATION_CODES
)
UNLIMITED = -1
# Older references spell "unlimited" as 0xFFFFFFFF: the same as -1.
UNLIMITED_UINT32 = 0xFFFFFFFF

UINT32_MAX = 2**32 - 1
ID_MAX = 2**63 - 1
# "dur: max value = 8640000 (100 days)" in the token/update reference.
MAX_DURATION_S = 8_640_000
MAX_ITEMS = 10_000
# `p` is free text for the application; this keeps a row (and a login reply) reasonable.
MAX_CUSTOM_PARAMS = 65_536
# JSON encoders stop at some depth (orjson at 255): `p` is stored and shown again, so it is refused
# well before that, at a depth no application's parameters reach.
MAX_CUSTOM_PARAMS_DEPTH = 64
MAX_APP_NAME = 255
MAX_USER_NAME = 100  # users_username_check
MAX_PASSWORD = 1024
TOKEN_LENGTH = 72
_DIGITS = re.compile(r"[0-9]{1,19}")


def decode(raw: str | None) -> JsonValue:
    """The `params` form field: a JSON text. Absent or empty is the empty object."""
    if raw is None or raw == "":
        return {}
    try:
        return decode_json(raw)
    except UnreadableBody as exc:
        raise invalid('"params" is not valid JSON') from exc


def as_object(params: JsonValue) -> JsonObject:
    # python-wialon sends `[]` for a call without arguments (its README's `core_logout()`).
    if params == []:
        return {}
    if not isinstance(params, dict):
        raise invalid('"params" must be an object')
    return params


def is_integer(value: JsonValue) -> TypeIs[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def optional_text(params: JsonObject, name: str, max_length: int) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f'"{name}" must be a string')
    if len(value) > max_length:
        raise invalid(f'"{name}" is longer than {max_length} characters')
    return value


def text(params: JsonObject, name: str, max_length: int) -> str:
    value = optional_text(params, name, max_length)
    if value is None:
        raise invalid(f'"{name}" is required')
    return value


def optional_uint(params: JsonObject, name: str, maximum: int = UINT32_MAX) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not is_integer(value) or not 0 <= value <= maximum:
        raise invalid(f'"{name}" must be a whole number from 0 to {maximum}')
    return value


def uint(params: JsonObject, name: str, maximum: int = UINT32_MAX) -> int:
    value = optional_uint(params, name, maximum)
    if value is None:
        raise invalid(f'"{name}" is required')
    return value


def user_id(params: JsonObject) -> int | None:
    """`userId`: typed <text> by the reference, so a decimal string or a number."""
    value = params.get("userId")
    if value is None:
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if not is_integer(value) or not 1 <= value <= ID_MAX:
        raise invalid('"userId" must be a user id')
    return value


def token(params: JsonObject, name: str) -> str:
    """A 72-character token (`h`, `token`). Non-hexadecimal text of the right length is no token
    either, but that is for the caller to report like any unknown token."""
    value = text(params, name, TOKEN_LENGTH * 4)
    if len(value) != TOKEN_LENGTH:
        raise invalid(f'"{name}" must be {TOKEN_LENGTH} characters')
    return value


def access_flags(params: JsonObject) -> int:
    """`fl`: -1 (or 0xFFFFFFFF) for unlimited, else a combination of the documented flags."""
    value = params.get("fl")
    if value is None:
        raise invalid('"fl" is required')
    if not is_integer(value):
        raise invalid('"fl" must be a number')
    if value in (UNLIMITED, UNLIMITED_UINT32):
        return UNLIMITED
    if value < 0 or value & ~KNOWN_FLAGS:
        raise invalid('"fl" must be -1 or a combination of the access flags 0x100 to 0x4000')
    return value


def custom_params(params: JsonObject) -> Params:
    """`p`: a JSON string of an object or of an array of objects. The decoded value is accepted
    too (a client that forgot to encode it means the same thing)."""
    value = params.get("p")
    if value is None:
        raise invalid('"p" is required')
    given_as_text = isinstance(value, str)
    if isinstance(value, str):
        if len(value) > MAX_CUSTOM_PARAMS:
            raise invalid(f'"p" is longer than {MAX_CUSTOM_PARAMS} characters')
        try:
            value = decode_json(value)
        except UnreadableBody as exc:
            raise invalid('"p" is not valid JSON') from exc
    # Before anything encodes it again (to measure it, to store it).
    if too_deep(value, MAX_CUSTOM_PARAMS_DEPTH):
        raise invalid(f'"p" is nested deeper than {MAX_CUSTOM_PARAMS_DEPTH} levels')
    if not given_as_text and len(orjson.dumps(value)) > MAX_CUSTOM_PARAMS:
        raise invalid(f'"p" is longer than {MAX_CUSTOM_PARAMS} characters')
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        objects = [entry for entry in value if isinstance(entry, dict)]
        if len(objects) == len(value):
            return objects
    raise invalid('"p" must be an object or an array of objects')


def items(params: JsonObject) -> list[int]:
    """`items`: the ids of the items the token reaches; absent means no restriction ([])."""
    value = params.get("items")
    if value is None:
        return []
    if isinstance(value, list) and len(value) <= MAX_ITEMS:
        ids = [item for item in value if is_integer(item) and 0 <= item <= ID_MAX]
        if len(ids) == len(value):
            return ids
    raise invalid(f'"items" must be a list of at most {MAX_ITEMS} item ids')


def switch(params: JsonObject, name: str) -> bool:
    """A <bool>|<text> switch such as `deleteAll`: 1 or true (also "1", "true") is on."""
    value = params.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if is_integer(value) and value in (0, 1):
        return value == 1
    if isinstance(value, str) and value in ("0", "1", "false", "true"):
        return value in ("1", "true")
    raise invalid(f'"{name}" must be true or false')
