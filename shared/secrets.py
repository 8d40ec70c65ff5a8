"""Secret formats: generation, lookup hashes, password hashing and sealing (DESIGN §4).

- High-entropy secrets (API tokens, session ids, keys) come from `secrets` and are looked up by
  HMAC-SHA256 under a server pepper: fast, and useless to whoever steals only the database.
- Passwords use Argon2id (OWASP's minimum parameters) in a worker thread, never on the loop.
- Secrets a dialect must show again are sealed with AES-GCM; the token id is the associated data,
  so a sealed copy cannot be moved to another row.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane): about 60 ms here, in a worker thread.
_PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def new_hex_secret(nbytes: int = 32) -> str:
    """A random secret as lowercase hex: 32 bytes give Zabbix's 64-character API token."""
    return secrets.token_hex(nbytes)


def new_urlsafe_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def lookup_hash(secret: str, pepper: str) -> bytes:
    """The key a secret is found by. Deterministic, so it can be indexed; peppered, so a leaked
    table cannot be checked against guesses without the server's pepper too."""
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).digest()


def same_secret(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison. Text that is not UTF-8 (a header's raw bytes, which aiohttp hands over
    as lone surrogates) compares as those bytes: unequal to any secret of ours, never an exception."""
    a_bytes = a.encode("utf-8", "surrogatepass") if isinstance(a, str) else a
    b_bytes = b.encode("utf-8", "surrogatepass") if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def hash_password(password: str) -> str:
    """An Argon2id hash in PHC format: the parameters travel with it, so they can grow later."""
    return _PASSWORDS.hash(password)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so that an unknown name costs the same
    time as a wrong password and does not reveal which accounts exist."""
    return hash_password(secrets.token_hex(16))


def verify_password(password: str, stored: str | None) -> bool:
    try:
        ok = _PASSWORDS.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None and ok


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, stored: str | None) -> bool:
    return await asyncio.to_thread(verify_password, password, stored)


class Sealer:
    """AES-GCM with a 256-bit key; output is nonce (12 bytes) followed by ciphertext and tag."""

    NONCE_BYTES = 12
    KEY_BYTES = 32

    def __init__(self, key: bytes) -> None:
        if len(key) != self.KEY_BYTES:
            raise ValueError(
                f"the seal key must be {self.KEY_BYTES} bytes, base64-encoded (this one is {len(key)})"
            )
        self._aead = AESGCM(key)

    @classmethod
    def from_b64(cls, key_b64: str) -> Sealer:
        try:
            key = base64.b64decode(key_b64, validate=True)
        except ValueError as exc:
            raise ValueError("is not valid base64") from exc
        return cls(key)

    def seal(self, plaintext: str, context: bytes) -> bytes:
        nonce = secrets.token_bytes(self.NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context)

    def unseal(self, sealed: bytes, context: bytes) -> str:
        nonce, body = sealed[: self.NONCE_BYTES], sealed[self.NONCE_BYTES :]
        return self._aead.decrypt(nonce, body, context).decode()
