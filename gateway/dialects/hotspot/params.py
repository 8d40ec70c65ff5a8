"""The methods' parameters as docs/hotspot.md types them: flags, whole numbers, voucher codes, the
operator's u_id and device MACs. Each is accepted in the spellings form-encoding and JSON clients
send, and refused with an `invalid_request` that names it."""

from __future__ import annotations

import re
from typing import cast

from pydantic import JsonValue

from gateway.dialects.common import JsonObject
from gateway.dialects.hotspot.errors import invalid
from shared.contracts.registry.vouchers import MAX_BATCH, MAX_EXTERNAL_REF_LENGTH


def check_names(params: JsonObject, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    # Unknown names are refused rather than ignored: a mistyped filter would silently widen a list.
    for name in params:
        if name not in allowed:
            raise invalid(f'unknown parameter "{name[:64]}"')
    for name in required:
        if params.get(name) is None:
            raise invalid(f'"{name}" is required')


def parse_flag(value: JsonValue, name: str) -> bool | None:
    """A filter or switch: 1 (or true, "1") yes, 0 (or false, "0") no, null or absent: unset."""
    if value is None:
        return None
    if value in (1, "1") and not isinstance(value, float):
        return True
    if value in (0, "0") and not isinstance(value, float):
        return False
    raise invalid(f'"{name}" must be 1, 0 or null')


def parse_int(value: JsonValue, name: str, low: int, high: int) -> int:
    """A whole number, as a JSON number or decimal digits (form clients send strings)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f'"{name}" must be a whole number')
    if not low <= value <= high:
        raise invalid(f'"{name}" must be between {low} and {high}')
    return value


def parse_code(value: JsonValue, name: str) -> str:
    """A voucher code: 10 digits, as a string or a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{10}", value):
        raise invalid(f'"{name}" must be a 10-digit voucher code')
    return value


def parse_u_id(value: JsonValue, name: str = "u_id") -> str | None:
    """The operator's own reference: printable text (numbers become their digits); "" is none."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_EXTERNAL_REF_LENGTH:
        raise invalid(f'"{name}" must be a string of at most {MAX_EXTERNAL_REF_LENGTH} characters')
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise invalid(f'"{name}" must not contain control characters')
    return value


def parse_codes(value: JsonValue, name: str = "tokens") -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid(f'"{name}" must be a non-empty list of voucher codes')
    if len(value) > MAX_BATCH:
        raise invalid(f'"{name}" may hold at most {MAX_BATCH} codes')
    return [parse_code(item, f"{name}/{i}") for i, item in enumerate(value)]


_OCTET = "([0-9a-f]{2})"
_MAC_FORMS = (
    re.compile(":".join([_OCTET] * 6)),  # aa:bb:cc:dd:ee:ff
    re.compile("-".join([_OCTET] * 6)),  # AA-BB-CC-DD-EE-FF (Windows)
    re.compile(r"\.".join([_OCTET * 2] * 3)),  # aabb.ccdd.eeff
    re.compile(_OCTET * 6),  # aabbccddeeff
)


def normalise_mac(value: JsonValue, name: str = "mac") -> str:
    """A device's MAC in lower-case colon form. Accepts colons, hyphens (Windows), dotted triples
    (Cisco) or bare hex; refuses multicast, broadcast and all-zero addresses, which no device has."""
    if not isinstance(value, str) or len(value) > 64:
        raise invalid(f'"{name}" must be a MAC address')
    text = value.strip().lower()
    for form in _MAC_FORMS:
        match = form.fullmatch(text)
        if match is not None:
            # Every group of these forms takes part in a match: none is None.
            octets = cast(tuple[str, ...], match.groups())
            break
    else:
        raise invalid(f'"{name}" must be a MAC address')
    if int(octets[0], 16) & 1 or all(o == "00" for o in octets):
        raise invalid(f'"{name}" must be the unicast address of a device')
    return ":".join(octets)
