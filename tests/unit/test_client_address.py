"""Who the client is behind reverse proxies (issue 13, item 6): X-Forwarded-For is believed only
as far as trusted proxies wrote it, read from the right."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.dialects.common import forwarded_client
from shared.settings import Network

TRUSTED: list[Network] = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("header_lines", "client"),
    [
        (["203.0.113.7"], "203.0.113.7"),
        # The client wrote the left part itself: only the right-most untrusted hop counts.
        (["198.51.100.1, 203.0.113.7"], "203.0.113.7"),
        (["1.1.1.1, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        # Several header lines are one list, in order.
        (["198.51.100.1", "203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        # Every hop trusted: the left-most is the client (an internal caller).
        (["10.1.1.1, 10.0.0.2"], "10.1.1.1"),
        # A hop that is no address stops the walk at the trusted proxy to its right.
        (["203.0.113.7, not-an-ip, 10.0.0.2"], "10.0.0.2"),
        (["1.2.3.4:5678"], None),
        ([""], None),
        ([], None),
        # IPv6, written in any form, comes out in one form.
        (["2001:DB8::1, fd00::2"], "2001:db8::1"),
        # Bytes that are not UTF-8 arrive as lone surrogates: no address.
        (["\udcff\udcfe"], None),
    ],
)
def test_the_right_most_untrusted_hop_is_the_client(header_lines: list[str], client: str | None) -> None:
    assert forwarded_client(header_lines, TRUSTED) == client
