"""The issuer's Lua scripts (issuer/lua/), loaded once per client, and the Redis replies they give.

Every write the issuer makes that touches more than one key, or must be atomic, is one of these
scripts, and every script touches keys of one Redis Cluster slot (issuer/redis_keys.py). A script
whose effect must survive a failover (`replicated=True`) is, in a cluster, acknowledged only once a
replica of its slot has it (shared/redis.py).

redis-py types every reply as Any; the shapes are fixed by our own scripts and commands, so they are
said once here, where a reply enters Python, and everything past this point is typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

import redis.exceptions
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.typing import EncodableT

from shared.redis import UNAVAILABLE, AnyRedis, is_cluster, replicated

_LUA = Path(__file__).parent / "lua"

# One element of a script's reply: Lua strings arrive as bytes, Lua numbers as ints.
Field = bytes | int
# A script's reply: an array, or None for Lua's false.
ScriptReply = list[Field] | None

# Redis not answering (down, too slow, a cluster failing over): the errors a request meets when its
# store cannot serve it now.
REDIS_DOWN: tuple[type[Exception], ...] = UNAVAILABLE

SCRIPTS = tuple(sorted(path.stem for path in _LUA.glob("*.lua")))


class Script:
    def __init__(self, client: AnyRedis, name: str, *, replicated: bool = False) -> None:
        self.name = name
        self._client = client
        self._text = (_LUA / f"{name}.lua").read_text()
        self._script = client.register_script(self._text)
        self._cluster = is_cluster(client)
        self._replicated = replicated and self._cluster

    async def __call__(self, keys: Sequence[str], args: Sequence[EncodableT]) -> ScriptReply:
        if not self._cluster:
            return await cast(Awaitable[ScriptReply], self._script(keys=keys, args=args))
        # A cluster: a master that has not seen the script (new, or a replica just promoted) answers
        # NOSCRIPT, and it did not run; EVAL runs it there and leaves it cached. (redis-py's own
        # fallback loads it on every master first, which fails while one of them is down.)
        evalsha = ("EVALSHA", self._script.sha, len(keys), *keys, *args)
        evaluate = ("EVAL", self._text, len(keys), *keys, *args)
        try:
            reply = await self._run(keys[0], evalsha)
        except redis.exceptions.NoScriptError:
            reply = await self._run(keys[0], evaluate)
        return cast(ScriptReply, reply)

    async def _run(self, key: str, command: tuple[EncodableT, ...]) -> object:
        if self._replicated:
            return await replicated(self._client, key, command)
        run = cast(Callable[..., Awaitable[object]], self._client.execute_command)
        return await run(*command)


def text(value: Field) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def execute(pipe: Pipeline | ClusterPipeline) -> list[object]:
    """Run a pipeline's commands; their replies in order, each as its command gives it. (Issuer
    pipelines are never transactions: what must be atomic is a script.)"""
    return await cast(Awaitable[list[object]], pipe.execute())
