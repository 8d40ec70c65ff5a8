"""The machine's ceiling for this stack: a bare aiohttp hello-world on uvloop, in its own process
like each service. `python -m bench.hello PORT`."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


def main() -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
