"""The machine's ceilings for this stack, each an aiohttp app on uvloop in its own process like
each service:

    python -m bench.hello PORT              a bare hello-world: the ceiling of any request
    python -m bench.hello PORT --hop URL    answers each request by fetching URL through one
                                            keep-alive aiohttp.ClientSession, as the gateway calls
                                            the registry and the issuer: the ceiling of any
                                            request that makes one internal call
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

session_key = web.AppKey("session", aiohttp.ClientSession)


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


def hop_app(target: str) -> web.Application:
    async def hop(request: web.Request) -> web.Response:
        async with request.app[session_key].get(target) as reply:
            return web.Response(body=await reply.read(), status=reply.status)

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[session_key] = aiohttp.ClientSession()
        yield
        await app[session_key].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/", hop)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--hop", metavar="URL", help="answer by fetching URL (one internal call)")
    args = parser.parse_args()
    if args.hop:
        app = hop_app(args.hop)
    else:
        app = web.Application()
        app.router.add_get("/", hello)
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main()
