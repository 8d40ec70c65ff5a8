"""The pure pieces of ChatApp-style pairs: token format, UTC-day arithmetic, key hash tags, and the
gateway dialect's request reading and response shaping."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from redis.crc import key_slot

from gateway.dialects import chatapp
from issuer.pair_tokens import PREFIXES, TOKEN_LENGTH, new_family_id, new_token, token_family
from issuer.quota import next_utc_midnight, seconds_to_reset, utc_day
from issuer.redis_keys import RedisKeys
from shared.contracts.issuer import Pair, Quota


def _utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text + "+00:00").timestamp())


# --- tokens --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["access", "refresh"])
def test_a_token_carries_its_prefix_family_and_256_random_bits(kind: Any) -> None:
    family = new_family_id()
    token = new_token(kind, family)
    assert token.startswith(PREFIXES[kind])
    assert len(token) == TOKEN_LENGTH == 81
    assert token_family(token, kind) == family
    secret = token[len(PREFIXES[kind]) + len(family) :]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)  # 43 base64url characters = 256 bits
    assert new_token(kind, family) != token


def test_a_token_of_one_kind_is_not_accepted_as_the_other() -> None:
    family = new_family_id()
    assert token_family(new_token("access", family), "refresh") is None
    assert token_family(new_token("refresh", family), "access") is None


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "th_at_",
        "th_at_" + "0" * 32,  # no secret
        "th_at_" + "0" * 31 + "}" + "a" * 43,  # a brace would break out of the key's hash tag
        "th_at_" + "A" * 32 + "a" * 43,  # family ids are lowercase hex
        "th_at_" + "0" * 32 + "a" * 42,  # one character short
        "th_at_" + "0" * 32 + "a" * 44,  # one character long
        "th_at_" + "0" * 32 + "a" * 43 + "\n",
        "TH_AT_" + "0" * 32 + "a" * 43,
        "th_xx_" + "0" * 32 + "a" * 43,
    ],
)
def test_malformed_tokens_have_no_family(forged: str) -> None:
    assert token_family(forged, "access") is None


def test_every_key_of_a_family_is_in_one_cluster_slot() -> None:
    keys = RedisKeys("th:")
    family = new_family_id()
    names = [
        keys.pair_family(family),
        keys.access_token(family, "ab" * 32),
        keys.refresh_token(family, "cd" * 32),
        keys.refresh_token(family, "ef" * 32),
    ]
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert all(f"{{{family}}}" in name for name in names)
    # ...and different families spread over the cluster (two random ids almost never collide).
    others = {key_slot(keys.pair_family(new_family_id()).encode()) for _ in range(20)}
    assert len(others) > 1


# --- days ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "day", "midnight"),
    [
        ("2024-02-28T23:59:59", "20240228", "2024-02-29T00:00:00"),
        ("2024-02-29T00:00:00", "20240229", "2024-03-01T00:00:00"),  # a leap day
        ("2023-12-31T12:00:00", "20231231", "2024-01-01T00:00:00"),
    ],
)
def test_utc_days_and_their_ends(now: str, day: str, midnight: str) -> None:
    assert utc_day(_utc(now)) == day
    assert next_utc_midnight(_utc(now)) == _utc(midnight)


def test_retry_after_counts_the_seconds_to_midnight() -> None:
    assert seconds_to_reset(_utc("2024-05-01T23:59:59")) == 1
    assert seconds_to_reset(_utc("2024-05-01T00:00:00")) == 86400
    assert seconds_to_reset(_utc("2024-05-01T12:00:00")) == 43200


def test_quota_wire_form() -> None:
    quota = Quota(limit=100, remaining=7, reset_at=1_700_000_000)
    assert quota.model_dump(mode="json") == {"limit": 100, "remaining": 7, "reset_at": 1_700_000_000}


# --- the gateway dialect's reading of requests ---------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("Bearer", None),
        ("tok", "tok"),
        ("  tok  ", "tok"),
        ("Bearer tok", "tok"),
        ("bearer   tok", "tok"),
        ("BEARER tok", "tok"),
    ],
)
def test_tokens_come_bare_or_as_bearer(header: str | None, token: str | None) -> None:
    assert chatapp.token_from_header(header) == token


def test_only_our_token_shapes_are_sent_to_the_issuer() -> None:
    family = new_family_id()
    access, refresh = new_token("access", family), new_token("refresh", family)
    assert chatapp.plausible(access, "at") == access
    assert chatapp.plausible(refresh, "rt") == refresh
    for wrong, kind in [(refresh, "at"), (access, "rt"), (None, "at"), ("x" * 10_000, "at"), ("abc", "at")]:
        with pytest.raises(chatapp.ApiError) as caught:
            chatapp.plausible(wrong, kind)
        assert (caught.value.status, caught.value.code, caught.value.message) == (
            401,
            "ApiInvalidTokenError",
            "Invalid Token",
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "email is required"),
        ({"email": "", "password": "p", "appId": "a"}, "email is required"),
        ({"email": "a@b.c", "appId": "a"}, "password is required"),
        ({"email": "a@b.c", "password": "p"}, "appId is required"),
        ({"email": 5, "password": "p", "appId": "a"}, "email must be a string"),
        ({"email": "nobody", "password": "p", "appId": "a"}, "email must be an e-mail address"),
        ({"email": "a@b.c", "password": ["p"], "appId": "a"}, "password must be a string"),
        ({"email": "a@b.c", "password": "p", "appId": True}, "appId must be a string"),
        ({"email": "a@b.c", "password": "p", "appId": "a" * 101}, "appId is too long"),
        ({"email": "a@b.c", "password": "p" * 1025, "appId": "a"}, "password is too long"),
    ],
)
def test_make_params_are_validated(body: dict[str, Any], message: str) -> None:
    with pytest.raises(chatapp.ApiError) as caught:
        chatapp.make_params(body)
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        400,
        "ApiValidationError",
        message,
    )


def test_a_numeric_app_id_names_the_same_app() -> None:
    assert chatapp.make_params({"email": "a@b.c", "password": "p", "appId": 42}) == ("a@b.c", "p", "42")


def test_pair_data_uses_chatapp_names_and_unix_seconds() -> None:
    pair = Pair(
        user_id=7,
        app_id="app",
        access_token="th_at_x",
        access_expires_at=1_700_086_400,
        refresh_token="th_rt_y",
        refresh_expires_at=1_701_209_600,
    )
    assert chatapp.pair_data(pair) == {
        "cabinetUserId": 7,
        "accessToken": "th_at_x",
        "accessTokenEndTime": 1_700_086_400,
        "refreshToken": "th_rt_y",
        "refreshTokenEndTime": 1_701_209_600,
    }


def test_error_envelope() -> None:
    response = chatapp.failure(chatapp.tokens_limit(42, chatapp.rate_limit_headers(100, 0, 1_700_000_000)))
    assert response.status == 429
    assert response.body == (
        b'{"success":false,"error":{"code":"ApiTokensLimitError",'
        b'"message":"Daily limit of tokens.make for this appId is reached"}}'
    )
    assert response.headers["Retry-After"] == "42"
    assert response.headers["X-RateLimit-Limit"] == "100"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"] == "1700000000"
