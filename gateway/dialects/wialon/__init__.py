"""Wialon Remote API — `GET|POST /wialon/ajax.html?svc=...&params={json}&sid=...` (DESIGN §2.2;
decisions in docs/wialon.md).

- `envelope`: the request fields, the service table, sessions, and the translation of the services'
  domain errors into Wialon's numbers;
- `params`: the parameters as the Remote API reference types them;
- `core`, `token`: the services, one function each, reading like the reference.
"""

from gateway.dialects.wialon import core, token
from gateway.dialects.wialon.envelope import avl_evts, handle

__all__ = ["avl_evts", "core", "handle", "token"]
