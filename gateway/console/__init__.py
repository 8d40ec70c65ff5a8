"""The operator console at /console/ (issue 17): server-rendered pages over the admin service."""

from gateway.console.frame import setup_console

__all__ = ["setup_console"]
