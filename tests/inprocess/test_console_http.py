"""The console over HTTP on the in-process trio: headers on every page, CSRF, cookies, sign-out,
Russian, and no secret rendered twice. The browser flows are in tests/browser/test_console.py."""

from __future__ import annotations

import re
import secrets
from html.parser import HTMLParser

from aiohttp import ClientResponse

from gateway.console.frame import voucher_mask
from gateway.console.security import CONTENT_SECURITY_POLICY
from tests.conftest import ADMIN_PASSWORD
from tests.inprocess.chatapp_world import add_account
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
    bare = await trio.gateway.get("/console", allow_redirects=False)
    assert bare.status == 301
    assert bare.headers["Location"] == "/console/"
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


# --- signed in ----------------------------------------------------------------------------------------

PAGES = (
    "/console/",
    "/console/users",
    "/console/users/tree",
    "/console/tokens",
    "/console/apps",
    "/console/vouchers",
    "/console/audit",
)


async def sign_in(trio: Trio, username: str = "Admin", password: str = ADMIN_PASSWORD) -> str:
    """Signs the test client in through the form; returns the CSRF token of its pages."""
    trio.gateway.session.cookie_jar.clear()
    page = await trio.gateway.get("/console/signin")
    form = {"username": username, "password": password, "csrf": csrf_of(await page.text())}
    response = await trio.gateway.post("/console/signin", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    cookie = response.cookies["th_console"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console/"
    overview = await trio.gateway.get("/console/")
    assert overview.status == 200
    return csrf_of(await overview.text())


def session_cookie(trio: Trio) -> str:
    found = [c.value for c in trio.gateway.session.cookie_jar if c.key == "th_console"]
    assert found
    return found[0]


async def test_every_page_answers_with_the_headers_and_no_inline_script(trio: Trio) -> None:
    await sign_in(trio)
    for path in PAGES:
        response = await trio.gateway.get(path)
        assert response.status == 200, (path, await response.text())
        check_headers(response)
        html = await response.text()
        assert "<script>" not in html, path
        assert " style=" not in html, path
        assert " onclick=" not in html, path
    overview = await (await trio.gateway.get("/console/")).text()
    assert '<svg class="th-chart"' in overview
    # The language switch keeps the page's filters.
    tokens = await (
        await trio.gateway.get("/console/tokens?kind=zabbix&expires_before=2030-01-01T00:00")
    ).text()
    assert 'href="?kind=zabbix&amp;expires_before=2030-01-01T00%3A00&amp;lang=ru"' in tokens


async def test_a_signed_in_form_without_its_csrf_token_is_refused(trio: Trio) -> None:
    csrf = await sign_in(trio)
    name = f"csrf-{secrets.token_hex(3)}"
    refused = await trio.gateway.post("/console/users", data={"username": name}, allow_redirects=False)
    assert refused.status == 403
    # The pre-session's token is not this session's either.
    forged = await trio.gateway.post(
        "/console/users", data={"username": name, "csrf": "f" * 64}, allow_redirects=False
    )
    assert forged.status == 403
    # From another origin, even with the token, no.
    other = await trio.gateway.post(
        "/console/users",
        data={"username": name, "csrf": csrf},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert other.status == 403
    listed = await (await trio.gateway.get(f"/console/users?q={name}")).text()
    assert f">{name}<" not in listed


async def test_sign_out_ends_the_session_everywhere(trio: Trio) -> None:
    from gateway.admin import service

    csrf = await sign_in(trio)
    token = session_cookie(trio)
    assert await service.caller_from_session(trio.gateway.app, token) is not None
    # The console's session is an admin API session as well, until it ends.
    api = await trio.gateway.get("/admin/v1/summary", headers={"Authorization": f"Bearer {token}"})
    assert api.status == 200
    response = await trio.gateway.post("/console/signout", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/console/signin"
    # The issuer's session is gone: for the admin service (and so the admin API) as for the console,
    # on this gateway and any other.
    assert await service.caller_from_session(trio.gateway.app, token) is None
    trio.gateway.session.cookie_jar.update_cookies({"th_console": token})
    again = await trio.gateway.get("/console/tokens", allow_redirects=False)
    assert again.status == 303
    assert again.headers["Location"].startswith("/console/signin")
    api = await trio.gateway.get("/admin/v1/summary", headers={"Authorization": f"Bearer {token}"})
    assert api.status == 401


async def test_a_wrong_password_is_a_message_not_an_error(trio: Trio) -> None:
    trio.gateway.session.cookie_jar.clear()
    page = await trio.gateway.get("/console/signin")
    form = {
        "username": f"nobody-{secrets.token_hex(3)}",
        "password": "wrong",
        "csrf": csrf_of(await page.text()),
    }
    response = await trio.gateway.post("/console/signin", data=form, allow_redirects=False)
    assert response.status == 401
    check_headers(response)
    assert "Wrong username or password." in await response.text()


async def test_a_generated_password_is_rendered_once(trio: Trio) -> None:
    csrf = await sign_in(trio)
    name = f"once-{secrets.token_hex(3)}"
    created = await trio.gateway.post("/console/users", data={"username": name, "csrf": csrf})
    assert created.status == 200
    check_headers(created)
    html = await created.text()
    secret = re.search(r'id="secret" class="secret-value" value="([^"]+)"', html)
    assert secret is not None
    password = secret.group(1)
    for path in (*PAGES, f"/console/users?q={name}"):
        assert password not in await (await trio.gateway.get(path)).text(), path
    user_id = re.search(r"\(ID (\d+),", html)
    assert user_id is not None
    reset = await trio.gateway.post(f"/console/users/{user_id.group(1)}/password", data={"csrf": csrf})
    new = re.search(r'class="secret-value" value="([^"]+)"', await reset.text())
    assert new is not None
    assert new.group(1) != password
    assert new.group(1) not in await (await trio.gateway.get(f"/console/users?q={name}")).text()


async def test_voucher_codes_are_rendered_once_on_the_sheet(trio: Trio) -> None:
    csrf = await sign_in(trio)
    sheet = await trio.gateway.post(
        "/console/vouchers", data={"count": "3", "lifetime": "3600", "csrf": csrf}
    )
    assert sheet.status == 200
    html = await sheet.text()
    codes = re.findall(r'<p class="code">(\d{5}) (\d{5})</p>', html)
    assert len(codes) == 3
    assert html.count('class="th-qr"') == 3
    for first, second in codes:
        code = first + second
        for path in ("/console/vouchers", "/console/tokens?kind=voucher", f"/console/vouchers?token={code}"):
            listed = await (await trio.gateway.get(path)).text()
            # Only the filter a person typed it into echoes it; no listing shows it.
            assert code not in listed.split("<table", 1)[1], path
            assert voucher_mask(code) in listed, path
    # Found by its code, it is annulled through a reference sealed to this session.
    code = codes[0][0] + codes[0][1]
    listed = await (await trio.gateway.get(f"/console/vouchers?token={code}")).text()
    refs = re.findall(r'name="ref" value="([^"]+)"', listed)
    assert len(refs) == 1
    done = await trio.gateway.post(
        "/console/vouchers/bulk",
        data={"csrf": csrf, "action": "annul", "ref": refs[0], "back": f"token={code}"},
    )
    assert done.status == 200
    assert "Acted on: 1" in await done.text()


class Controls(HTMLParser):
    """Every form control of a page, and the ids its labels name."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "label" and found.get("for"):
            self.labelled.add(found["for"] or "")
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append(found)


async def test_every_form_control_is_labelled(trio: Trio) -> None:
    await sign_in(trio)
    for path in ("/console/signin", *PAGES):
        if path == "/console/signin":
            trio.gateway.session.cookie_jar.clear()
        parser = Controls()
        parser.feed(await (await trio.gateway.get(path)).text())
        unlabelled = [
            c
            for c in parser.controls
            if not c.get("aria-label") and (c.get("id") or "") not in parser.labelled
        ]
        assert unlabelled == [], path
        if path == "/console/signin":
            await sign_in(trio)


async def test_odd_queries_get_a_message_never_a_500(trio: Trio) -> None:
    await sign_in(trio)
    odd = [
        "/console/users?role=emperor&status=sleeping&cursor=!!!",
        "/console/users?q=" + "x" * 500,
        "/console/tokens?kind=ssh&status=x&owner_id=abc",
        "/console/tokens?cursor=bm90LWEtY3Vyc29y&owner_id=99999999999999999999999",
        "/console/vouchers?offset=-5&token=abc&used=2",
        "/console/vouchers?offset=99999999999999",
        "/console/audit?since=yesterday&user_id=-1&event=DROP%20TABLE",
        "/console/audit?cursor=%00",
        "/console/apps/no-such-app",
        "/console/users/tree?lang=xx",
    ]
    for path in odd:
        response = await trio.gateway.get(path)
        assert 200 <= response.status < 500, (path, response.status)
        check_headers(response)
        assert "<h1>" in await response.text(), path


async def test_a_user_sees_what_its_role_may_see(trio: Trio) -> None:
    account = await add_account(trio)
    await sign_in(trio, account.email.split("@")[0], account.password)
    for path in PAGES:
        response = await trio.gateway.get(path)
        assert response.status == 200, path
    users = await (await trio.gateway.get("/console/users")).text()
    assert "Create a user" not in users
    assert 'action="/console/users/' not in users
    apps = await (await trio.gateway.get("/console/apps")).text()
    assert "Create an app" not in apps
    # What the page does not offer, the service refuses all the same: a message, not a 500.
    csrf = csrf_of(users)
    refused = await trio.gateway.post(
        "/console/apps", data={"csrf": csrf, "app_id": f"mine-{secrets.token_hex(2)}"}
    )
    assert refused.status == 403
    assert 'class="msg error"' in await refused.text()


async def test_an_app_id_with_a_slash_and_spaces_has_its_page(trio: Trio) -> None:
    csrf = await sign_in(trio)
    app_id = f"team/app {secrets.token_hex(2)}"
    made = await trio.gateway.post("/console/apps", data={"csrf": csrf, "app_id": app_id, "daily_quota": "7"})
    assert made.status == 200
    assert f"Apps: {app_id}" in await made.text()
    edited = await trio.gateway.post(
        made.url.path, data={"csrf": csrf, "daily_quota": "9", "access_ttl": "60", "refresh_ttl": "120"}
    )
    assert edited.status == 200
    assert 'name="daily_quota" type="number" min="0" value="9"' in await edited.text()


async def test_an_unreachable_backend_is_a_503_page_not_a_500(trio: Trio) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import create_app as create_gateway
    from tests.ports import free_port

    # A gateway of its own whose issuer and registry are nowhere (nothing listens on those ports).
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = trio.settings.model_copy(
        update={"issuer_url": nowhere, "registry_url": nowhere, "backend_timeout": 1.0}
    )
    client = TestClient(TestServer(await create_gateway(settings), host="127.0.0.1"))
    await client.start_server()
    try:
        page = await client.get("/console/signin")
        assert page.status == 200
        form = {"username": "Admin", "password": ADMIN_PASSWORD, "csrf": csrf_of(await page.text())}
        refused = await client.post("/console/signin", data=form, allow_redirects=False)
        assert refused.status == 503
        check_headers(refused)
        assert "The service is unavailable. Try again later." in await refused.text()
        client.session.cookie_jar.update_cookies({"th_console": "x" * 43})
        listing = await client.get("/console/tokens", allow_redirects=False)
        assert listing.status == 503
        check_headers(listing)
    finally:
        await client.close()
