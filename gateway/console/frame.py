"""The console's frame: its sub-application under /console/, the middleware every console request
passes (language, CSRF check on every POST, errors rendered as a page, security headers), and the
signed-in context a page handler gets."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography.exceptions import InvalidTag

from gateway.admin import service
from gateway.admin.service import Caller
from gateway.console import security
from gateway.console.i18n import LANGS, Lang, Translate, negotiate, translator
from gateway.keys import console_gateway_key, settings_key
from shared.errors import (
    BadCredentials,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Throttled,
    TokenHubError,
    Unavailable,
)
from shared.secrets import Sealer

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
SIGN_IN = f"{PREFIX}/signin"

lang_key = web.RequestKey("console_lang", str)


def gateway_of(request: web.Request) -> web.Application:
    """The gateway's own application, whose backends the admin service uses."""
    return request.config_dict[console_gateway_key]


def lang_of(request: web.Request) -> Lang:
    return "ru" if request.get(lang_key) == "ru" else "en"


def t_of(request: web.Request) -> Translate:
    return translator(lang_of(request))


@dataclass(frozen=True)
class Ctx:
    """What a signed-in page has: the caller, its session and the CSRF token of its forms."""

    request: web.Request
    caller: Caller
    session: str
    csrf: str

    @property
    def app(self) -> web.Application:
        return gateway_of(self.request)

    @property
    def t(self) -> Translate:
        return t_of(self.request)

    def render(self, template: str, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
        return render(self.request, template, {"me": self.caller, "csrf": self.csrf, **context}, status)

    # A voucher code is a secret shown once: forms refer to a voucher by its code sealed under the
    # server's seal key and bound to this session, never by the code itself.
    def seal_ref(self, code: str) -> str:
        sealed = _sealer(self.request).seal(code, b"console-voucher:" + self.session.encode())
        return base64.urlsafe_b64encode(sealed).decode()

    def open_ref(self, ref: str) -> str | None:
        try:
            sealed = base64.urlsafe_b64decode(ref.encode())
            return _sealer(self.request).unseal(sealed, b"console-voucher:" + self.session.encode())
        except (ValueError, binascii.Error, InvalidTag):
            return None


def _sealer(request: web.Request) -> Sealer:
    return Sealer.from_b64(request.config_dict[settings_key].seal_key)


def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    lang = lang_of(request)
    # The switch keeps the page's own query; a page answering a POST (a secret shown once) has none.
    switch = (
        {
            code: "?"
            + urlencode([*((k, v) for k, v in request.query.items() if k != "lang"), ("lang", code)])
            for code in LANGS
        }
        if request.method == "GET"
        else {}
    )
    full = {
        "lang": lang,
        "switch": switch,
        "t": translator(lang),
        "path": request.path,
        "request": request,
        "me": None,
        "csrf": "",
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def when_text(value: datetime | None, empty: str = "—", *, seconds: bool = False) -> str:
    """A moment as the console shows it: UTC, to the minute (or the second)."""
    if value is None:
        return empty
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def voucher_mask(code: str | None) -> str:
    """A voucher code as lists show it: enough to tell two apart, not enough to use one (the code is
    a secret shown once, on the sheet printed when it was made)."""
    if not code:
        return "—"
    return "•" * max(0, len(code) - 3) + code[-3:]


def path_part(value: str) -> str:
    """A value as one segment of a URL's path (a slash in it included)."""
    return quote(value, safe="")


FILTERS: dict[str, Callable[..., str]] = {"dt": when_text, "voucher_mask": voucher_mask, "part": path_part}

Page = Callable[[Ctx], Awaitable[web.StreamResponse]]


def signed_in(page: Page) -> Handler:
    """A handler for a page that needs a session: without a live one, to the sign-in page."""

    async def handler(request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(security.SESSION_COOKIE)
        caller: Caller | None = None
        if token:
            try:
                caller = await service.caller_from_session(gateway_of(request), token)
            except (BadCredentials, Forbidden, NotFound):
                caller = None
        if token is None or caller is None:
            raise web.HTTPSeeOther(SIGN_IN + ("?ended=1" if token else ""))
        ctx = Ctx(request, caller, token, security.csrf_token(request, token))
        return await page(ctx)

    return handler


# --- errors in people's words ------------------------------------------------------------------------


def error_text(exc: TokenHubError, t: Translate) -> str:
    """A service's refusal as a sentence for the page: its own message where it is meant for people
    (a validation problem, a name taken, a refusal), a general one where it is not."""
    if isinstance(exc, Throttled):
        return t("Too many failed attempts. Try again later.")
    if isinstance(exc, Unavailable):
        return t("The service is unavailable. Try again later.")
    # What kind of refusal, in the page's language; the service's own words (English) after it.
    if isinstance(exc, InvalidInput):
        return f"{t('Invalid input')}: " + ("; ".join(exc.problems) if exc.problems else exc.message)
    if isinstance(exc, Forbidden):
        return f"{t('Not allowed')}: {exc.message}"
    if isinstance(exc, Conflict):
        return f"{t('Conflict')}: {exc.message}"
    if isinstance(exc, NotFound):
        return f"{t('Not found')}: {exc.message}"
    return t("Something went wrong")


def _status_of(exc: TokenHubError) -> int:
    # Never 500: a failure behind us is "unavailable", anything else the caller's.
    return exc.status if 400 <= exc.status < 500 else 503


# --- the middleware ---------------------------------------------------------------------------------


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The language switch is a link (`?lang=ru`): a preference kept in a cookie, no state of ours.
    switch = request.query.get("lang")
    request[lang_key] = switch if switch in LANGS else negotiate(request)
    is_static = request.path.startswith(f"{PREFIX}/static/")
    try:
        if request.method == "POST" and not await _csrf_ok(request):
            response: web.StreamResponse = render(
                request,
                "error.html",
                {"message": t_of(request)("The form has expired. Reload the page and try again.")},
                403,
            )
        else:
            response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            security.add_security_headers(exc, page=True)
            if switch in LANGS and switch is not None:
                security.set_cookie(request, exc, security.LANG_COOKIE, switch)
            raise
        t = t_of(request)
        message = t("Page not found") if exc.status == 404 else exc.reason
        response = render(request, "error.html", {"message": message}, exc.status)
    except TokenHubError as exc:
        response = render(request, "error.html", {"message": error_text(exc, t_of(request))}, _status_of(exc))
    security.add_security_headers(response, page=not is_static)
    if switch in LANGS and switch is not None:
        security.set_cookie(request, response, security.LANG_COOKIE, switch)
    return response


async def _csrf_ok(request: web.Request) -> bool:
    form = await request.post()
    given = form.get(security.CSRF_FIELD)
    cookie = security.PRESESSION_COOKIE if request.path == SIGN_IN else security.SESSION_COOKIE
    bound_to = request.cookies.get(cookie)
    # A cross-site form post is refused by the token; a browser that says where it came from is
    # refused here too when that is another origin.
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and origin.split("://", 1)[-1] != request.host:
        return False
    return security.csrf_valid(request, bound_to, given if isinstance(given, str) else None)


def console_app(gateway: web.Application) -> web.Application:
    from gateway.console.pages import setup_pages

    console = web.Application(middlewares=[console_middleware])
    console[console_gateway_key] = gateway
    # The dialects' helpers (client_addr: trusted proxies) read the settings from request.app.
    console[settings_key] = gateway[settings_key]
    aiohttp_jinja2.setup(
        console,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        filters=FILTERS,
    )
    console.router.add_static("/static/", HERE / "static", name="static", append_version=True)
    setup_pages(console)
    return console


async def to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(f"{PREFIX}/")


def setup_console(app: web.Application) -> None:
    # `/console` without its slash is the console too (before the sub-application, which would
    # take the path and find nothing in it).
    app.router.add_get(PREFIX, to_console)
    app.add_subapp(PREFIX, console_app(app))
