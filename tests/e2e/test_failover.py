"""Failover and rolling restarts under a steady mixed load (issue 15), with real processes on loopback:
3 registries, 2 issuers and 2 gateways, and clients of all four dialects reading and writing all the
time.

- Failover: one registry (or one issuer) is killed with SIGKILL mid-run and started again a few
  seconds later. So that the kill lands with calls in its hands, as it does on a busy replica, it is
  frozen (SIGSTOP) for half a second first while a burst of writes comes on top of the load. No read
  fails: every read the load makes is idempotent, so a caller whose replica died under it asks
  another. A write whose replica died under it cannot be asked again (it may have been done): the
  client is told the dialect's own "try again", and the write is in the stores completely or not at
  all (Zabbix and Wialon tokens and vouchers in Postgres, ChatApp rotations in Redis; a tokens.make
  that was not acknowledged is not looked for, its family being unknown to the client). Every
  acknowledged write is in the stores afterwards, and the restarted replica serves again within 10 s.
- Rolling restart: every replica in turn (registries, then issuers, then gateways) is stopped with
  SIGTERM, which makes it drain before it stops, and started again once it has; no request fails at
  all.

The load's clients reach the gateways as they would through a load balancer (`Gateways`): requests
are spread over the gateways that are up; a gateway whose reply carries X-TokenHub-Draining is taken
out of rotation until its /readyz says 200 again (a new process), as an orchestrator's readiness
probe and a real balancer do; and a refused connection (nothing was sent) is tried on the other
gateway. Nothing else is retried: any other failure to answer counts as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import aiohttp
import asyncpg
import orjson
import pytest
import redis.asyncio

from issuer.pair_tokens import token_family
from issuer.redis_keys import RedisKeys
from shared.internal import DRAINING_HEADER
from shared.secrets import lookup_hash
from shared.settings import DEV_PEPPER
from tests.conftest import run_cli
from tests.e2e.harness import ServiceProcess, Topology, running_topology
from tests.e2e.test_chatapp import Account, add_account, add_app
from tests.e2e.wialon_client import TOKEN, WialonUser, new_user
from tests.e2e.zabbix_client import login, rpc
from tests.faults.load import (
    CHATAPP_UNAVAILABLE,
    HOTSPOT_UNAVAILABLE,
    PAIR_FIELDS,
    VOUCHERS_PER_CREATE,
    ZABBIX_UNAVAILABLE,
)

pytestmark = pytest.mark.e2e

Dialect = Literal["zabbix", "hotspot", "wialon", "chatapp"]
Kind = Literal["read", "write"]
Verdict = Literal["ok", "unavailable", "bad"]

# Wialon's "try again": unknown error (6) with the reason (gateway/dialects/wialon/errors.py).
WIALON_UNAVAILABLE = {"error": 6, "reason": "service temporarily unavailable, try again later"}
# Every operation of the load, and whether it changes anything.
OPERATIONS: dict[tuple[Dialect, str], Kind] = {
    ("zabbix", "token.create"): "write",
    ("zabbix", "token.get"): "read",
    ("hotspot", "createtokens"): "write",
    ("hotspot", "gettokens"): "read",
    ("wialon", "token/update create"): "write",
    ("wialon", "token/list"): "read",
    ("chatapp", "tokens.make"): "write",
    ("chatapp", "tokens.refresh"): "write",
    ("chatapp", "tokens/check"): "read",
}
LOAD_SECONDS = 20.0
WARM_UP_SECONDS = 3.0
DOWN_SECONDS = 3.0
# How long the replica to kill is frozen (SIGSTOP) before the kill: calls to it pile up meanwhile.
FREEZE_SECONDS = 0.5
# Writes of each kind sent at once while it is frozen.
BURST_SIZE = 8
# The Done-when bound: a restarted replica serves again within this long of being ready.
SERVES_AGAIN_BOUND = 10.0
# How often the balancer asks a gateway it took out of rotation whether it is back: slower than the
# services' drain quiet period (0.25 s), so probing a draining gateway does not keep it draining.
PROBE_INTERVAL = 0.5
# How long a request waits for some gateway to be up before it counts as failed.
NO_GATEWAY_WAIT = 20.0
# A Wialon user holds at most 100 tokens (registry/wialon_tokens.py): a client moves to a new
# sub-user before its current one could reach that.
WIALON_CREATES_PER_OWNER = 90
PROBES = frozenset({"/healthz", "/readyz", "/metrics", "unmatched"})


# --- the balancer in front of the gateways ---------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


class Gateways:
    """What a load balancer in front of the gateways does (a Kubernetes Service, compose behind a
    proxy): round robin over the gateways in rotation; one whose reply says it is draining, or that
    refuses a connection, leaves the rotation until a readiness probe of it says 200, and a request
    whose connection was refused (nothing was sent) goes to another gateway."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        # url -> the mark-down it is out for (a probe that began before a later mark-down must not
        # bring it back on the strength of an older process's answer).
        self._out: dict[str, int] = {}
        self._mark_downs = 0
        self._turn = 0
        self.refused = 0
        self.drained = 0

    def in_rotation(self, url: str) -> bool:
        return url not in self._out

    def _take_out(self, url: str) -> None:
        self._mark_downs += 1
        self._out[url] = self._mark_downs

    async def _pick(self) -> str | None:
        """The next gateway in rotation, waiting for one if none is."""
        deadline = time.monotonic() + NO_GATEWAY_WAIT
        while True:
            candidates = [u for u in self.urls if u not in self._out]
            if candidates:
                self._turn += 1
                return candidates[self._turn % len(candidates)]
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)

    async def send(self, http: aiohttp.ClientSession, method: str, path: str, **request: Any) -> Answer | str:
        """The status and decoded JSON body, or what went wrong instead of an answer."""
        while True:
            url = await self._pick()
            if url is None:
                return f"no gateway in rotation for {NO_GATEWAY_WAIT}s"
            try:
                async with http.request(method, url + path, **request) as response:
                    raw = await response.read()
                    status = response.status
                    draining = DRAINING_HEADER in response.headers
            except aiohttp.ClientConnectorError:
                # The connection was never made: nothing reached the gateway. Another one is asked
                # (this one is out of rotation until a probe finds it ready).
                self.refused += 1
                self._take_out(url)
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                return f"no answer from {url}: {type(exc).__name__} {exc}"
            if draining:
                self.drained += 1
                self._take_out(url)
            try:
                return Answer(status, orjson.loads(raw))
            except orjson.JSONDecodeError:
                return f"HTTP {status} with a body that is not JSON: {raw[:300]!r}"

    async def probe(self) -> None:
        """Bring back, once its /readyz says 200, every gateway out of rotation. Runs until cancelled."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                for url, mark_down in list(self._out.items()):
                    status = None
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with http.get(url + "/readyz") as response:
                            status = response.status
                    if status == 200 and self._out.get(url) == mark_down:
                        del self._out[url]
                await asyncio.sleep(PROBE_INTERVAL)

    async def wait_in_rotation(self, url: str, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not self.in_rotation(url):
            assert time.monotonic() < deadline, f"the balancer did not bring {url} back"
            await asyncio.sleep(0.05)


# --- the load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    dialect: Dialect
    operation: str
    verdict: Verdict
    started: float  # time.monotonic()
    ended: float
    detail: str = ""

    @property
    def kind(self) -> Kind:
        return OPERATIONS[(self.dialect, self.operation)]

    def __str__(self) -> str:
        took = self.ended - self.started
        return f"{self.dialect} {self.operation} {self.verdict} after {took:.2f}s {self.detail}"[:400]


@dataclass(frozen=True)
class World:
    """The topology, and the accounts the load uses."""

    topology: Topology
    env: dict[str, str]
    zabbix_api_token: str
    hotspot_api_key: str
    wialon_parent: WialonUser
    chat_account: Account
    chat_app: str

    @property
    def pepper(self) -> str:
        return self.env.get("TOKENHUB_PEPPER", DEV_PEPPER)


class Load:
    """Two clients per dialect, each a plain loop of a write and a read, every reply judged as it
    comes: `ok` (the dialect's success with the right content), `unavailable` (exactly the dialect's
    own "try again") or `bad` (anything else). Every write attempted is noted with what its reply
    acknowledged, to be compared with the stores afterwards."""

    def __init__(self, world: World, gateways: Gateways, *, clients: int = 2, pause: float = 0.05) -> None:
        self.world = world
        self.gateways = gateways
        self.tag = secrets.token_hex(3)
        self.clients = clients
        self.pause = pause
        self.outcomes: list[Outcome] = []
        # Name or u_id of each create -> what its reply acknowledged (None: not acknowledged).
        self.zabbix_creates: dict[str, int | None] = {}
        self.voucher_creates: dict[str, list[str] | None] = {}
        self.wialon_creates: dict[str, str | None] = {}
        # ChatApp: family -> refreshes of it acknowledged; refreshes not acknowledged (family, token).
        self.families: dict[str, int] = {}
        self.unsure_refreshes: list[tuple[str, str]] = []
        self.wialon_sid = ""
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self.wialon_sid = await self._wialon_login()
        for index in range(self.clients):
            wialon = WialonClient(self, index, self.wialon_sid)
            await wialon.next_owner()
            for run in (ZabbixClient(self, index).run, HotspotClient(self, index).run, wialon.run):
                self._tasks.append(asyncio.create_task(self._client(run)))
            self._tasks.append(asyncio.create_task(self._client(ChatAppClient(self, index).run)))
        self._tasks.append(asyncio.create_task(self.gateways.probe()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stopping.set()
        if not self._tasks:
            return
        *clients, probe = self._tasks
        self._tasks = []
        await asyncio.wait(clients, timeout=90)
        for task in (*clients, probe):
            task.cancel()
        results = await asyncio.gather(*clients, probe, return_exceptions=True)
        failures = [
            r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        if failures:
            raise failures[0]

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _client(self, run: Callable[[aiohttp.ClientSession], Awaitable[None]]) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4), timeout=timeout) as http:
            await run(http)

    async def _wialon_login(self) -> str:
        parent = self.world.wialon_parent
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            fields = {
                "svc": "core/login",
                "params": orjson.dumps({"user": parent.name, "password": parent.password}).decode(),
            }
            answer = await self.gateways.send(http, "POST", "/wialon/ajax.html", data=fields)
        assert isinstance(answer, Answer), answer
        assert isinstance(answer.body, dict), answer
        sid: str = answer.body["eid"]
        return sid

    async def pause_between_rounds(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.pause)

    def record(
        self, dialect: Dialect, operation: str, started: float, verdict: Verdict, detail: str = ""
    ) -> None:
        assert (dialect, operation) in OPERATIONS
        self.outcomes.append(Outcome(dialect, operation, verdict, started, time.monotonic(), detail))

    # --- reading the outcomes ------------------------------------------------------------------

    def of(self, kind: Kind, *verdicts: Verdict) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind and o.verdict in verdicts]

    def summary(self) -> str:
        unsure = Counter(f"{o.dialect} {o.operation}" for o in self.of("write", "unavailable"))
        return (
            f"{len(self.of('read', 'ok'))} reads ok, {len(self.of('read', 'unavailable', 'bad'))} failed; "
            f"{len(self.of('write', 'ok'))} writes acknowledged, "
            f"{len(self.of('write', 'unavailable'))} answered 'try again' {dict(unsure)}, "
            f"{len(self.of('write', 'bad'))} failed otherwise; "
            f"balancer: {self.gateways.drained} draining replies, {self.gateways.refused} refused connections"
        )


def _judge_status(
    answer: Answer | str, success: Callable[[Answer], bool], unavailable: Callable[[Answer], bool]
) -> tuple[Verdict, str]:
    if isinstance(answer, str):
        return "bad", answer
    if success(answer):
        return "ok", ""
    if unavailable(answer):
        return "unavailable", ""
    return "bad", f"HTTP {answer.status} {answer.body}"


@dataclass
class ZabbixClient:
    """token.create with a name of its own, then token.get of the newest token it was acknowledged."""

    load: Load
    index: int
    count: int = 0  # JSON-RPC ids
    creates: int = 0
    names: dict[int, str] = field(default_factory=dict)

    async def call(self, http: aiohttp.ClientSession, method: str, params: Any) -> tuple[Verdict, Any, str]:
        self.count += 1
        body = {
            "jsonrpc": "2.0",
            "method": method,
            "params": params,
            "auth": self.load.world.zabbix_api_token,
            "id": self.count,
        }
        headers = {"Content-Type": "application/json-rpc"}
        answer = await self.load.gateways.send(http, "POST", "/api_jsonrpc.php", json=body, headers=headers)
        if isinstance(answer, str):
            return "bad", None, answer
        reply = answer.body
        if answer.status != 200 or not isinstance(reply, dict) or reply.get("id") != self.count:
            return "bad", None, f"HTTP {answer.status} {reply}"
        if "result" in reply:
            return "ok", reply["result"], ""
        if reply.get("error") == ZABBIX_UNAVAILABLE:
            return "unavailable", None, ""
        return "bad", None, str(reply)

    async def create(self, http: aiohttp.ClientSession) -> None:
        load = self.load
        self.creates += 1
        name = f"fo-{load.tag}-z{self.index}-{self.creates}"
        load.zabbix_creates[name] = None
        started = time.monotonic()
        verdict, result, detail = await self.call(http, "token.create", {"name": name})
        if verdict == "ok":
            ids = result.get("tokenids") if isinstance(result, dict) else None
            if isinstance(ids, list) and len(ids) == 1 and str(ids[0]).isdigit():
                load.zabbix_creates[name] = int(ids[0])
                self.names[int(ids[0])] = name
            else:
                verdict, detail = "bad", f"token.create gave {result}"
        load.record("zabbix", "token.create", started, verdict, detail)

    async def get(self, http: aiohttp.ClientSession) -> None:
        token_id = max(self.names)
        started = time.monotonic()
        params = {"output": ["tokenid", "name"], "tokenids": [str(token_id)]}
        verdict, result, detail = await self.call(http, "token.get", params)
        if verdict == "ok" and result != [{"tokenid": str(token_id), "name": self.names[token_id]}]:
            verdict, detail = "bad", f"token.get of acknowledged token {token_id} gave {result}"
        self.load.record("zabbix", "token.get", started, verdict, detail)

    async def run(self, http: aiohttp.ClientSession) -> None:
        while not self.load.stopping:
            await self.create(http)
            if self.names and not self.load.stopping:
                await self.get(http)
            await self.load.pause_between_rounds()


@dataclass
class HotspotClient:
    """createtokens with a u_id of its own, then gettokens of the newest u_id it was acknowledged."""

    load: Load
    index: int
    creates: int = 0
    acknowledged: list[tuple[str, list[str]]] = field(default_factory=list)

    async def call(
        self, http: aiohttp.ClientSession, method: str, params: Any
    ) -> tuple[Verdict, list[Any], str]:
        body = {"api_token": self.load.world.hotspot_api_key, "method": method, "parameters": params}
        answer = await self.load.gateways.send(http, "POST", "/hotspot/api", json=body)
        if isinstance(answer, str):
            return "bad", [], answer
        reply = answer.body
        if answer.status == 200 and isinstance(reply, dict) and reply.get("status") == "success":
            data = reply.get("data")
            if isinstance(data, dict) and list(data) == [str(i) for i in range(len(data))]:
                return "ok", [data[str(i)] for i in range(len(data))], ""
        if (answer.status, reply) == (503, HOTSPOT_UNAVAILABLE):
            return "unavailable", [], ""
        return "bad", [], f"HTTP {answer.status} {reply}"

    async def create(self, http: aiohttp.ClientSession) -> None:
        load = self.load
        self.creates += 1
        u_id = f"fo-{load.tag}-h{self.index}-{self.creates}"
        load.voucher_creates[u_id] = None
        started = time.monotonic()
        params = {"count": VOUCHERS_PER_CREATE, "multiple": 0, "lifetime": 3600, "u_id": u_id}
        verdict, items, detail = await self.call(http, "createtokens", params)
        if verdict == "ok":
            if len(items) == VOUCHERS_PER_CREATE and all(item.get("u_id") == u_id for item in items):
                codes = sorted(str(item["token"]) for item in items)
                load.voucher_creates[u_id] = codes
                self.acknowledged.append((u_id, codes))
            else:
                verdict, detail = "bad", f"createtokens gave {items}"
        load.record("hotspot", "createtokens", started, verdict, detail)

    async def get(self, http: aiohttp.ClientSession) -> None:
        u_id, codes = self.acknowledged[-1]
        started = time.monotonic()
        verdict, items, detail = await self.call(http, "gettokens", {"u_id": u_id})
        if verdict == "ok" and sorted(str(item.get("token")) for item in items) != codes:
            verdict, detail = "bad", f"gettokens of acknowledged u_id {u_id} gave {items}"
        self.load.record("hotspot", "gettokens", started, verdict, detail)

    async def run(self, http: aiohttp.ClientSession) -> None:
        while not self.load.stopping:
            await self.create(http)
            if self.acknowledged and not self.load.stopping:
                await self.get(http)
            await self.load.pause_between_rounds()


@dataclass
class WialonClient:
    """Logged in once as a parent user: token/update create of a token for one of its sub-users
    (every other round), token/list of that sub-user's tokens (every round), which must hold every
    token of it that was acknowledged."""

    load: Load
    index: int
    sid: str
    owner: int = 0
    creates: int = 0
    creates_for_owner: int = 0
    acknowledged: set[str] = field(default_factory=set)  # h of the current owner's tokens

    async def next_owner(self) -> None:
        """A new sub-user of the parent: a user holds at most 100 Wialon tokens."""
        env, parent = self.load.world.env, self.load.world.wialon_parent
        name = f"fo-{self.load.tag}-w{self.index}-{secrets.token_hex(3)}"
        args = ["users", "add", name, "--role", "user", "--parent", parent.name]
        result = await asyncio.to_thread(run_cli, args, env)
        assert result.returncode == 0, result.stderr
        self.owner, self.creates_for_owner, self.acknowledged = int(result.stdout.strip()), 0, set()

    async def call(self, http: aiohttp.ClientSession, svc: str, params: dict[str, Any]) -> Answer | str:
        fields = {"svc": svc, "params": orjson.dumps(params).decode(), "sid": self.sid}
        return await self.load.gateways.send(http, "POST", "/wialon/ajax.html", data=fields)

    @staticmethod
    def _unavailable(answer: Answer) -> bool:
        return (answer.status, answer.body) == (200, WIALON_UNAVAILABLE)

    async def create(self, http: aiohttp.ClientSession) -> None:
        load = self.load
        if self.creates_for_owner >= WIALON_CREATES_PER_OWNER:
            await self.next_owner()
        self.creates_for_owner += 1
        self.creates += 1
        name = f"fo-{load.tag}-w{self.index}-{self.creates}"
        load.wialon_creates[name] = None
        started = time.monotonic()
        spec = {
            "callMode": "create",
            "app": name,
            "at": 0,
            "dur": 0,
            "fl": -1,
            "p": "{}",
            "userId": self.owner,
        }
        answer = await self.call(http, "token/update", spec)

        def created(a: Answer) -> bool:
            body = a.body
            return (
                a.status == 200
                and isinstance(body, dict)
                and body.get("app") == name
                and isinstance(body.get("h"), str)
                and TOKEN.fullmatch(body["h"]) is not None
            )

        verdict, detail = _judge_status(answer, created, self._unavailable)
        if verdict == "ok":
            assert isinstance(answer, Answer)
            load.wialon_creates[name] = answer.body["h"]
            self.acknowledged.add(answer.body["h"])
        load.record("wialon", "token/update create", started, verdict, detail)

    async def list(self, http: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        expected = set(self.acknowledged)
        answer = await self.call(http, "token/list", {"userId": self.owner})

        def listed(a: Answer) -> bool:
            return (
                a.status == 200
                and isinstance(a.body, list)
                and expected <= {t.get("h") for t in a.body if isinstance(t, dict)}
            )

        verdict, detail = _judge_status(answer, listed, self._unavailable)
        self.load.record("wialon", "token/list", started, verdict, detail)

    async def run(self, http: aiohttp.ClientSession) -> None:
        n = 0
        while not self.load.stopping:
            n += 1
            if n % 2:
                await self.create(http)
            if not self.load.stopping:
                await self.list(http)
            await self.load.pause_between_rounds()


@dataclass
class ChatAppClient:
    """tokens.make now and then, tokens/check and tokens.refresh of the current pair. A refresh
    that was not acknowledged may or may not have rotated the pair: the client starts a new family
    rather than present that refresh token again (which, had it been rotated, would be reuse)."""

    load: Load
    index: int
    pair: dict[str, Any] | None = None
    family: str = ""
    rounds: int = 0

    def _pair(self, answer: Answer) -> bool:
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        return (
            answer.status == 200
            and isinstance(data, dict)
            and answer.body.get("success") is True
            and set(data) == PAIR_FIELDS
            and data["cabinetUserId"] == self.load.world.chat_account.user_id
            and token_family(str(data["refreshToken"]), "refresh") is not None
            and token_family(str(data["accessToken"]), "access")
            == token_family(str(data["refreshToken"]), "refresh")
        )

    @staticmethod
    def _unavailable(answer: Answer) -> bool:
        return (answer.status, answer.body) == (503, CHATAPP_UNAVAILABLE)

    async def make(self, http: aiohttp.ClientSession) -> None:
        world = self.load.world
        started = time.monotonic()
        body = {
            "email": world.chat_account.email,
            "password": world.chat_account.password,
            "appId": world.chat_app,
        }
        answer = await self.load.gateways.send(http, "POST", "/v1/tokens", json=body)
        verdict, detail = _judge_status(answer, self._pair, self._unavailable)
        if verdict == "ok":
            assert isinstance(answer, Answer)
            self.pair = answer.body["data"]
            self.family = str(token_family(str(answer.body["data"]["refreshToken"]), "refresh"))
            self.load.families[self.family] = 0
        self.load.record("chatapp", "tokens.make", started, verdict, detail)

    async def check(self, http: aiohttp.ClientSession) -> None:
        assert self.pair is not None
        started = time.monotonic()
        headers = {"Authorization": self.pair["accessToken"]}
        answer = await self.load.gateways.send(http, "GET", "/v1/tokens/check", headers=headers)
        user_id = self.load.world.chat_account.user_id

        def checked(a: Answer) -> bool:
            data = a.body.get("data") if isinstance(a.body, dict) else None
            return a.status == 200 and isinstance(data, dict) and data.get("cabinetUserId") == user_id

        verdict, detail = _judge_status(answer, checked, self._unavailable)
        self.load.record("chatapp", "tokens/check", started, verdict, detail)

    async def refresh(self, http: aiohttp.ClientSession) -> None:
        assert self.pair is not None
        started = time.monotonic()
        presented = str(self.pair["refreshToken"])
        answer = await self.load.gateways.send(
            http, "POST", "/v1/tokens/refresh", headers={"Refresh": presented}
        )

        def rotated(a: Answer) -> bool:
            return (
                self._pair(a) and token_family(str(a.body["data"]["refreshToken"]), "refresh") == self.family
            )

        verdict, detail = _judge_status(answer, rotated, self._unavailable)
        if verdict == "ok":
            assert isinstance(answer, Answer)
            self.pair = answer.body["data"]
            self.load.families[self.family] += 1
        else:
            self.load.unsure_refreshes.append((self.family, presented))
            self.pair = None
        self.load.record("chatapp", "tokens.refresh", started, verdict, detail)

    async def run(self, http: aiohttp.ClientSession) -> None:
        while not self.load.stopping:
            if self.pair is None or self.rounds % 8 == 0:
                await self.make(http)
            if self.pair is not None and not self.load.stopping:
                await self.check(http)
            if self.pair is not None and not self.load.stopping:
                await self.refresh(http)
            self.rounds += 1
            await self.load.pause_between_rounds()


@dataclass
class Burst:
    """Writes held ready to go all at once, `size` of each kind, each from a client of its own: sent
    while a replica is frozen, some of them are sure to be in its hands when it is killed."""

    zabbix: list[ZabbixClient]
    hotspot: list[HotspotClient]
    wialon: WialonClient
    chatapp: list[ChatAppClient]

    @classmethod
    async def ready(cls, load: Load, http: aiohttp.ClientSession, size: int) -> Burst:
        first = 100  # client indexes of their own: names stay unique
        wialon = WialonClient(load, first, load.wialon_sid)
        await wialon.next_owner()
        chatapp = [ChatAppClient(load, first + i) for i in range(size)]
        await asyncio.gather(*(client.make(http) for client in chatapp))
        assert all(client.pair is not None for client in chatapp), "the burst's tokens.make failed"
        return cls(
            [ZabbixClient(load, first + i) for i in range(size)],
            [HotspotClient(load, first + i) for i in range(size)],
            wialon,
            chatapp,
        )

    async def fire(self, http: aiohttp.ClientSession) -> None:
        await asyncio.gather(
            *(client.create(http) for client in self.zabbix),
            *(client.create(http) for client in self.hotspot),
            *(self.wialon.create(http) for _ in self.zabbix),
            *(client.refresh(http) for client in self.chatapp),
        )


# --- what the stores say afterwards ----------------------------------------------------------------


class StoresSay(NamedTuple):
    problems: list[str]
    # Writes that were not acknowledged: how many were done after all, and how many were not.
    done: int
    not_done: int


async def lost_or_partial_writes(world: World, load: Load) -> StoresSay:
    """Every write of the load compared with the stores: an acknowledged one is there as acknowledged;
    one that was not is there completely or not at all. Completely: a Zabbix or Wialon token with its
    'created' audit row; a createtokens call's vouchers, all of them, with their audit row; a ChatApp
    rotation's new access and refresh tokens together with the presented refresh token marked used."""
    problems: list[str] = []
    pepper = world.pepper
    conn = await asyncpg.connect(world.env["DATABASE_URL"])
    try:
        zabbix = await conn.fetch(
            "SELECT id, name FROM tokens WHERE kind = 'zabbix' AND name = ANY($1::text[])",
            list(load.zabbix_creates),
        )
        zabbix_audits = {
            row["token_id"]: row["n"]
            for row in await conn.fetch(
                "SELECT e.token_id::bigint AS token_id, count(*) AS n"
                " FROM audit_log a, jsonb_array_elements_text(a.details -> 'token_ids') AS e(token_id)"
                " WHERE a.event = 'created' AND a.kind = 'zabbix' AND e.token_id::bigint = ANY($1::bigint[])"
                " GROUP BY 1",
                [row["id"] for row in zabbix],
            )
        }
        vouchers = await conn.fetch(
            "SELECT id, external_ref, secret_hash FROM tokens"
            " WHERE kind = 'voucher' AND external_ref = ANY($1::text[]) ORDER BY id",
            list(load.voucher_creates),
        )
        voucher_audits = {
            row["first_id"]: (row["last_id"], row["count"])
            for row in await conn.fetch(
                "SELECT (details ->> 'first_id')::bigint AS first_id,"
                " (details ->> 'last_id')::bigint AS last_id, (details ->> 'count')::int AS count"
                " FROM audit_log WHERE event = 'created' AND kind = 'voucher'"
                " AND (details ->> 'first_id')::bigint = ANY($1::bigint[])",
                [row["id"] for row in vouchers],
            )
        }
        wialon = await conn.fetch(
            "SELECT id, name, secret_hash FROM tokens WHERE kind = 'wialon' AND name = ANY($1::text[])",
            list(load.wialon_creates),
        )
        wialon_audits = {
            row["token_id"]: row["n"]
            for row in await conn.fetch(
                "SELECT token_id, count(*) AS n FROM audit_log"
                " WHERE event = 'created' AND kind = 'wialon' AND token_id = ANY($1::bigint[]) GROUP BY 1",
                [row["id"] for row in wialon],
            )
        }
    finally:
        await conn.close()

    zabbix_ids: dict[str, list[int]] = {}
    for row in zabbix:
        zabbix_ids.setdefault(row["name"], []).append(row["id"])
        if zabbix_audits.get(row["id"]) != 1:
            problems.append(
                f"Zabbix token {row['id']} ({row['name']}) has {zabbix_audits.get(row['id'], 0)} audit rows"
            )
    unsure = Counter[bool]()  # done?
    for name, token_id in load.zabbix_creates.items():
        found = zabbix_ids.get(name, [])
        if token_id is None:
            unsure[bool(found)] += 1
        if token_id is not None and found != [token_id]:
            problems.append(f"acknowledged Zabbix token {name} (id {token_id}) is in Postgres as {found}")
        if len(found) > 1:
            problems.append(f"one token.create of {name} made tokens {found}")

    batches: dict[str, list[asyncpg.Record]] = {}
    for row in vouchers:
        batches.setdefault(row["external_ref"], []).append(row)
    for u_id, rows in batches.items():
        ids = [row["id"] for row in rows]
        if len(rows) != VOUCHERS_PER_CREATE or voucher_audits.get(ids[0]) != (ids[-1], len(rows)):
            problems.append(f"u_id {u_id}: vouchers {ids} are not one whole audited createtokens")
    for u_id, codes in load.voucher_creates.items():
        if codes is None:
            unsure[u_id in batches] += 1
        else:
            stored = {bytes(row["secret_hash"]) for row in batches.get(u_id, [])}
            if stored != {lookup_hash(code, pepper) for code in codes}:
                problems.append(f"the acknowledged vouchers of u_id {u_id} are not (all) in Postgres")

    wialon_rows: dict[str, list[asyncpg.Record]] = {}
    for row in wialon:
        wialon_rows.setdefault(row["name"], []).append(row)
        if wialon_audits.get(row["id"]) != 1:
            problems.append(
                f"Wialon token {row['id']} ({row['name']}) has {wialon_audits.get(row['id'], 0)} audit rows"
            )
    for name, secret in load.wialon_creates.items():
        rows = wialon_rows.get(name, [])
        if secret is None:
            unsure[bool(rows)] += 1
        if len(rows) > 1:
            problems.append(f"one token/update create of {name} made {len(rows)} tokens")
        if secret is not None and [bytes(r["secret_hash"]) for r in rows] != [lookup_hash(secret, pepper)]:
            problems.append(f"acknowledged Wialon token {name} is not in Postgres as acknowledged")

    keys = RedisKeys(world.env["TOKENHUB_REDIS_PREFIX"])
    store = redis.asyncio.Redis.from_url(world.env["REDIS_URL"])
    try:
        for family, presented in load.unsure_refreshes:
            value = await store.get(keys.refresh_token(family, lookup_hash(presented, pepper).hex()))
            state = value.decode() if isinstance(value, bytes) else value
            pattern = keys.pair_family(family) + ":*"
            tokens = [bytes(key).decode() async for key in store.scan_iter(match=pattern, count=1000)]
            access = sum(":at:" in key for key in tokens)
            refresh = sum(":rt:" in key for key in tokens)
            if state is None or not state.startswith(("live:", "used:")):
                problems.append(f"family {family}: the refresh token of an unanswered refresh is {state!r}")
                continue
            # The make's pair, one per acknowledged refresh, and one more if the unanswered one rotated.
            unsure[state.startswith("used:")] += 1
            pairs = 1 + load.families[family] + (state.startswith("used:"))
            if (access, refresh) != (pairs, pairs):
                problems.append(
                    f"family {family}: {access} access and {refresh} refresh tokens after {pairs - 1}"
                    f" rotations (the unanswered refresh left its token {state.split(':')[0]})"
                )
    finally:
        await store.aclose()
    return StoresSay(problems, unsure[True], unsure[False])


