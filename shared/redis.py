"""Redis for every service: one factory for the clients, the revocation channel's subscriber, and the
write that is acknowledged only once a replica has it.

One Redis (the default) or a Redis Cluster (TOKENHUB_REDIS_CLUSTER=true, REDIS_URL naming any one of
its nodes). The services talk to either through the same commands: what a cluster needs of them is
kept by the keys (issuer/redis_keys.py, gateway/redis_keys.py: whatever one script or pipeline
touches shares one hash tag, so one slot) and by what is never used (KEYS, SELECT, MULTI across
slots, multi-key commands across slots).

Pub/sub in a cluster: a classic PUBLISH, from a client or from a script, is broadcast over the
cluster bus to every node, replicas included, so a subscriber connected to any one node hears every
message. The subscriber is therefore a plain connection to one node taken from the cluster's
topology; when that node dies, the next attempt takes another one (`Subscriber`). redis-py's own
ClusterPubSub is not used: it pins a channel's subscription to the node of the channel's slot and
does not move it when that node dies.

Writes in a cluster: Redis replicates asynchronously, so a master killed right after answering can
take an acknowledged write with it, and its promoted replica would, say, give back a quota unit or
accept a refresh token a second time. A write whose loss would matter (`replicated`) is therefore
followed, on the same connection, by WAIT for one replica of its slot (when the slot has one): the
caller hears of it only once a replica has it, and a failover promotes a replica that does.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias, cast
from urllib.parse import urlsplit, urlunsplit

import redis.exceptions
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.typing import EncodableT

from shared.settings import Settings

log = logging.getLogger(__name__)

# Either client: the commands the services use are the same on both.
AnyRedis: TypeAlias = Redis | RedisCluster

# Redis not answering, or answering "not now": the errors a request meets while a store is down, too
# slow, or (a cluster) failing over. Each is "try again" to a caller. (redis-py's exception classes
# have untyped constructors, hence the casts.)
UNAVAILABLE: tuple[type[Exception], ...] = (
    cast(type[Exception], redis.exceptions.ConnectionError),
    cast(type[Exception], redis.exceptions.TimeoutError),
    # CLUSTERDOWN, TRYAGAIN, MOVED/ASK past redis-py's redirections: the cluster is reconfiguring.
    cast(type[Exception], redis.exceptions.ClusterError),
    cast(type[Exception], redis.exceptions.ClusterDownError),
    cast(type[Exception], redis.exceptions.TryAgainError),
    cast(type[Exception], redis.exceptions.AskError),
    # No node answered the topology query, or a slot has no master (not a RedisError).
    cast(type[Exception], redis.exceptions.RedisClusterException),
)

# How long a write waits for a replica of its slot to have it. A replica that is alive answers in
# well under a millisecond; this bounds what a dead one (not yet declared failed) costs each write.
WAIT_TIMEOUT_MS = 500
# Replicas a write waits for, where its slot has any: one that has it is the one a failover promotes.
WAIT_REPLICAS = 1

UNREPLICATED = Counter(
    "tokenhub_redis_unreplicated_writes_total",
    "Writes to a Redis Cluster acknowledged before a replica confirmed them (WAIT timed out).",
)

# One command as redis-py sends it: its name, then its arguments.
Command = Sequence[EncodableT]


def redis_client(
    settings: Settings,
    *,
    max_connections: int | None = None,
    socket_timeout: float | None = None,
    health_check_interval: float = 0,
) -> AnyRedis:
    """The client every service uses: one Redis, or (TOKENHUB_REDIS_CLUSTER) a Redis Cluster found
    through the node REDIS_URL names. `max_connections` is per node in a cluster. Replies are bytes
    (nothing is decoded)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.store_timeout,
        "socket_timeout": socket_timeout,
        "health_check_interval": health_check_interval,
    }
    if max_connections is not None:
        options["max_connections"] = max_connections
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    return Redis.from_url(settings.redis_url, **options)


async def prepare(client: AnyRedis) -> None:
    """Let a cluster client learn the topology now, before requests need it. (Left to the first
    commands, redis-py 8.1 refreshes it under all of them at once and recycles the connections they
    are using: a burst at start meets "connection closed" errors.) Nothing to do for one Redis; a
    cluster that does not answer yet is learnt later, at the first command, as redis-py does."""
    if isinstance(client, RedisCluster):
        with contextlib.suppress(*UNAVAILABLE, OSError):
            await client.initialize()


def is_cluster(client: AnyRedis) -> bool:
    return isinstance(client, RedisCluster)


# --- writes acknowledged once a replica has them ---------------------------------------------------


