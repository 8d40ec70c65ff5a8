"""Fuzzing the hotspot envelope and parameters through the real gateway (issue 6): whatever
arrives, the reply is never HTTP 500 and always exactly the success or the error envelope, with
the HTTP status that goes with it.

Hypothesis drives synchronous tests, so the HTTP client runs on an event loop of this module's
own; it calls from a loopback address of its own, so its failed guesses throttle nobody else.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import Cluster
from tests.e2e.hotspot_client import PATH, check_envelope, loopback_session, new_operator, random_loopback

pytestmark = pytest.mark.e2e

METHODS = ("gettokens", "createtokens", "usetoken", "repaytokens", "deletetokens")


@dataclass(frozen=True)
class Request:
    body: bytes
    content_type: str | None


class Sender:
    """An aiohttp client on a private event loop, usable from synchronous code."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession = self.loop.run_until_complete(self._open())

    @staticmethod
    async def _open() -> aiohttp.ClientSession:
        return loopback_session(random_loopback())

    async def _post(self, request: Request) -> tuple[int, str, bytes]:
        headers = {} if request.content_type is None else {"Content-Type": request.content_type}
        async with self.session.post(self.url, data=request.body, headers=headers) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()

    def post(self, request: Request) -> tuple[int, str, bytes]:
        return self.loop.run_until_complete(self._post(request))

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


@pytest.fixture(scope="module")
def sender(cluster: Cluster) -> Iterator[Sender]:
    client = Sender(cluster.gateway_url + PATH)
    yield client
    client.close()


@pytest.fixture(scope="module")
def api_token(environment: dict[str, str]) -> str:
    return new_operator(environment).api_token


# --- what a client might send ------------------------------------------------------------------

