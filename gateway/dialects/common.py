"""What every dialect reads from a request the same way: who the client is, and header text that is
safe to use. (Each dialect's own envelope is in its module.)"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from gateway.keys import settings_key
from shared.settings import Network

NO_ADDRESS = "-"


def header_text(request: web.Request, name: str) -> str | None:
    """A header's value, or None when it is absent or is not UTF-8. aiohttp hands over bytes that are
    not UTF-8 as lone surrogates, which no secret of ours contains and no JSON encoder accepts: such
    a value is treated as not given, and so as no credential at all."""
    value = request.headers.get(name)
    if value is None or value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return None
    return value


def client_addr(request: web.Request) -> str:
    """The client's address, for throttles and the audit log: the socket's peer, unless that peer is
    one of TOKENHUB_TRUSTED_PROXIES; then the right-most address in X-Forwarded-For that is not a
    trusted proxy (every hop to its right was appended by a proxy we trust; anything to its left
    the client may have written itself)."""
    peer = request.remote or NO_ADDRESS
    trusted = request.app[settings_key].trusted_proxies
    if not trusted or not _within(peer, trusted):
        return peer
    return forwarded_client(request.headers.getall("X-Forwarded-For", []), trusted) or peer


def forwarded_client(header_lines: Sequence[str], trusted: Sequence[Network]) -> str | None:
    """The right-most hop of X-Forwarded-For outside `trusted`; if every hop is trusted, the left-most.
    A hop that is not an address ends the walk at the trusted hop to its right: a proxy we trust
    would not have written it, so it came from the client. None without any usable hop."""
    hops = [hop.strip() for line in header_lines for hop in line.split(",")]
    vouched: str | None = None
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return vouched
        if not any(address in network for network in trusted):
            return str(address)
        vouched = str(address)
    return vouched


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
