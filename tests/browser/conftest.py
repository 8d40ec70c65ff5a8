"""The browser tests serve the in-process trio (tests/inprocess/conftest.py) on a real loopback port
and drive Debian's chromium at it with Playwright."""

from tests.inprocess.conftest import trio

__all__ = ["trio"]
