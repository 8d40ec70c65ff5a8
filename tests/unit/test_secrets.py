"""Secret formats: random secrets, lookup hashes, constant-time comparison, passwords, sealing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string

import pytest
from cryptography.exceptions import InvalidTag

from shared.secrets import (
    Sealer,
    hash_password,
    hash_password_async,
    lookup_hash,
    new_hex_secret,
    new_urlsafe_secret,
    same_secret,
    verify_password,
    verify_password_async,
)
from shared.settings import DEV_SEAL_KEY

PEPPER = "unit-test-pepper-0123456789"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(bytes(range(32)))


# --- random secrets ---------------------------------------------------------------------------


def test_new_hex_secret_default_is_64_lowercase_hex() -> None:
    secret = new_hex_secret()
    assert len(secret) == 64
    assert set(secret) <= set("0123456789abcdef")


@pytest.mark.parametrize("nbytes", [1, 16, 32, 48])
def test_new_hex_secret_length_follows_nbytes(nbytes: int) -> None:
    secret = new_hex_secret(nbytes)
    assert len(secret) == 2 * nbytes
    assert bytes.fromhex(secret).hex() == secret


def test_new_hex_secrets_are_unique() -> None:
    secrets = {new_hex_secret() for _ in range(1000)}
    assert len(secrets) == 1000


def test_new_urlsafe_secret_charset_and_uniqueness() -> None:
    allowed = set(string.ascii_letters + string.digits + "-_")
    secrets = {new_urlsafe_secret() for _ in range(500)}
    assert len(secrets) == 500
    for secret in secrets:
        assert set(secret) <= allowed
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) == 32


# --- lookup hashes ----------------------------------------------------------------------------


def test_lookup_hash_is_deterministic_and_32_bytes() -> None:
    first = lookup_hash("some-token", PEPPER)
    assert isinstance(first, bytes)
    assert len(first) == 32
    assert lookup_hash("some-token", PEPPER) == first


def test_lookup_hash_is_hmac_sha256_keyed_by_the_pepper() -> None:
    expected = hmac.new(PEPPER.encode(), b"some-token", hashlib.sha256).digest()
    assert lookup_hash("some-token", PEPPER) == expected
    # not a plain hash of the secret: the pepper is needed to check a guess
    assert lookup_hash("some-token", PEPPER) != hashlib.sha256(b"some-token").digest()


def test_lookup_hash_depends_on_pepper_and_secret() -> None:
    base = lookup_hash("some-token", PEPPER)
    assert lookup_hash("some-token", PEPPER + "x") != base
    assert lookup_hash("some-token2", PEPPER) != base
    assert lookup_hash("", PEPPER) != lookup_hash("", PEPPER + "x")


# --- constant-time comparison -----------------------------------------------------------------


def test_same_secret() -> None:
    assert same_secret("abc", "abc")
    assert same_secret(b"abc", b"abc")
    assert same_secret("abc", b"abc")
    assert same_secret(b"\xc3\xa9", "\u00e9")
    assert not same_secret("abc", "abd")
    assert not same_secret("abc", "abcd")
    assert not same_secret("abc", "")
    assert not same_secret("", "abc")
    assert same_secret("", "")


# --- passwords --------------------------------------------------------------------------------


def test_hash_password_is_argon2id_without_the_password(stored_hash: str) -> None:
    assert stored_hash.startswith("$argon2id$")
    assert PASSWORD not in stored_hash
    assert PASSWORD.encode().hex() not in stored_hash
    assert base64.b64encode(PASSWORD.encode()).decode().rstrip("=") not in stored_hash


def test_hash_password_is_salted(stored_hash: str) -> None:
    assert hash_password(PASSWORD) != stored_hash


def test_verify_password_right_and_wrong(stored_hash: str) -> None:
    assert verify_password(PASSWORD, stored_hash) is True
    assert verify_password(PASSWORD + " ", stored_hash) is False
    assert verify_password("", stored_hash) is False
    assert verify_password(PASSWORD.upper(), stored_hash) is False


def test_verify_password_unknown_account_is_false() -> None:
    assert verify_password(PASSWORD, None) is False
    assert verify_password("", None) is False


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtc2FsdA$bm90LWEtaGFzaA",
        "$2b$12$abcdefghijklmnopqrstuuOhN6Xo8W4Vd0qvK.uQ5Z3sUeE2d0Zm6",  # bcrypt, not ours
        PASSWORD,  # a plaintext "hash" must not let the plaintext in
    ],
)
def test_verify_password_garbage_stored_is_false(stored: str) -> None:
    assert verify_password(PASSWORD, stored) is False


async def test_async_variants(stored_hash: str) -> None:
    hashed = await hash_password_async(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert hashed != stored_hash
    assert await verify_password_async(PASSWORD, hashed) is True
    assert await verify_password_async(PASSWORD, stored_hash) is True
    assert await verify_password_async("wrong", hashed) is False
    assert await verify_password_async(PASSWORD, None) is False
    assert await verify_password_async(PASSWORD, "garbage") is False


# --- sealing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", ["", "x", "a" * 64, "p\u00e4ssw\u00f6rd \u2603", "line\nbreak"])
def test_seal_round_trip(sealer: Sealer, plaintext: str) -> None:
    sealed = sealer.seal(plaintext, b"token-1")
    assert isinstance(sealed, bytes)
    assert sealer.unseal(sealed, b"token-1") == plaintext


def test_sealed_does_not_contain_the_plaintext(sealer: Sealer) -> None:
    plaintext = "a-very-recognisable-secret-value"
    sealed = sealer.seal(plaintext, b"token-1")
    assert plaintext.encode() not in sealed
    # nonce + ciphertext (same length as the plaintext) + 16-byte tag
    assert len(sealed) == Sealer.NONCE_BYTES + len(plaintext.encode()) + 16


def test_unseal_under_another_context_fails(sealer: Sealer) -> None:
    sealed = sealer.seal("secret", b"token-1")
    with pytest.raises(InvalidTag):
        sealer.unseal(sealed, b"token-2")
    with pytest.raises(InvalidTag):
        sealer.unseal(sealed, b"")


def test_unseal_with_another_key_fails(sealer: Sealer) -> None:
    sealed = sealer.seal("secret", b"token-1")
    other = Sealer(bytes(range(1, 33)))
    with pytest.raises(InvalidTag):
        other.unseal(sealed, b"token-1")


@pytest.mark.parametrize("position", [0, Sealer.NONCE_BYTES - 1, Sealer.NONCE_BYTES, -1])
def test_tampered_sealed_value_fails(sealer: Sealer, position: int) -> None:
    sealed = bytearray(sealer.seal("secret", b"token-1"))
    sealed[position] ^= 0x01
    with pytest.raises(InvalidTag):
        sealer.unseal(bytes(sealed), b"token-1")


@pytest.mark.parametrize("keep", [0, 5, Sealer.NONCE_BYTES, Sealer.NONCE_BYTES + 10])
def test_truncated_sealed_value_fails(sealer: Sealer, keep: int) -> None:
    sealed = sealer.seal("secret", b"token-1")
    with pytest.raises((InvalidTag, ValueError)):
        sealer.unseal(sealed[:keep], b"token-1")


def test_two_seals_of_the_same_plaintext_differ(sealer: Sealer) -> None:
    first = sealer.seal("secret", b"token-1")
    second = sealer.seal("secret", b"token-1")
    assert first != second
    assert first[: Sealer.NONCE_BYTES] != second[: Sealer.NONCE_BYTES]
    assert sealer.unseal(first, b"token-1") == sealer.unseal(second, b"token-1") == "secret"


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33, 64])
def test_sealer_key_must_be_32_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer(b"k" * length)


def test_sealer_from_b64() -> None:
    key = bytes(range(32))
    from_b64 = Sealer.from_b64(base64.b64encode(key).decode())
    sealed = Sealer(key).seal("secret", b"ctx")
    assert from_b64.unseal(sealed, b"ctx") == "secret"
    assert Sealer.from_b64(DEV_SEAL_KEY).unseal(Sealer.from_b64(DEV_SEAL_KEY).seal("x", b"c"), b"c") == "x"


@pytest.mark.parametrize("key_b64", ["not base64!", "YWJj ZGVm", "YWJjZA"])
def test_sealer_from_b64_refuses_non_base64(key_b64: str) -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        Sealer.from_b64(key_b64)


def test_sealer_from_b64_refuses_wrong_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer.from_b64(base64.b64encode(b"k" * 16).decode())
