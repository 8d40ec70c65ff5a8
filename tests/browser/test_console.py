"""The operator console in a real Chromium (Debian's, driven by Playwright from PyPI), through the
issue's "Done when" flows, against the in-process services on a real loopback port and the run's
real Postgres and Redis. Each flow's credentials are then tried through the dialects' own APIs.

One browser and one page for the module; the flows run in order and share a small world (one user,
one app, ~50 Zabbix tokens). Screenshots of each page at 1280 and 390 px go to build/screenshots/,
each checked not to be blank. Without /usr/bin/chromium (`make chromium` installs it) the module
skips and says so."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright

from gateway.keys import verification_counter_key
from tests.conftest import ADMIN_PASSWORD, ROOT
from tests.inprocess.admin_world import zabbix
from tests.inprocess.chatapp_world import add_account
from tests.inprocess.conftest import Trio

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "build" / "screenshots"
WIDTHS = (1280, 390)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium: `make chromium` (part of `make install` and `make test`) installs "
    "Debian's chromium package; the console's browser tests need it",
)


@dataclass
class World:
    base: str
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    username: str = ""
    email: str = ""
    password: str = "Console-user-pass-1"
    user_id: int = 0
    app_id: str = ""
    access: str = ""
    refresh: str = ""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Root in a container: Chromium's sandbox needs user namespaces it may not have.
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    opened = await context.new_page()
    opened.set_default_timeout(10_000)
    # The destructive buttons ask first (console.js); the flows say yes.
    opened.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    yield opened
    await context.close()


@pytest.fixture(scope="module")
def world(trio: Trio) -> World:
    return World(base=str(trio.gateway.make_url("")).rstrip("/"))


async def screenshot(page: Page, name: str) -> None:
    """The page at each width, full length, written to build/screenshots/ and checked not blank."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        path = SCREENSHOTS / f"{name}-{width}.png"
        await page.screenshot(path=str(path), full_page=True)
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            colours = rgb.getcolors(maxcolors=1 << 20) or []
            assert len(colours) > 16, f"{path} is blank"
            commonest = max(count for count, _ in colours)
            assert commonest < 0.97 * rgb.width * rgb.height, f"{path} is nearly one colour"
            # No horizontal scroll at phone width: the page fits (tables scroll inside themselves).
            if width == 390:
                assert rgb.width <= 390 + 1, f"{path} is {rgb.width} px wide"
    # Readable at 320 px, the narrowest phone: nothing wider than the screen (tables scroll inside).
    await page.set_viewport_size({"width": 320, "height": 640})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 320, f"{name} overflows 320 px"
    await page.set_viewport_size({"width": 1280, "height": 900})


# --- the dialects, as clients call them -------------------------------------------------------------------


async def tokens_make(trio: Trio, email: str, password: str, app_id: str) -> tuple[int, dict[str, Any]]:
    response = await trio.gateway.post(
        "/v1/tokens", json={"email": email, "password": password, "appId": app_id}
    )
    return response.status, await response.json()


async def wialon(trio: Trio, svc: str, params: dict[str, Any], sid: str | None = None) -> dict[str, Any]:
    fields = {"svc": svc, "params": json.dumps(params)}
    if sid is not None:
        fields["sid"] = sid
    response = await trio.gateway.post("/wialon/ajax.html", data=fields)
    reply: dict[str, Any] = await response.json(content_type=None)
    return reply


