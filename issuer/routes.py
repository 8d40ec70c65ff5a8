"""The issuer's internal API: sessions now; access/refresh pairs and quotas join it later."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from issuer.keys import sessions_key, throttle_key
from issuer.redis_keys import MAX_SESSION_IDLE_S, MIN_SESSION_IDLE_S, REALM_PATTERN
from shared.internal import json_response, read_model

Realm = Annotated[str, Field(pattern=f"^{REALM_PATTERN}$")]
SessionId = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenSession(_Body):
    realm: Realm
    idle: Annotated[int, Field(ge=MIN_SESSION_IDLE_S, le=MAX_SESSION_IDLE_S)]
    password: str
    username: str | None = None
    email: str | None = None
    client_addr: Annotated[str, Field(max_length=64)] = "-"


class SessionRef(_Body):
    realm: Realm
    session_id: SessionId


async def open_session(request: web.Request) -> web.Response:
    body = await read_model(request, OpenSession)
    session_id, user = await request.app[sessions_key].open(
        body.realm, body.idle, body.password, body.client_addr, username=body.username, email=body.email
    )
    return json_response({"session_id": session_id, "user": user}, status=201)


async def resolve_session(request: web.Request) -> web.Response:
    body = await read_model(request, SessionRef)
    user = await request.app[sessions_key].resolve(body.realm, body.session_id)
    return json_response({"user": user})


async def end_session(request: web.Request) -> web.Response:
    body = await read_model(request, SessionRef)
    ended = await request.app[sessions_key].end(body.realm, body.session_id)
    return json_response({"ended": ended})


class Attempt(_Body):
    """Something a caller lets only a few failures of through, e.g. guessing a voucher code."""

    realm: Realm
    subjects: dict[Annotated[str, Field(pattern="^[a-z_]{1,32}$")], Annotated[str, Field(max_length=256)]]


async def check_attempt(request: web.Request) -> web.Response:
    body = await read_model(request, Attempt)
    await request.app[throttle_key].check(body.realm, body.subjects)
    return json_response({"allowed": True})


async def record_failed_attempt(request: web.Request) -> web.Response:
    body = await read_model(request, Attempt)
    await request.app[throttle_key].record_failure(body.realm, body.subjects)
    return json_response({"recorded": True})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/attempts/check", check_attempt)
    app.router.add_post("/v1/attempts/failed", record_failed_attempt)
    app.router.add_post("/v1/sessions", open_session)
    app.router.add_post("/v1/sessions/resolve", resolve_session)
    app.router.add_post("/v1/sessions/end", end_session)
