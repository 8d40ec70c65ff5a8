"""The console's cookies are Secure exactly when the browser reached us over TLS: our own socket, or a
trusted proxy that says `X-Forwarded-Proto: https` (a client's own claim is not believed)."""

from __future__ import annotations

import ssl
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.console.security import over_tls, set_cookie
from gateway.keys import settings_key
from shared.settings import Settings


def request(peer: str, proxies: str = "", proto: str | None = None, *, tls: bool = False) -> web.Request:
    app = web.Application()
    app[settings_key] = Settings.model_validate({"TOKENHUB_TRUSTED_PROXIES": proxies})
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: {"peername": (peer, 40000)}.get(
        name, default
    )
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    return make_mocked_request(
        "GET",
        "/console/",
        headers=headers,
        app=app,
        transport=transport,
        sslcontext=ssl.create_default_context() if tls else None,
    )


@pytest.mark.parametrize(
    ("peer", "proxies", "proto", "tls", "secure"),
    [
        ("203.0.113.9", "", None, False, False),
        ("203.0.113.9", "", None, True, True),
        ("203.0.113.9", "", "https", False, False),  # not a proxy of ours: its header means nothing
        ("10.0.0.2", "10.0.0.0/8", "https", False, True),
        ("10.0.0.2", "10.0.0.0/8", "http", False, False),
        ("10.0.0.2", "10.0.0.0/8", "https, http", False, False),  # the nearest proxy's word counts
        ("10.0.0.2", "10.0.0.0/8", "http, https", False, True),
    ],
)
def test_secure_cookies_follow_tls(
    peer: str, proxies: str, proto: str | None, tls: bool, secure: bool
) -> None:
    req = request(peer, proxies, proto, tls=tls)
    assert over_tls(req) is secure
    response = web.Response()
    set_cookie(req, response, "th_console", "value")
    morsel = response.cookies["th_console"]
    assert bool(morsel["secure"]) is secure
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