async def refused_soon(check: Any, timeout: float = 3.0) -> None:
    """Wait until `check()` says refused (a revocation reaches every gateway within the verification
    cache's second)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "still accepted"
        await asyncio.sleep(0.1)


# --- the flows -------------------------------------------------------------------------------------------


async def test_sign_in_as_admin(page: Page, world: World) -> None:
    await page.goto(f"{world.base}/console/")
    assert page.url.endswith("/console/signin")
    await screenshot(page, "signin")
    # By keyboard alone: the username field has the focus, Tab goes on, Enter submits.
    await page.get_by_label("Username").focus()
    await page.keyboard.type("Admin")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(ADMIN_PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{world.base}/console/")
    # The skip link is the first stop, and takes the focus to the page's content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    assert await page.locator("h1").inner_text() == "Overview"
    # Issuance, verifications (accepted) and failed logins, each with its key in the legend.
    assert await page.locator("svg.th-chart polyline").count() == 3
    assert await page.locator("svg.th-chart .th-legend").all_text_contents() == [
        "Issued",
        "Verifications (accepted)",
        "Failed logins",
    ]


async def test_create_a_user(page: Page, world: World, trio: Trio) -> None:
    world.username = f"desk-{world.suffix}"
    world.email = f"{world.username}@example.com"
    await page.goto(f"{world.base}/console/users")
    await page.get_by_label("Username").fill(world.username)
    await page.get_by_label("E-mail").fill(world.email)
    await page.locator("#n-password").fill(world.password)
    await page.get_by_role("button", name="Create").click()
    row = page.locator("table.users tbody tr").filter(
        has=page.get_by_role("link", name=world.username, exact=True)
    )
    await row.wait_for()
    world.user_id = int(await row.locator("td.num").first.inner_text())
    await screenshot(page, "users")
    # Without a password, one is generated and shown once, ready to copy.
    await page.get_by_label("Username").fill(f"{world.username}-2")
    await page.get_by_role("button", name="Create").click()
    secret = page.locator("#secret")
    assert len(await secret.input_value()) >= 12
    await screenshot(page, "user-created")
    await page.goto(f"{world.base}/console/users/tree")
    assert await page.get_by_role("link", name=world.username, exact=True).count() == 1
    await screenshot(page, "users-tree")
    # The new account works in a dialect at once.
    session = await zabbix(trio, "user.login", {"username": world.username, "password": world.password})
    assert isinstance(session.get("result"), str), session


async def test_an_apps_quota_usage_moves_after_tokens_make(page: Page, world: World, trio: Trio) -> None:
    world.app_id = f"desk-app-{world.suffix}"
    await page.goto(f"{world.base}/console/apps")
    await page.get_by_label("App id").fill(world.app_id)
    await page.get_by_label("Daily quota").fill("5")
    await page.get_by_role("button", name="Create").click()
    await page.wait_for_url(re.compile(rf".*/console/apps/{world.app_id}\?ok=1$"))
    assert await page.get_by_text("No use today.").count() == 1
    for _ in range(2):
        status, body = await tokens_make(trio, world.email, world.password, world.app_id)
        assert status == 200, body
        world.access, world.refresh = body["data"]["accessToken"], body["data"]["refreshToken"]
    await page.reload()
    used = page.locator("table.usage td.used")
    assert (await used.inner_text()).strip() == "2 / 5"
    await screenshot(page, "app")
    await page.goto(f"{world.base}/console/apps")
    await screenshot(page, "apps")


async def test_find_a_zabbix_token_among_many_revoke_it_and_the_zabbix_api_refuses_it(
    page: Page, world: World, trio: Trio
) -> None:
    # Fifty tokens of an owner of their own (Admin's own tokens are other tests' business).
    owner = await add_account(trio)
    admin = (await zabbix(trio, "user.login", {"username": "Admin", "password": ADMIN_PASSWORD}))["result"]
    names = [f"ci-runner-{i:02d}-{world.suffix}" for i in range(50)]
    created = await zabbix(
        trio, "token.create", [{"name": name, "userid": str(owner.user_id)} for name in names], admin
    )
    ids = created["result"]["tokenids"]
    target = names[37]
    secret = (await zabbix(trio, "token.generate", [ids[37]], admin))["result"][0]["token"]
    assert "result" in await zabbix(trio, "token.get", {"countOutput": True}, secret)

    await page.goto(f"{world.base}/console/tokens")
    await page.get_by_label("Name").fill(target)
    await page.locator("#f-kind").select_option("zabbix")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.tokens tbody tr")
    await page.wait_for_url(re.compile(r".*q=ci-runner-37.*"))
    assert await rows.count() == 1
    await rows.first.get_by_role("checkbox").check()
    await page.get_by_role("button", name="Revoke selected").click()
    await page.get_by_text("Acted on: 1").wait_for()
    assert await rows.first.locator(".badge").inner_text() == "disabled"
    await screenshot(page, "tokens")

    async def refused() -> bool:
        reply = await zabbix(trio, "token.get", {"countOutput": True}, secret)
        error: dict[str, Any] = reply.get("error", {})
        return error.get("data") == "Not authorized."

    await refused_soon(refused)
    # The other 49 still work for their owner.
    enabled = {"search": {"name": world.suffix}, "filter": {"status": "0"}, "countOutput": True}
    assert (await zabbix(trio, "token.get", enabled, admin))["result"] == "49"


async def test_disable_a_user_and_every_credential_is_refused(page: Page, world: World, trio: Trio) -> None:
    session = (await zabbix(trio, "user.login", {"username": world.username, "password": world.password}))[
        "result"
    ]
    made = await zabbix(trio, "token.create", {"name": f"own-{world.suffix}"}, session)
    api_token = (await zabbix(trio, "token.generate", made["result"]["tokenids"], session))["result"][0][
        "token"
    ]
    assert "result" in await zabbix(trio, "token.get", {"countOutput": True}, api_token)
    check = await trio.gateway.get("/v1/tokens/check", headers={"Authorization": world.access})
    assert check.status == 200
    wialon_sid = (await wialon(trio, "core/login", {"user": world.username, "password": world.password}))[
        "eid"
    ]
    create = {"callMode": "create", "app": "desk", "at": 0, "dur": 0, "fl": -1, "p": "{}"}
    wialon_token = (await wialon(trio, "token/update", create, wialon_sid))["h"]
    assert "eid" in await wialon(trio, "token/login", {"token": wialon_token})

    await page.goto(f"{world.base}/console/users?q={world.username}")
    row = page.locator("table.users tbody tr").filter(
        has=page.get_by_role("link", name=world.username, exact=True)
    )
    await row.locator("summary").click()
    await row.get_by_role("button", name="Disable").click()
    await page.get_by_text("Done.").wait_for()
    assert await row.locator(".badge").inner_text() == "disabled"

    async def all_refused() -> bool:
        zabbix_session = await zabbix(trio, "token.get", {"countOutput": True}, session)
        zabbix_token = await zabbix(trio, "token.get", {"countOutput": True}, api_token)
        access = await trio.gateway.get("/v1/tokens/check", headers={"Authorization": world.access})
        refresh = await trio.gateway.post("/v1/tokens/refresh", headers={"Refresh": world.refresh})
        login = await zabbix(trio, "user.login", {"username": world.username, "password": world.password})
        status, _ = await tokens_make(trio, world.email, world.password, world.app_id)
        wialon_session = await wialon(trio, "token/list", {}, wialon_sid)
        wialon_login = await wialon(trio, "token/login", {"token": wialon_token})
        return (
            "error" in zabbix_session
            and "error" in zabbix_token
            and access.status == 401
            and refresh.status == 401
            and "error" in login
            and status == 401
            and wialon_session.get("error") == 1
            and wialon_login.get("error") == 7
        )

    await refused_soon(all_refused)


async def test_create_twenty_vouchers_and_open_the_print_sheet(page: Page, world: World) -> None:
    await page.goto(f"{world.base}/console/vouchers")
    await page.get_by_label("How many").fill("20")
    await page.get_by_label("Lifetime (s, 0 = none)").fill("7200")
    await page.get_by_role("button", name="Create").click()
    await page.locator("ol.sheet").wait_for()
    assert await page.locator("ol.sheet li.voucher").count() == 20
    assert await page.locator("ol.sheet svg.th-qr").count() == 20
    codes = await page.locator("ol.sheet .code").all_inner_texts()
    assert all(re.fullmatch(r"\d{5} \d{5}", code) for code in codes)
    assert "2 h from first use" in await page.locator("ol.sheet .life").first.inner_text()
    await screenshot(page, "voucher-sheet")
    # In print, the console's frame goes and the sheet stays.
    await page.emulate_media(media="print")
    await page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    await page.screenshot(path=str(SCREENSHOTS / "voucher-sheet-print.png"))
    assert not await page.locator("header.top").is_visible()
    assert await page.locator("ol.sheet").is_visible()
    pdf = await page.pdf(path=str(SCREENSHOTS / "voucher-sheet.pdf"), format="A4")
    assert pdf.startswith(b"%PDF")
    await page.emulate_media(media="screen")
    await page.goto(f"{world.base}/console/vouchers")
    await screenshot(page, "vouchers")


async def test_find_the_failed_logins_in_the_audit_page(page: Page, world: World, trio: Trio) -> None:
    wrong = await zabbix(trio, "user.login", {"username": "Admin", "password": f"wrong-{world.suffix}"})
    assert "error" in wrong
    await page.goto(f"{world.base}/console/audit")
    await page.get_by_label("Event").fill("login_failed")
    await page.get_by_label("User id").fill("1")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r".*event=login_failed.*"))
    rows = page.locator("table.audit tbody tr", has_text="login_failed")
    assert await rows.count() >= 1
    assert "127.0.0.1" in await rows.first.inner_text()
    # The subject is named, not a bare id (the row's link filters by that user).
    subject = rows.first.locator("td a[href='/console/audit?user_id=1']")
    assert "Admin" in await subject.all_inner_texts()
    await screenshot(page, "audit")
    # The disabled user's rows name it too.
    await page.goto(f"{world.base}/console/audit?user_id={world.user_id}")
    assert world.username in await page.locator("table.audit tbody").inner_text()
    # And the disabled user's refused logins, with the reason the dialects do not tell.
    await page.goto(f"{world.base}/console/audit?event=login_failed&user_id={world.user_id}")
    assert "disabled" in await page.locator("table.audit tbody").inner_text()


async def test_the_overview_counts_what_the_flows_made(page: Page, world: World, trio: Trio) -> None:
    # The flows' credential checks, flushed now rather than at the gateway's next 5 s tick.
    await trio.gateway.app[verification_counter_key].flush()
    # A super_admin's summary is a count over every token, reused by the registry for 10 s.
    zabbix = page.locator("table tbody tr", has_text="zabbix").locator("td.num").last
    deadline = time.monotonic() + 12
    await page.goto(f"{world.base}/console/")
    while int(await zabbix.inner_text()) < 51:
        assert time.monotonic() < deadline, "the overview never counted the flows' tokens"
        await asyncio.sleep(0.5)
        await page.reload()
    vouchers = page.locator("table tbody tr", has_text="voucher").locator("td.num").last
    assert int(await vouchers.inner_text()) >= 20
    issued = page.locator(".tile .big").first
    assert int(await issued.inner_text()) >= 71
    verified = page.locator(".tile .big").nth(1)
    assert int(await verified.inner_text()) > 0
    assert await page.locator("svg.th-chart polyline").count() == 3
    await screenshot(page, "overview")
    # The README's picture of the console (docs/console.png) is a copy of this one.
    await page.screenshot(path=str(SCREENSHOTS / "console.png"))


async def test_the_console_speaks_russian(page: Page, world: World) -> None:
    await page.goto(f"{world.base}/console/tokens?lang=ru")
    assert await page.locator("h1").inner_text() == "Токены"
    assert await page.locator("html").get_attribute("lang") == "ru"
    await screenshot(page, "tokens-ru")
    await page.goto(f"{world.base}/console/?lang=en")
