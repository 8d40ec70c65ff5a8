"""The format of ChatApp-style pair tokens: `th_at_` (access) or `th_rt_` (refresh), the family id,
then the secret.

A token carries its family id, so the issuer finds a token's keys (all hash-tagged by that id, one
Redis Cluster slot) without any index; the secret part is 256 bits from `secrets`, and Redis only
ever sees its peppered HMAC.
"""

from __future__ import annotations

import re
import secrets
from typing import Literal

TokenKind = Literal["access", "refresh"]
PREFIXES: dict[TokenKind, str] = {"access": "th_at_", "refresh": "th_rt_"}
FAMILY_HEX = 32  # 128-bit family id: names the family's keys, it is not the secret
SECRET_BYTES = 32  # 256 bits from the CSPRNG: what makes the token unguessable
_SECRET_CHARS = 43  # length of SECRET_BYTES in unpadded base64url
_TOKEN = re.compile(rf"th_(at|rt)_([0-9a-f]{{{FAMILY_HEX}}})([A-Za-z0-9_-]{{{_SECRET_CHARS}}})")
_KIND_OF_TAG: dict[str, TokenKind] = {"at": "access", "rt": "refresh"}
TOKEN_LENGTH = 6 + FAMILY_HEX + _SECRET_CHARS


def new_family_id() -> str:
    return secrets.token_hex(FAMILY_HEX // 2)


def new_token(kind: TokenKind, family: str) -> str:
    """`th_at_` or `th_rt_`, the family id, then 256 random bits (base64url)."""
    return PREFIXES[kind] + family + secrets.token_urlsafe(SECRET_BYTES)


def token_family(token: str, kind: TokenKind) -> str | None:
    """The family id of a well-formed token of this kind, else None. Checked strictly: the id
    becomes part of Redis keys, between the braces of a hash tag."""
    match = _TOKEN.fullmatch(token)
    if match is None or _KIND_OF_TAG[match[1]] != kind:
        return None
    return match[2]
