"""The registry's internal API. It speaks TokenHub's own vocabulary, never a dialect's."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from registry.keys import store_key
from shared.errors import InvalidInput
from shared.internal import json_response, read_json


class PasswordLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str
    username: str | None = None
    email: str | None = None


async def authenticate(request: web.Request) -> web.Response:
    try:
        body = PasswordLogin.model_validate(await read_json(request))
    except ValidationError as exc:
        raise InvalidInput("bad login request") from exc
    user = await request.app[store_key].authenticate(body.password, username=body.username, email=body.email)
    return json_response({"user": user.to_wire()})


async def get_user(request: web.Request) -> web.Response:
    try:
        user_id = int(request.match_info["user_id"])
    except ValueError as exc:
        raise InvalidInput("user id must be a number") from exc
    user = await request.app[store_key].user(user_id)
    return json_response({"user": user.to_wire()})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/users/authenticate", authenticate)
    app.router.add_get("/v1/users/{user_id}", get_user)
