"""The console over HTTP on the in-process trio: headers on every page, CSRF, cookies, sign-out,
Russian, and no secret rendered twice. The browser flows are in tests/browser/test_console.py."""

from __future__ import annotations

import re
import secrets

from aiohttp import ClientResponse

from gateway.console.security import CONTENT_SECURITY_POLICY
from tests.conftest import ADMIN_PASSWORD
from tests.inprocess.conftest import Trio

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def check_headers(response: ClientResponse, *, page: bool = True) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    if page:
        assert headers["Cache-Control"] == "no-store"


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, html[:2000]
    return found.group(1)


async def test_the_sign_in_page_carries_the_headers_and_a_presession_cookie(trio: Trio) -> None:
    response = await trio.gateway.get("/console/signin")
    assert response.status == 200
    check_headers(response)
    html = await response.text()
    assert "<script>" not in html
    assert " style=" not in html
    assert '<label for="username">' in html
    assert '<label for="password">' in html
    cookie = response.cookies["th_console_pre"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console/"
    assert not cookie["secure"]  # plain HTTP here; over TLS (or a trusted proxy's https) it is Secure


async def test_static_assets_carry_the_headers_too(trio: Trio) -> None:
    response = await trio.gateway.get("/console/static/console.css")
    assert response.status == 200
    check_headers(response, page=False)


async def test_a_signed_out_visitor_is_sent_to_sign_in(trio: Trio) -> None:
    response = await trio.gateway.get("/console/tokens", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/console/signin"
    check_headers(response)


async def test_a_post_without_a_valid_csrf_token_is_refused(trio: Trio) -> None:
    trio.gateway.session.cookie_jar.clear()
    await trio.gateway.get("/console/signin")  # the pre-session cookie
    for form in (
        {"username": "Admin", "password": ADMIN_PASSWORD},
        {"username": "Admin", "password": ADMIN_PASSWORD, "csrf": "0" * 64},
    ):
        response = await trio.gateway.post("/console/signin", data=form, allow_redirects=False)
        assert response.status == 403
        check_headers(response)
        assert "th_console" not in response.cookies
    # Nor may a signed-out form post anything anywhere else.
    response = await trio.gateway.post("/console/users", data={"username": "x"}, allow_redirects=False)
    assert response.status == 403


async def test_russian_by_accept_language_and_by_the_switch(trio: Trio) -> None:
    trio.gateway.session.cookie_jar.clear()
    response = await trio.gateway.get(
        "/console/signin", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}
    )
    html = await response.text()
    assert '<html lang="ru">' in html
    assert "Войти" in html
    response = await trio.gateway.get("/console/signin", headers={"Accept-Language": "de, en;q=0.1"})
    assert '<html lang="en">' in await response.text()
    response = await trio.gateway.get("/console/signin?lang=ru", headers={"Accept-Language": "en"})
    assert "Войти" in await response.text()
    assert response.cookies["th_console_lang"].value == "ru"
    response = await trio.gateway.get("/console/signin", headers={"Accept-Language": "en"})
    assert "Войти" in await response.text()  # the switch's cookie wins
    trio.gateway.session.cookie_jar.clear()


async def test_an_unknown_console_page_is_a_page_not_a_bare_404(trio: Trio) -> None:
    response = await trio.gateway.get(f"/console/nowhere-{secrets.token_hex(2)}")
    assert response.status == 404
    check_headers(response)
    assert "<h1>" in await response.text()
