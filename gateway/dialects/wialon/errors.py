"""Wialon Remote API errors: `{"error": N}`, with a `"reason"` where it helps, always HTTP 200."""

from __future__ import annotations

from gateway.dialects.common import JsonObject

OK = 0  # core/logout's answer
INVALID_SESSION = 1
INVALID_SERVICE = 2
INVALID_INPUT = 4
UNKNOWN_ERROR = 6
ACCESS_DENIED = 7
INVALID_USER_OR_PASSWORD = 8
BATCH_STOPPED = 10  # core/batch with flags 1: the calls after the first failure
TOO_MANY_REQUESTS = 1003

UNAVAILABLE = "service temporarily unavailable, try again later"


class WialonError(Exception):
    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(reason or str(code))
        self.code = code
        self.reason = reason

    def body(self) -> JsonObject:
        body: JsonObject = {"error": self.code}
        if self.reason:
            body["reason"] = self.reason
        return body


def invalid(reason: str) -> WialonError:
    return WialonError(INVALID_INPUT, reason)


def denied(reason: str | None = None) -> WialonError:
    return WialonError(ACCESS_DENIED, reason)
