"""Wialon Remote API — `GET|POST /wialon/ajax.html?svc=...&params={json}&sid=...` (DESIGN §2.2;
decisions in docs/wialon.md).

- `envelope`: the request fields, sessions, and the translation of the services' domain errors
  into Wialon's numbers;
- `params`: the parameters as the Remote API reference types them;
- `core`, `token`: the services, one function each, reading like the reference;
- here: which `svc` name runs which service (matched exactly, as Wialon does).
"""

from gateway.dialects.wialon import core, token
from gateway.dialects.wialon.envelope import Envelope, Services

SERVICES: Services = {
    "core/login": core.login,
    "core/logout": core.logout,
    "core/batch": core.batch,
    "token/login": token.login,
    "token/update": token.update,
    "token/list": token.list_tokens,
}

_ENVELOPE = Envelope(SERVICES)
handle = _ENVELOPE.handle
avl_evts = _ENVELOPE.avl_evts

__all__ = ["SERVICES", "avl_evts", "handle"]
