"""A steady load through the gateway: a few clients per dialect, each a plain loop of real requests,
every reply timed and judged as it comes back.

A reply is `ok` (the dialect's success, with the right content), `unavailable` (exactly the
dialect's own "service unavailable" error), `stale` (a ChatApp token refused that the client had
reason to expect dead, see ChatAppClient) or `bad` (anything else: an HTTP 500, a body outside the
envelope, a wrong result, no answer at all). The clients also note every create they attempted and
what the reply acknowledged, so the test can compare that with Postgres afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

Dialect = Literal["chatapp", "zabbix", "hotspot"]
Verdict = Literal["ok", "unavailable", "stale", "bad"]

ZABBIX_UNAVAILABLE = {
    "code": -32500,
    "message": "Application error.",
    "data": "Service temporarily unavailable, try again later.",
}
CHATAPP_UNAVAILABLE = {
    "success": False,
    "error": {
        "code": "ApiServiceUnavailableError",
        "message": "Service temporarily unavailable, try again later",
    },
}
CHATAPP_INVALID_TOKEN = {
    "success": False,
    "error": {"code": "ApiInvalidTokenError", "message": "Invalid Token"},
}
HOTSPOT_UNAVAILABLE = {
    "status": "error",
    "error": {"code": "service_unavailable", "message": "service temporarily unavailable, try again later"},
}
PAIR_FIELDS = {"cabinetUserId", "accessToken", "accessTokenEndTime", "refreshToken", "refreshTokenEndTime"}
VOUCHERS_PER_CREATE = 3

# Every operation the load performs: recovery means each of them succeeds again.
OPERATIONS: frozenset[tuple[Dialect, str]] = frozenset(
    {
        ("chatapp", "make"),
        ("chatapp", "check"),
        ("chatapp", "refresh"),
        ("zabbix", "token.create"),
        ("zabbix", "token.get"),
        ("hotspot", "createtokens"),
        ("hotspot", "gettokens"),
    }
)


@dataclass(frozen=True)
class Credentials:
    chatapp_email: str
    chatapp_password: str
    chatapp_user_id: int
    chatapp_app_id: str
    zabbix_api_token: str
    hotspot_api_key: str


@dataclass(frozen=True)
class Outcome:
    dialect: Dialect
    operation: str
    started: float  # time.monotonic()
    ended: float
    verdict: Verdict
    detail: str = ""

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def __str__(self) -> str:
        return f"{self.dialect} {self.operation} {self.verdict} after {self.elapsed:.2f}s {self.detail}"[:400]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


class Load:
    def __init__(
        self,
        gateway_url: str,
        credentials: Credentials,
        tag: str,
        *,
        clients_per_dialect: int = 2,
        pause: float = 0.05,
        request_timeout: float = 60.0,
        dialects: frozenset[Dialect] = frozenset({"chatapp", "zabbix", "hotspot"}),
    ) -> None:
        self.gateway_url = gateway_url
        self.credentials = credentials
        self.tag = tag  # makes this load's names and u_ids its own
        self.clients_per_dialect = clients_per_dialect
        self.dialects = dialects  # whose clients run (a ChatApp-less load needs no ChatApp account)
        self.operations = frozenset(op for op in OPERATIONS if op[0] in dialects)
        self.pause = pause
        self.request_timeout = request_timeout
        self.outcomes: list[Outcome] = []
        # Zabbix token name -> the token id the reply acknowledged (None: not acknowledged).
        self.zabbix_creates: dict[str, int | None] = {}
        # Hotspot u_id -> the voucher codes the reply acknowledged (None: not acknowledged).
        self.voucher_creates: dict[str, list[str] | None] = {}
        # Raised by the test when it stops Redis: every pair made before then is gone for good.
        self.redis_generation = 0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- running -------------------------------------------------------------------------------

    async def __aenter__(self) -> Load:
        for index in range(self.clients_per_dialect):
            clients = {
                "chatapp": ChatAppClient(self, index).run,
                "zabbix": ZabbixClient(self, index).run,
                "hotspot": HotspotClient(self, index).run,
            }
            self._tasks += [
                asyncio.create_task(self._client(run))
                for dialect, run in clients.items()
                if dialect in self.dialects
            ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stopping.set()
        if self._tasks:
            # Each client finishes the request it is in; none can take longer than its timeout.
            await asyncio.wait(self._tasks, timeout=self.request_timeout + 10)
            for task in self._tasks:
                task.cancel()
            results = await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
            failures = [r for r in results if isinstance(r, BaseException) and not _cancelled(r)]
            if failures:
                raise failures[0]

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _client(self, run: Callable[[aiohttp.ClientSession], Awaitable[None]]) -> None:
        connector = aiohttp.TCPConnector(limit=1)  # one client, one keep-alive connection
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await run(http)

    async def pause_between_requests(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.pause)

    # --- recording -----------------------------------------------------------------------------

    def record(
        self, dialect: Dialect, operation: str, started: float, verdict: Verdict, detail: str = ""
    ) -> None:
        self.outcomes.append(Outcome(dialect, operation, started, time.monotonic(), verdict, detail))

    async def send(self, http: aiohttp.ClientSession, method: str, path: str, **request: Any) -> Answer | str:
        """The status and decoded JSON body, or what went wrong instead of an answer."""
        try:
            async with http.request(method, self.gateway_url + path, **request) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"no answer: {type(exc).__name__} {exc}"
        try:
            return Answer(status, orjson.loads(raw))
        except orjson.JSONDecodeError:
            return f"HTTP {status} with a body that is not JSON: {raw[:300]!r}"

    # --- reading the outcomes ------------------------------------------------------------------

    def since(self, moment: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= moment]

    async def settled(self, since: float, tail: float, limit: float) -> float | None:
        """The moment after `since` from which every request has succeeded, once `tail` seconds of
        load, with every operation of its dialects done at least once, have followed it; None if
        that has not happened `limit` seconds after `since`."""
        while True:
            now = time.monotonic()
            last_failure = max((o.ended for o in self.outcomes if o.verdict != "ok"), default=since)
            start = max(since, last_failure)
            done = {(o.dialect, o.operation) for o in self.outcomes if o.started >= start}
            if now - start >= tail and done >= self.operations:
                return start
            if now - since > limit:
                return None
            await asyncio.sleep(0.1)


def _cancelled(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError)


@dataclass
class ChatAppClient:
    """make a pair now and then, check and refresh the current one, as a ChatApp client does.

    "Invalid Token" for a pair the client holds is a fault, with two exceptions where the pair may
    really be dead: it was made before Redis lost its data, or a refresh of it went unanswered
    (the issuer may have rotated it; presenting the old refresh token again is then reuse, and
    revokes the family, as DESIGN §2.4 requires)."""

    load: Load
    index: int
    pair: dict[str, Any] | None = None
    generation: int = 0
    unsure: bool = False
    rounds: int = 0

    async def run(self, http: aiohttp.ClientSession) -> None:
        while not self.load.stopping:
            # A new family every few rounds, so tokens.make (which needs the registry) runs throughout.
            if self.pair is None or self.rounds % 4 == 0:
                await self.make(http)
            if self.pair is not None and not self.load.stopping:
                await self.check(http)
            if self.pair is not None and not self.load.stopping:
                await self.refresh(http)
            self.rounds += 1
            await self.load.pause_between_requests()

    def _judge(self, answer: Answer | str, *, token_call: bool) -> tuple[Verdict, str]:
        if isinstance(answer, str):
            return "bad", answer
        if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("success") is True:
            return "ok", ""
        if (answer.status, answer.body) == (503, CHATAPP_UNAVAILABLE):
            return "unavailable", ""
        if token_call and (answer.status, answer.body) == (401, CHATAPP_INVALID_TOKEN):
            if self.generation != self.load.redis_generation or self.unsure:
                self.pair = None
                return "stale", ""
            return "bad", "a live pair was refused"
        return "bad", f"HTTP {answer.status} {answer.body}"

    def _pair_ok(self, answer: Answer | str) -> bool:
        if not isinstance(answer, Answer):
            return False
        data = answer.body.get("data")
        creds = self.load.credentials
        return (
            isinstance(data, dict)
            and set(data) == PAIR_FIELDS
            and data["cabinetUserId"] == creds.chatapp_user_id
            and str(data["accessToken"]).startswith("th_at_")
            and str(data["refreshToken"]).startswith("th_rt_")
        )

    async def make(self, http: aiohttp.ClientSession) -> None:
        creds = self.load.credentials
        started, generation = time.monotonic(), self.load.redis_generation
        body = {
            "email": creds.chatapp_email,
            "password": creds.chatapp_password,
            "appId": creds.chatapp_app_id,
        }
        answer = await self.load.send(http, "POST", "/v1/tokens", json=body)
        verdict, detail = self._judge(answer, token_call=False)
        if verdict == "ok":
            if self._pair_ok(answer):
                assert isinstance(answer, Answer)
                self.pair, self.generation, self.unsure = answer.body["data"], generation, False
            else:
                verdict, detail = "bad", f"not a pair: {answer}"
        self.load.record("chatapp", "make", started, verdict, detail)

    async def check(self, http: aiohttp.ClientSession) -> None:
        assert self.pair is not None
        started = time.monotonic()
        headers = {"Authorization": self.pair["accessToken"]}
        answer = await self.load.send(http, "GET", "/v1/tokens/check", headers=headers)
        verdict, detail = self._judge(answer, token_call=True)
        if verdict == "ok":
            assert isinstance(answer, Answer)
            data = answer.body.get("data")
            if (
                not isinstance(data, dict)
                or data.get("cabinetUserId") != self.load.credentials.chatapp_user_id
            ):
                verdict, detail = "bad", f"check named someone else: {answer.body}"
        self.load.record("chatapp", "check", started, verdict, detail)

    async def refresh(self, http: aiohttp.ClientSession) -> None:
        assert self.pair is not None
        started, generation = time.monotonic(), self.load.redis_generation
        headers = {"Refresh": self.pair["refreshToken"]}
        answer = await self.load.send(http, "POST", "/v1/tokens/refresh", headers=headers)
        verdict, detail = self._judge(answer, token_call=True)
        if verdict == "ok":
            if self._pair_ok(answer):
                assert isinstance(answer, Answer)
                self.pair, self.generation, self.unsure = answer.body["data"], generation, False
            else:
                verdict, detail = "bad", f"not a pair: {answer}"
        elif verdict in ("unavailable", "bad"):
            self.unsure = True
        self.load.record("chatapp", "refresh", started, verdict, detail)


@dataclass
class ZabbixClient:
    """token.create with an API token, then token.get of what was created (read your write)."""

    load: Load
    index: int
    count: int = field(default=0)

    async def call(self, http: aiohttp.ClientSession, method: str, params: Any) -> tuple[Verdict, Any, str]:
        body = {
            "jsonrpc": "2.0",
            "method": method,
            "params": params,
            "auth": self.load.credentials.zabbix_api_token,
            "id": self.count,
        }
        answer = await self.load.send(
            http, "POST", "/api_jsonrpc.php", json=body, headers={"Content-Type": "application/json-rpc"}
        )
        if isinstance(answer, str):
            return "bad", None, answer
        reply = answer.body
        if answer.status != 200 or not isinstance(reply, dict) or reply.get("id") != self.count:
            return "bad", None, f"HTTP {answer.status} {reply}"
        if "result" in reply:
            return "ok", reply["result"], ""
        if reply.get("error") == ZABBIX_UNAVAILABLE:
            return "unavailable", None, ""
        return "bad", None, f"{reply}"

    async def run(self, http: aiohttp.ClientSession) -> None:
        while not self.load.stopping:
            self.count += 1
            name = f"faults-{self.load.tag}-{self.index}-{self.count}"
            started = time.monotonic()
            self.load.zabbix_creates[name] = None
            verdict, result, detail = await self.call(http, "token.create", {"name": name})
            token_id: int | None = None
            if verdict == "ok":
                ids = result.get("tokenids") if isinstance(result, dict) else None
                if isinstance(ids, list) and len(ids) == 1 and str(ids[0]).isdigit():
                    token_id = int(ids[0])
                    self.load.zabbix_creates[name] = token_id
                else:
                    verdict, detail = "bad", f"token.create gave {result}"
            self.load.record("zabbix", "token.create", started, verdict, detail)
            if token_id is not None and not self.load.stopping:
                started = time.monotonic()
                params = {"output": ["tokenid", "name"], "tokenids": [str(token_id)]}
                verdict, result, detail = await self.call(http, "token.get", params)
                if verdict == "ok" and result != [{"tokenid": str(token_id), "name": name}]:
                    verdict, detail = "bad", f"token.get of an acknowledged token gave {result}"
                self.load.record("zabbix", "token.get", started, verdict, detail)
            await self.load.pause_between_requests()


@dataclass
class HotspotClient:
    """createtokens with a u_id of its own, then gettokens by that u_id (read your write)."""

    load: Load
    index: int
    count: int = field(default=0)

    async def call(self, http: aiohttp.ClientSession, method: str, params: Any) -> tuple[Verdict, Any, str]:
        body = {"api_token": self.load.credentials.hotspot_api_key, "method": method, "parameters": params}
        answer = await self.load.send(http, "POST", "/hotspot/api", json=body)
        if isinstance(answer, str):
            return "bad", None, answer
        reply = answer.body
        if answer.status == 200 and isinstance(reply, dict) and reply.get("status") == "success":
            data = reply.get("data")
            if isinstance(data, dict) and list(data) == [str(i) for i in range(len(data))]:
                return "ok", [data[str(i)] for i in range(len(data))], ""
        if (answer.status, reply) == (503, HOTSPOT_UNAVAILABLE):
            return "unavailable", None, ""
        return "bad", None, f"HTTP {answer.status} {reply}"

    async def run(self, http: aiohttp.ClientSession) -> None:
        while not self.load.stopping:
            self.count += 1
            u_id = f"faults-{self.load.tag}-{self.index}-{self.count}"
            started = time.monotonic()
            self.load.voucher_creates[u_id] = None
            params = {"count": VOUCHERS_PER_CREATE, "multiple": 0, "lifetime": 3600, "u_id": u_id}
            verdict, items, detail = await self.call(http, "createtokens", params)
            codes: list[str] | None = None
            if verdict == "ok":
                if len(items) == VOUCHERS_PER_CREATE and all(item.get("u_id") == u_id for item in items):
                    codes = sorted(str(item["token"]) for item in items)
                    self.load.voucher_creates[u_id] = codes
                else:
                    verdict, detail = "bad", f"createtokens gave {items}"
            self.load.record("hotspot", "createtokens", started, verdict, detail)
            if codes is not None and not self.load.stopping:
                started = time.monotonic()
                verdict, items, detail = await self.call(http, "gettokens", {"u_id": u_id})
                if verdict == "ok" and sorted(str(item.get("token")) for item in items) != codes:
                    verdict, detail = "bad", f"gettokens of acknowledged vouchers gave {items}"
                self.load.record("hotspot", "gettokens", started, verdict, detail)
            await self.load.pause_between_requests()
