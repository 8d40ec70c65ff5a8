"""JSON logs, one object per line, each carrying the request id of the request being served.

The gateway gives every public request an id (or keeps a sane `X-Request-Id` from the client) and
passes it on every internal call, so one grep follows a request through all services.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import sys
import time
from typing import cast

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from shared.workers import WORKER_VARIABLE

REQUEST_ID_HEADER = "X-Request-Id"
NO_REQUEST = "-"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NO_REQUEST)

# A request id from outside is kept only if it looks like one: it lands in every log line.
# It must start with a letter or digit, so it is never mistaken for the "-" of "no request".
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

_BLANK_RECORD = cast(dict[str, object], vars(logging.LogRecord("", 0, "", 0, "", (), None)))
_STANDARD_ATTRS = frozenset(_BLANK_RECORD) | {"message", "asctime"}


# New request ids: this process's random 64-bit prefix and a counter. Unique across processes and
# restarts without a random draw (a system call) per request; ids correlate logs, they guard nothing.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"  # 32 hex digits, as uuid4().hex was


def current_request_id() -> str:
    """The id of the request being served, or a new one for work that no request started."""
    request_id = request_id_var.get()
    return request_id if request_id != NO_REQUEST else new_request_id()


def acceptable_request_id(value: str | None) -> bool:
    return value is not None and _REQUEST_ID_RE.fullmatch(value) is not None


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        # Which of the service's worker processes wrote the line, when it runs several.
        self.worker = os.environ.get(WORKER_VARIABLE)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            **({} if self.worker is None else {"worker": self.worker}),
            "logger": record.name,
            "request_id": request_id_var.get(),
            "msg": record.getMessage(),
        }
        # What a caller passed as `extra=` lands in the record's attributes, any object at all.
        attributes = cast(dict[str, object], record.__dict__)
        entry.update({k: v for k, v in attributes.items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs each request its HTTP parser refuses at ERROR, with a traceback that quotes the
    offending header line: a client's token or key, when that is the line with a stray CR or LF.
    The client has its 400; the log keeps one line saying so, without the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "refused a malformed HTTP request: %s", (type(exc).__name__,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())