# Anything orjson can write: 64-bit integers, finite floats, text without lone surrogates.
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values most of the time, so calls get past validation into the methods."""
    return valid | valid | valid | invalid


flags = mostly(
    st.sampled_from([0, 1, "0", "1", True, False, None]),
    st.sampled_from([2, -1, 1.0, "yes", ""]) | json_values,
)
codes = mostly(
    st.from_regex(r"[1-9][0-9]{9}", fullmatch=True) | st.integers(min_value=10**9, max_value=10**10 - 1),
    st.integers(min_value=0, max_value=10**11) | st.text(alphabet="0123456789 -", max_size=12) | json_values,
)
# Well-formed MACs all start with fe (a locally administered unicast prefix no other test uses):
# unknown codes count against the MAC too.
macs = mostly(
    st.from_regex(r"fe(:[0-9a-fA-F]{2}){5}", fullmatch=True)
    | st.from_regex(r"FE(-[0-9a-f]{2}){5}", fullmatch=True)
    | st.from_regex(r"fe[0-9a-f]{2}\.[0-9a-f]{4}\.[0-9a-f]{4}", fullmatch=True),
    st.text(max_size=20) | json_values,
)
# Small counts only: 10,000 is valid and each one would cost a big transaction.
counts = mostly(
    st.integers(min_value=1, max_value=30) | st.sampled_from(["5"]),
    st.integers(min_value=-3, max_value=0) | st.sampled_from([10_001, "x", 2.5, None, True]) | json_values,
)
limits = mostly(st.integers(min_value=1, max_value=50), st.integers(-(2**33), 2**33) | json_values)
offsets = mostly(st.integers(min_value=0, max_value=2**31 - 1), st.integers(-(2**33), -1) | json_values)
lifetimes = mostly(st.integers(min_value=0, max_value=2**31 - 1), st.integers(-(2**33), 2**33) | json_values)
u_ids = mostly(
    # Bounded by what JSON clients send (orjson refuses integers past 64 bits).
    st.text(max_size=40) | st.integers(min_value=0, max_value=2**63 - 1),
    st.text(min_size=256, max_size=300) | json_values,
)
code_lists = mostly(st.lists(codes, min_size=1, max_size=5), st.lists(codes, max_size=0) | json_values)

PARAMETERS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "gettokens": st.fixed_dictionaries(
        {},
        optional={
            "used_at": flags,
            "repaid_at": flags,
            "multiple": flags,
            "validity": flags,
            "token": codes,
            "u_id": u_ids,
            "limit": limits,
            "offset": offsets,
        },
    ),
    "createtokens": st.fixed_dictionaries(
        {"count": counts}, optional={"multiple": flags, "lifetime": lifetimes, "u_id": u_ids}
    ),
    "usetoken": st.fixed_dictionaries({"token": codes, "mac": macs}),
    "repaytokens": st.fixed_dictionaries({"tokens": code_lists}),
    "deletetokens": st.fixed_dictionaries({"tokens": code_lists}),
}
any_parameters = st.dictionaries(
    st.sampled_from(sorted({"count", "mac", "tokens", "used_at"})) | st.text(max_size=10),
    json_values,
    max_size=3,
)


@st.composite
def envelopes(draw: st.DrawFn, api_token: str) -> Any:
    fields: dict[str, Any] = {}
    if draw(st.integers(0, 9)):  # mostly the real key, so the methods themselves get fuzzed
        fields["api_token"] = draw(
            st.just(api_token) | st.just(api_token) | st.text(max_size=80) | json_values
        )
    method = draw(mostly(st.sampled_from(METHODS), st.text(max_size=20) | json_values))
    if draw(st.integers(0, 9)):
        fields["method"] = method
    if draw(st.integers(0, 5)):
        chosen = PARAMETERS.get(method) if isinstance(method, str) else None
        params = draw(
            any_parameters | json_values if chosen is None else mostly(chosen, any_parameters | json_values)
        )
        # Form clients send parameters as a JSON string; some JSON clients do too.
        fields["parameters"] = orjson.dumps(params).decode() if draw(st.integers(0, 4)) == 0 else params
    if not draw(st.integers(0, 9)):
        fields.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    return fields if draw(st.integers(0, 19)) else draw(json_values)


def as_form(fields: Any) -> bytes:
    pairs = []
    if isinstance(fields, dict):
        for name, value in fields.items():
            pairs.append((name, value if isinstance(value, str) else orjson.dumps(value).decode()))
    return urllib.parse.urlencode(pairs).encode()


CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
]


@st.composite
def requests(draw: st.DrawFn, api_token: str) -> Request:
    kind = draw(st.sampled_from(["json", "form", "raw"]))
    if kind == "json":
        return Request(orjson.dumps(draw(envelopes(api_token))), draw(st.sampled_from(CONTENT_TYPES[:4])))
    if kind == "form":
        return Request(as_form(draw(envelopes(api_token))), draw(st.sampled_from(CONTENT_TYPES[4:7])))
    raw = draw(
        st.binary(max_size=200)
        | st.just(b"[" * 5000)
        | st.just(b'{"api_token":"' + api_token.encode() + b'","method":"gettokens","parameters":{"limit":1}')
        | st.just(b'--xyz\r\nContent-Disposition: form-data; name="method"\r\n\r\ngettokens\r\n--xyz--\r\n')
    )
    return Request(raw, draw(st.sampled_from(CONTENT_TYPES)))


FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def answer(sender: Sender, request: Request) -> dict[str, Any]:
    """Send; fail unless the reply is an envelope that fits its status and is no bug of ours."""
    status, content_type, raw = sender.post(request)
    assert status != 500, raw[:500]
    assert content_type.startswith("application/json"), (status, raw[:500])
    body = orjson.loads(raw)
    check_envelope(status, body)
    if body["status"] == "error":
        assert body["error"]["code"] != "internal_error", "a bug on our side: see the gateway's log"
    reply: dict[str, Any] = body
    return reply


def test_fuzzed_bodies_and_envelopes_always_get_an_envelope_and_never_500(
    sender: Sender, api_token: str
) -> None:
    @FUZZ_SETTINGS
    @given(request=requests(api_token))
    def fuzz(request: Request) -> None:
        answer(sender, request)

    fuzz()


@st.composite
def method_calls(draw: st.DrawFn, api_token: str) -> Request:
    """The real key and a real method, with that method's parameters fuzzed."""
    method = draw(st.sampled_from(METHODS))
    params = draw(PARAMETERS[method])
    if draw(st.booleans()):
        return Request(orjson.dumps({"api_token": api_token, "method": method, "parameters": params}), None)
    form = {"api_token": api_token, "method": method, "parameters": orjson.dumps(params).decode()}
    return Request(urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")


def test_fuzzed_parameters_always_get_an_envelope_and_never_500(sender: Sender, api_token: str) -> None:
    seen: Counter[str] = Counter()

    @FUZZ_SETTINGS
    @given(request=method_calls(api_token))
    def fuzz(request: Request) -> None:
        body = answer(sender, request)
        seen[body["status"] if body["status"] == "success" else body["error"]["code"]] += 1

    fuzz()
    # The fuzz got past validation into the methods, and validation refused some of it.
    assert seen["success"] > 0, seen
    assert seen["invalid_request"] > 0, seen
