"""What keeps the console's sessions and forms safe: the session cookie (HttpOnly, SameSite=Strict,
Secure over TLS), CSRF tokens bound to the session, and the headers every console response carries."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from aiohttp import web

from gateway.keys import settings_key

SESSION_COOKIE = "th_console"
# Before sign-in there is no session to bind a form to: a random value of its own, in a cookie,
# binds the sign-in form instead (a login CSRF would sign the victim in as the attacker).
PRESESSION_COOKIE = "th_console_pre"
LANG_COOKIE = "th_console_lang"
COOKIE_PATH = "/console/"
CSRF_FIELD = "csrf"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _csrf_key(request: web.Request) -> bytes:
    # A key of its own, derived from the server's pepper (production refuses the default one).
    pepper = request.config_dict[settings_key].pepper.encode()
    return hmac.new(pepper, b"tokenhub console csrf v1", hashlib.sha256).digest()


def csrf_token(request: web.Request, bound_to: str) -> str:
    """The CSRF token of the forms shown to the holder of `bound_to` (a session or pre-session value)."""
    return hmac.new(_csrf_key(request), bound_to.encode(), hashlib.sha256).hexdigest()


def csrf_valid(request: web.Request, bound_to: str | None, given: str | None) -> bool:
    if not bound_to or not given:
        return False
    return hmac.compare_digest(csrf_token(request, bound_to), given)


def new_presession() -> str:
    return secrets.token_urlsafe(24)


def over_tls(request: web.Request) -> bool:
    """Whether the browser reached us over TLS: our own socket, or a trusted proxy that says so."""
    if request.secure:
        return True
    trusted = request.config_dict[settings_key].trusted_proxies
    if not trusted or request.remote is None:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    if not any(peer in network for network in trusted):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "")
    # The proxy nearest to us wrote the right-most value.
    return proto.split(",")[-1].strip().lower() == "https"


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=over_tls(request),
    )


def clear_cookie(request: web.Request, response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=COOKIE_PATH, secure=over_tls(request), httponly=True, samesite="Strict")


def add_security_headers(response: web.StreamResponse, *, page: bool) -> None:
    response.headers.update(SECURITY_HEADERS)
    if page:
        response.headers["Cache-Control"] = "no-store"
