"""The issuer's Lua scripts (issuer/lua/), loaded once per client, and the Redis replies they give.

redis-py types every reply as Any; the shapes are fixed by our own scripts and commands, so they are
said once here, where a reply enters Python, and everything past this point is typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import cast

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT

_LUA = Path(__file__).parent / "lua"

# One element of a script's reply: Lua strings arrive as bytes, Lua numbers as ints.
Field = bytes | int
# A script's reply: an array, or None for Lua's false.
ScriptReply = list[Field] | None

# Redis not answering: the errors a request meets when its store is down or too slow. (redis-py's
# exception classes have untyped constructors, hence the casts.)
REDIS_DOWN: tuple[type[Exception], ...] = (
    cast(type[Exception], redis.exceptions.ConnectionError),
    cast(type[Exception], redis.exceptions.TimeoutError),
)


class Script:
    def __init__(self, client: Redis, name: str) -> None:
        self._script = client.register_script((_LUA / f"{name}.lua").read_text())

    async def __call__(self, keys: Sequence[str], args: Sequence[EncodableT]) -> ScriptReply:
        return await cast(Awaitable[ScriptReply], self._script(keys=keys, args=args))


def text(value: Field) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def execute(pipe: Pipeline) -> list[object]:
    """Run a pipeline's commands; their replies in order, each as its command gives it."""
    return await cast(Awaitable[list[object]], pipe.execute())
