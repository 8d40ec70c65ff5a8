"""ChatApp's error envelope on the in-process trio: each domain error the issuer answers with, said
as ChatApp says it (gateway/dialects/chatapp/envelope.py's tables), and requests refused before the
issuer is asked."""

from __future__ import annotations

import secrets

import pytest
from pydantic import JsonValue

from tests.inprocess.chatapp_world import (
    INVALID_CREDENTIALS,
    INVALID_TOKEN,
    Account,
    add_account,
    add_app,
    call,
    make,
    refresh,
    validation,
)
from tests.inprocess.conftest import Trio


async def test_wrong_password_unknown_email_and_unknown_app_answer_alike(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio)
    stranger = Account(f"nobody-{secrets.token_hex(4)}@example.com", who.password, 0)
    replies = [
        await make(trio, who, app, password="Wrong-pass-1"),
        await make(trio, stranger, app),
        await make(trio, who, f"no-such-app-{secrets.token_hex(3)}"),
        await make(trio, who, "../../v1/users/1"),
        await make(trio, who, "."),
    ]
    for reply in replies:
        assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
        assert "X-RateLimit-Remaining" not in reply.headers


async def test_a_used_up_quota_says_when_it_resets(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio, daily_quota=1)
    assert (await make(trio, who, app)).headers["X-RateLimit-Remaining"] == "0"
    refused = await make(trio, who, app)
    assert (refused.status, refused.body) == (
        429,
        {
            "success": False,
            "error": {
                "code": "ApiTokensLimitError",
                "message": "Daily limit of tokens.make for this appId is reached",
            },
        },
    )
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("1", "0")
    assert 1 <= int(refused.headers["Retry-After"]) <= 86400
    assert int(refused.headers["X-RateLimit-Reset"]) % 86400 == 0  # a UTC midnight


async def test_an_account_with_its_failures_used_up_is_told_to_wait(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio)
    for _ in range(trio.settings.login_failures_max):
        assert (await make(trio, who, app, password="Wrong-pass-1")).body == INVALID_CREDENTIALS
    blocked = await make(trio, who, app)
    assert (blocked.status, blocked.body) == (
        429,
        {
            "success": False,
            "error": {
                "code": "ApiTooManyAttemptsError",
                "message": "Too many failed attempts, try again later",
            },
        },
    )
    assert 1 <= int(blocked.headers["Retry-After"]) <= trio.settings.login_failure_window
    assert "X-RateLimit-Remaining" not in blocked.headers


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", validation("Request body is not valid JSON")),
        (b"[1, 2]", validation("Request body must be a JSON object")),
        (b"", validation("email is required")),
        (b'{"email": "a@b.c", "appId": "a"}', validation("password is required")),
        (
            b'{"email": "nobody", "password": "x", "appId": "a"}',
            validation("email must be an e-mail address"),
        ),
        (b'{"email": "a@b.c", "password": "x", "appId": {}}', validation("appId must be a string")),
        (
            b'{"email": "a\\u0000@b.c", "password": "x", "appId": "a"}',
            validation("email must not contain NUL"),
        ),
        (
            b'{"email": "a@b.c", "password": "x", "pad": "' + b"x" * (1 << 20) + b'"}',
            validation("Request body is too large"),
        ),
    ],
)
async def test_make_bodies_refused_before_the_issuer_is_asked(
    trio: Trio, body: bytes, expected: JsonValue
) -> None:
    reply = await call(trio, "POST", "/v1/tokens", data=body, headers={"Content-Type": "application/json"})
    assert (reply.status, reply.body) == (400, expected)


@pytest.mark.parametrize(
    ("headers", "body", "status", "expected"),
    [
        ({}, None, 400, validation("refreshToken is required (Refresh header or body)")),
        ({}, b'{"refreshToken": 5}', 400, validation("refreshToken must be a string")),
        ({}, b"{oops", 400, validation("Request body is not valid JSON")),
        ({"Refresh": "garbage"}, None, 401, INVALID_TOKEN),
        ({"Refresh": "th_rt_" + "0" * 32 + "a" * 43}, None, 401, INVALID_TOKEN),
    ],
)
async def test_refresh_errors(
    trio: Trio, headers: dict[str, str], body: bytes | None, status: int, expected: JsonValue
) -> None:
    reply = await call(trio, "POST", "/v1/tokens/refresh", data=body, headers=headers)
    assert (reply.status, reply.body) == (status, expected)


async def test_an_access_token_does_not_refresh(trio: Trio) -> None:
    who, app = await add_account(trio), await add_app(trio)
    pair = await make(trio, who, app)
    wrong_kind = await refresh(trio, pair.text("accessToken"))
    assert (wrong_kind.status, wrong_kind.body) == (401, INVALID_TOKEN)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/tokens", "DELETE, POST"),
        ("GET", "/v1/tokens/refresh", "POST"),
        ("POST", "/v1/auth", "GET, HEAD"),
    ],
)
async def test_other_methods_get_the_envelope_with_allow(
    trio: Trio, method: str, path: str, allow: str
) -> None:
    reply = await call(trio, method, path)
    assert (reply.status, reply.body) == (
        405,
        {"success": False, "error": {"code": "ApiMethodNotAllowedError", "message": "Method not allowed"}},
    )
    assert reply.headers["Allow"] == allow