# --- the topology ----------------------------------------------------------------------------------


async def served(replica: ServiceProcess) -> int:
    """Internal requests `replica` (this process of it) has answered, from its own /metrics."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(replica.metrics_url) as response,
    ):
        text = await response.text()
    pattern = re.compile(r"^tokenhub_http_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
    total = 0.0
    for labels, value in pattern.findall(text):
        route = re.search(r'route="([^"]*)"', labels)
        if route is not None and route[1] not in PROBES:
            total += float(value)
    return int(total)


def _all_up(topology: Topology) -> None:
    for replica in topology.processes:
        if replica.proc is None or replica.proc.poll() is not None:
            replica.start()
    for replica in topology.processes:
        replica.wait_ready()


@pytest.fixture(scope="module")
def topology(environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    env = dict(
        environment, TOKENHUB_REDIS_PREFIX=f"{environment['TOKENHUB_REDIS_PREFIX']}fo{secrets.token_hex(3)}:"
    )
    # A backend timeout far above any call on a busy 2-core machine: a replica killed here fails
    # its calls at once (the kernel resets its connections), so nothing in these tests waits on it.
    extra = {"TOKENHUB_BACKEND_TIMEOUT": "10", "TOKENHUB_LOG_LEVEL": "INFO"}
    with running_topology(
        env, tmp_path_factory.mktemp("failover-logs"), registries=3, issuers=2, gateways=2, extra_env=extra
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def world(topology: Topology) -> World:
    env = topology.registries[0].env
    password = f"Failover-{secrets.token_hex(6)}"

    def accounts() -> tuple[str, str, WialonUser, Account, str]:
        zabbix_user = f"fo-zbx-{secrets.token_hex(3)}"
        result = run_cli(["users", "add", zabbix_user, "--role", "user", "--password-stdin"], env, password)
        assert result.returncode == 0, result.stderr
        hotspot_user = f"fo-hotspot-{secrets.token_hex(3)}"
        result = run_cli(["users", "add", hotspot_user, "--role", "admin"], env)
        assert result.returncode == 0, result.stderr
        result = run_cli(["users", "api-key", hotspot_user], env)
        assert result.returncode == 0, result.stderr
        return (
            zabbix_user,
            result.stdout.strip(),
            new_user(env, "fo-wl"),
            add_account(env),
            add_app(env, "--daily-quota", "1000000"),
        )

    zabbix_user, api_key, parent, account, app_id = await asyncio.to_thread(accounts)
    gateway = topology.gateways[0].url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        session = await login(http, gateway, zabbix_user, password)
        created = await rpc(http, gateway, "token.create", {"name": "failover-load"}, session)
        generated = await rpc(http, gateway, "token.generate", created["result"]["tokenids"], session)
    return World(topology, env, generated["result"][0]["token"], api_key, parent, account, app_id)


@pytest.fixture
async def up(world: World) -> World:
    """The module's topology with every replica running: whatever an earlier test left stopped is
    started again."""
    await asyncio.to_thread(_all_up, world.topology)
    return world


def log_sizes(topology: Topology) -> dict[Path, int]:
    return {p.log_path: p.log_path.stat().st_size if p.log_path.exists() else 0 for p in topology.processes}


def errors_logged(since: dict[Path, int]) -> list[str]:
    """Lines at level error or worse written since `since` (a bug, a lost audit event), and any line
    that is not one of our JSON log lines (a traceback printed by the interpreter)."""
    found = []
    for path, offset in since.items():
        with path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        for line in lines:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                found.append(f"{path.name}: {line}")
                continue
            if not isinstance(entry, dict) or entry.get("level") in ("error", "critical"):
                found.append(f"{path.name}: {line[:600]}")
    return found


def _listing(outcomes: list[Outcome], limit: int = 15) -> str:
    return "\n".join(str(o) for o in outcomes[:limit]) + (
        f"\n... {len(outcomes) - limit} more" if len(outcomes) > limit else ""
    )


def _ran_throughout(load: Load, start: float, end: float) -> set[Dialect]:
    """The dialects that had a request answered with success between `start` and `end`."""
    return {o.dialect for o in load.outcomes if o.verdict == "ok" and start <= o.ended <= end}


# --- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["registry", "issuer"])
async def test_kill_9_of_one_replica_under_load_fails_no_read_and_loses_no_acknowledged_write(
    up: World, part: Literal["registry", "issuer"]
) -> None:
    world = up
    topology = world.topology
    victim = (topology.registries if part == "registry" else topology.issuers)[1]
    gateways = Gateways([g.url for g in topology.gateways])
    load = Load(world, gateways)
    logs_before = log_sizes(topology)
    began = time.monotonic()
    async with load:
        await asyncio.sleep(WARM_UP_SECONDS)
        assert await served(victim) > 0, f"the {part} to kill had no share of the load"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            burst = await Burst.ready(load, http, BURST_SIZE)
            killed_at = time.monotonic()
            # Frozen first, with a burst of writes on top of the load, so that the kill lands with
            # writes in its hands, as it does on a busy replica (on this load one is mostly idle).
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGSTOP)
            fired = asyncio.create_task(burst.fire(http))
            await asyncio.sleep(FREEZE_SECONDS)
            await asyncio.to_thread(victim.stop, signal.SIGKILL)
            await fired
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(victim.wait_ready)
        ready_at = time.monotonic()
        while await served(victim) == 0:
            assert time.monotonic() - ready_at < SERVES_AGAIN_BOUND, (
                f"the restarted {part} served nothing {SERVES_AGAIN_BOUND}s after it was ready"
            )
            await asyncio.sleep(0.1)
        serving_after = time.monotonic() - ready_at
        await asyncio.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - began)))
    print(f"\n{part} killed: {load.summary()}; restarted, it served {serving_after:.1f}s after it was ready")

    failed_reads = load.of("read", "unavailable", "bad")
    assert not failed_reads, f"{len(failed_reads)} reads failed:\n{_listing(failed_reads)}"
    bad_writes = load.of("write", "bad")
    assert not bad_writes, f"{len(bad_writes)} writes got no proper answer:\n{_listing(bad_writes)}"
    stores = await lost_or_partial_writes(world, load)
    print(f"looked for in the stores, {stores.done} writes not acknowledged were done, {stores.not_done} not")
    assert not stores.problems, "\n".join(stores.problems[:20])
    assert load.of("write", "unavailable"), f"no write was in the {part}'s hands when it was killed"
    # The load ran before, during and after the outage, in every dialect.
    every: set[Dialect] = {"zabbix", "hotspot", "wialon", "chatapp"}
    assert _ran_throughout(load, began, killed_at) == every
    assert _ran_throughout(load, killed_at, ready_at) == every, "the load stalled while the replica was down"
    assert _ran_throughout(load, ready_at, time.monotonic()) == every
    acknowledged_after = [o for o in load.of("write", "ok") if o.started > ready_at]
    assert {o.dialect for o in acknowledged_after} == every
    # An audit event the issuer was appending through the killed registry may be lost (the issuer
    # says so, loudly): the one error a kill may cause.
    errors = [line for line in errors_logged(logs_before) if "audit event lost" not in line]
    assert not errors, "\n".join(errors[:20])


async def test_a_rolling_restart_of_every_service_under_load_fails_no_request(up: World) -> None:
    world = up
    topology = world.topology
    gateways = Gateways([g.url for g in topology.gateways])
    load = Load(world, gateways)
    logs_before = log_sizes(topology)
    restarts: list[tuple[str, float, float]] = []
    async with load:
        await asyncio.sleep(WARM_UP_SECONDS)
        for group in (topology.registries, topology.issuers, topology.gateways):
            for replica in group:
                assert replica.proc is not None
                old_pid = replica.proc.pid
                began = time.monotonic()
                await asyncio.to_thread(replica.stop)  # SIGTERM: it drains, then stops
                assert replica.proc.returncode == 0, (
                    f"{replica.name} on {replica.port} did not stop by itself"
                )
                await asyncio.to_thread(replica.start)
                await asyncio.to_thread(replica.wait_ready)
                assert replica.proc.pid != old_pid
                if replica.name == "gateway":
                    await gateways.wait_in_rotation(replica.url)
                restarts.append((f"{replica.name} on {replica.port}", began, time.monotonic()))
        await asyncio.sleep(2.0)
    print(
        f"\nrolling restart: {load.summary()}; restarts took "
        + ", ".join(f"{e - b:.1f}s" for _, b, e in restarts)
    )

    failed = [o for o in load.outcomes if o.verdict != "ok"]
    assert not failed, f"{len(failed)} of {len(load.outcomes)} requests failed:\n{_listing(failed)}"
    assert gateways.drained > 0, "no gateway said it was draining: did the load reach them while they did?"
    stores = await lost_or_partial_writes(world, load)
    assert not stores.problems, "\n".join(stores.problems[:20])
    every: set[Dialect] = {"zabbix", "hotspot", "wialon", "chatapp"}
    for name, began, ended in restarts:
        assert _ran_throughout(load, began, ended) == every, f"the load stalled while {name} restarted"
    # Nothing lost behind the replies either (an audit event the issuer appends through a registry).
    assert errors_logged(logs_before) == []