async def replicated(client: AnyRedis, key: str, command: Command) -> object:
    """Run one write command on `key`'s slot; in a cluster, answer only once a replica of that slot
    has it too (WAIT on the same connection), or WAIT_TIMEOUT_MS has passed.

    Nothing is retried once it may have run: a connection lost after sending is the caller's "try
    again" (the write may or may not be there, as after any lost reply). A command that surely did
    not run (refused before sending, MOVED after a failover) is sent again once, to the slot's
    master as the refreshed topology names it."""
    if not isinstance(client, RedisCluster):
        return await _execute(client, command)
    await client.initialize()  # no-op once the topology is known (and not in doubt)
    for attempt in (1, 2):
        node = client.get_node_from_key(key)
        if node is None:  # pragma: no cover (redis-py raises SlotNotCoveredError instead)
            raise redis.exceptions.SlotNotCoveredError(f"no node serves {key!r}")
        has_replica = client.get_node_from_key(key, replica=True) is not None
        commands = [PipelineCommand(0, *command)]
        if has_replica:
            commands.append(PipelineCommand(1, "WAIT", WAIT_REPLICAS, WAIT_TIMEOUT_MS))
        try:
            await node.execute_pipeline(commands)
        except redis.exceptions.MaxConnectionsError:
            raise  # this process's own limit, not the node's failure
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # Raised while connecting or sending, before any reply: nothing ran. (A reply lost
            # after sending is in the command's result instead.)
            await _refresh(client, node)
            if attempt == 2:
                raise
            continue
        result = commands[0].result
        if isinstance(result, redis.exceptions.MovedError) and attempt == 1:
            await _refresh(client, node)  # the slot moved (a failover, a resharding): it did not run
            continue
        if isinstance(result, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            await _refresh(client, node)
        if isinstance(result, Exception):
            raise result
        if has_replica:
            _check_acknowledged(commands[1].result, node)
        return result
    raise AssertionError("unreachable")  # pragma: no cover


async def _execute(client: Redis, command: Command) -> object:
    execute = cast(Callable[..., Awaitable[object]], client.execute_command)
    return await execute(*command)


def _check_acknowledged(acknowledged: object, node: ClusterNode) -> None:
    """WAIT's answer: how many replicas have the write. Too few (the replica is down, or slow beyond
    the timeout) leaves it acknowledged on the master only, as without a cluster: counted and logged,
    not refused, so that a lost replica does not stop its master's writes (Redis's own
    min-replicas-to-write is the setting for operators who want that)."""
    if isinstance(acknowledged, Exception):
        raise acknowledged
    if not isinstance(acknowledged, int) or acknowledged < WAIT_REPLICAS:
        UNREPLICATED.inc()
        log.warning("a write to %s was not confirmed by a replica within %d ms", node.name, WAIT_TIMEOUT_MS)


async def _refresh(client: RedisCluster, failed: ClusterNode) -> None:
    """Ask the cluster who serves what now (after a node failed or a slot moved). Concurrent
    requests share one refresh (redis-py's topology lock); a failing one leaves the old topology."""
    with contextlib.suppress(*UNAVAILABLE, OSError):
        await client.nodes_manager.initialize(last_failed_node_name=failed.name)


# --- the revocation channel's subscriber ---------------------------------------------------------


class Subscriber:
    """Connections on which to SUBSCRIBE. One Redis: its client's own pub/sub. A cluster: a plain
    connection to one node of its topology (module docstring), the first one at random (gateways
    spread over the nodes); each new connection after a lost one goes to the next node, so a dead
    node is left behind after one attempt."""

    def __init__(self, client: AnyRedis, url: str, connect_timeout: float) -> None:
        self._client = client
        self._url = url
        self._connect_timeout = connect_timeout
        self._last: str | None = None  # the node of the last connection (cluster)

    @contextlib.asynccontextmanager
    async def pubsub(self) -> AsyncIterator[PubSub]:
        if not isinstance(self._client, RedisCluster):
            async with self._client.pubsub() as pubsub:
                yield pubsub
            return
        node = await self._next_node(self._client)
        connection = Redis.from_url(
            node_url(self._url, node.host, int(node.port)),
            socket_connect_timeout=self._connect_timeout,
            health_check_interval=1,  # a dead node is noticed within about a second
        )
        try:
            async with connection.pubsub() as pubsub:
                yield pubsub
        finally:
            await connection.aclose()

    @property
    def node(self) -> str | None:
        """The node the last subscription went to (cluster), as host:port."""
        return self._last

    async def _next_node(self, cluster: RedisCluster) -> ClusterNode:
        if self._last is not None:  # a subscription was lost: the topology may have changed
            with contextlib.suppress(*UNAVAILABLE, OSError):
                await cluster.nodes_manager.initialize(last_failed_node_name=self._last)
        await cluster.initialize()
        nodes = sorted(cluster.get_nodes(), key=lambda n: n.name)
        if not nodes:
            raise redis.exceptions.ConnectionError("no node of the Redis Cluster is known")
        names = [n.name for n in nodes]
        if self._last in names:
            node = nodes[(names.index(self._last) + 1) % len(nodes)]
        else:  # the first: any node, so that many gateways spread over the cluster
            node = random.choice(nodes)
        self._last = node.name
        return node


def node_url(url: str, host: str, port: int) -> str:
    """`url` (REDIS_URL: its scheme, credentials and options) pointed at one node of the cluster."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{address}" if credentials else address))


def sweeper_last_pass_key(prefix: str) -> str:
    """The unix time (seconds) the sweeper's last complete pass ended; the admin summary shows it.
    No TTL: one key per deployment, overwritten by every pass."""
    return f"{prefix}sweeper:last_pass"
