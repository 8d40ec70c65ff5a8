"""Property: nothing sent to /wialon/ajax.html — any svc, params or sid, by GET or POST — yields
anything but HTTP 200 with a JSON body: a result, or `{"error": N}` with one of Wialon's codes."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import Cluster
from tests.e2e.hotspot_client import random_loopback
from tests.e2e.wialon_client import ERROR_CODES, WialonUser, new_user

pytestmark = pytest.mark.e2e

PATH = "/wialon/ajax.html"
SERVICES = ["core/login", "core/logout", "core/batch", "token/login", "token/update", "token/list"]
OTHER_SERVICES = ["TOKEN/LIST", "token/", "no/such", ""]
PARAM_NAMES = [
    "user", "password", "token", "operateAs", "fl", "appName", "callMode", "userId", "h", "app", "at",
    "dur", "p", "items", "deleteAll", "params", "flags", "svc",
]  # fmt: skip
# Text without lone surrogates: they cannot be sent as UTF-8 at all.
texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
special = st.sampled_from(
    [
        "$SID", "$H", "create", "update", "delete", "{}", "[]", "[{}]", "-1", "0", "\x00", "ü",
        "9" * 4301,
        # A `p` nested past what any JSON encoder writes back (orjson stops at 255).
        "[" * 300 + "{}" + "]" * 300, '{"a":' * 65 + "{}" + "}" * 65,
    ]
)  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | special
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(PARAM_NAMES) | texts, inner, max_size=4)
    ),
    max_leaves=12,
)
# Parameters close to what the services take, so that examples get past the first checks.
plausible = st.fixed_dictionaries(
    {},
    optional={
        "callMode": st.sampled_from(["create", "update", "delete"]) | json_values,
        "h": st.just("$H") | json_values,
        "token": st.just("$H") | json_values,
        "app": texts | json_values,
        "at": st.integers(0, 2**32) | json_values,
        "dur": st.integers(0, 8_640_001) | json_values,
        "fl": st.sampled_from([-1, 0, 0x100, 0x300, 0x4000, 0xFFFFFFFF, 1]) | json_values,
        "p": st.sampled_from(["{}", "[]", '{"a": 1}', '[{"a": 1}]', "[1]"]) | json_values,
        "items": st.lists(st.integers(0, 2**63), max_size=3) | json_values,
        "userId": st.integers(0, 2**63) | json_values,
        "deleteAll": st.sampled_from([True, 1, "true", False, "0"]) | json_values,
        "operateAs": texts | json_values,
        "user": st.just("nobody-by-this-name") | json_values,
        "password": texts,
    },
)
param_objects = st.dictionaries(st.sampled_from(PARAM_NAMES), json_values, max_size=7)
batch_calls = st.lists(
    st.fixed_dictionaries(
        {}, optional={"svc": st.sampled_from(SERVICES) | texts, "params": plausible | param_objects | texts}
    ),
    max_size=3,
)
batch_objects = st.fixed_dictionaries({"params": batch_calls}, optional={"flags": json_values})
params_texts = st.one_of(
    plausible.map(json.dumps),
    plausible.map(json.dumps),
    plausible.map(json.dumps),
    param_objects.map(json.dumps),
    json_values.map(json.dumps),
    batch_calls.map(json.dumps),
    batch_objects.map(json.dumps),
    texts,
)
sids = st.sampled_from(["$SID", "$SID", "$SID", "$DEAD", "None", ""]) | texts
# Mostly well-formed requests, so that examples reach the services; sometimes anything at all.
well_formed = st.fixed_dictionaries({"svc": st.sampled_from(SERVICES), "params": params_texts, "sid": sids})
anything = st.fixed_dictionaries(
    {},
    optional={"svc": st.sampled_from(SERVICES + OTHER_SERVICES) | texts, "params": params_texts, "sid": sids},
)
fields = st.one_of(well_formed, well_formed, well_formed, anything)


@pytest.fixture(scope="module")
def fuzz_user(environment: dict[str, str]) -> WialonUser:
    return new_user(environment, "fuzz")


MAX_QUERY = 8000


def send(url: str, method: str, body: dict[str, str], raw: bytes | None = None) -> tuple[int, str, bytes]:
    """One request from a loopback address of its own: failed logins count per address, and a
    throttled address would only ever see 1003."""
    target = urlsplit(url)
    conn = http.client.HTTPConnection(
        target.hostname or "127.0.0.1", target.port, timeout=30, source_address=(random_loopback(), 0)
    )
    try:
        encoded = urlencode(body).encode()
        if raw is not None:
            conn.request(
                method, PATH, body=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
        elif method == "GET":
            conn.request("GET", PATH + "?" + encoded.decode())
        else:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            conn.request("POST", PATH, body=encoded, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def check(status: int, content_type: str, raw: bytes) -> None:
    assert status == 200, (status, raw[:300])
    assert content_type == "application/json", (content_type, raw[:300])
    assert b"Traceback" not in raw
    body: Any = json.loads(raw)
    for one in body if isinstance(body, list) else [body]:
        if isinstance(one, dict) and "error" in one and set(one) <= {"error", "reason"}:
            assert one["error"] in ERROR_CODES or one["error"] == 0, one
            # 6 is what a bug of ours turns into: the fuzzer must never find one.
            assert one["error"] != 6, one
            event(f"error {one['error']}")  # --hypothesis-show-statistics: how deep the examples got
        else:
            event("a result")


def login_fields(user: WialonUser) -> dict[str, str]:
    return {"svc": "core/login", "params": json.dumps({"user": user.name, "password": user.password})}


CREATE = json.dumps({"callMode": "create", "app": "fuzz", "at": 0, "dur": 0, "fl": -1, "p": "{}"})


@pytest.fixture(scope="module")
def live(cluster: Cluster, fuzz_user: WialonUser) -> dict[str, str]:
    """Values the placeholders stand for: a live session, a dead one, and a token."""
    url = cluster.gateway_url
    dead = json.loads(send(url, "POST", login_fields(fuzz_user))[2])["eid"]
    send(url, "POST", {"svc": "core/logout", "sid": dead})
    values = {"$SID": "", "$DEAD": dead, "$H": ""}
    revive(url, values, fuzz_user)
    return values


def revive(url: str, live: dict[str, str], user: WialonUser) -> None:
    """Log in again, or make a new token, when an example logged the fuzzer's session out or deleted
    its token (core/logout, token/update delete, alone or in a batch): the later examples should
    still reach past the session check."""
    listed = json.loads(send(url, "POST", {"svc": "token/list", "params": "{}", "sid": live["$SID"]})[2])
    if not isinstance(listed, list):
        live["$SID"] = json.loads(send(url, "POST", login_fields(user))[2])["eid"]
        listed = json.loads(send(url, "POST", {"svc": "token/list", "params": "{}", "sid": live["$SID"]})[2])
    if live["$H"] not in {token["h"] for token in listed}:
        created = send(url, "POST", {"svc": "token/update", "params": CREATE, "sid": live["$SID"]})
        live["$H"] = json.loads(created[2])["h"]


def fill(text: str, live: dict[str, str]) -> str:
    for placeholder, value in live.items():
        text = text.replace(placeholder, value)
    return text


def test_the_placeholders_are_live(cluster: Cluster, live: dict[str, str]) -> None:
    """The fuzzer reaches past the session check: its session and token are real."""
    _, _, raw = send(cluster.gateway_url, "POST", {"svc": "token/list", "params": "{}", "sid": live["$SID"]})
    assert live["$H"] in {t["h"] for t in json.loads(raw)}
    _, _, raw = send(cluster.gateway_url, "POST", {"svc": "token/list", "params": "{}", "sid": live["$DEAD"]})
    assert json.loads(raw) == {"error": 1}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=fields, method=st.sampled_from(["GET", "POST"]))
def test_any_svc_params_and_sid_get_a_json_reply(
    cluster: Cluster, live: dict[str, str], fuzz_user: WialonUser, body: dict[str, str], method: str
) -> None:
    filled = {name: fill(value, live) for name, value in body.items()}
    # A request line over 8190 bytes is refused by aiohttp's HTTP parser before any endpoint sees it
    # (a plain 400): long values are sent in a POST body instead.
    if method == "GET" and len(urlencode(filled)) > MAX_QUERY:
        method = "POST"
    check(*send(cluster.gateway_url, method, filled))
    if filled.get("svc") in ("core/logout", "core/batch", "token/update"):
        revive(cluster.gateway_url, live, fuzz_user)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_any_form_body_gets_a_json_reply(cluster: Cluster, raw: bytes) -> None:
    check(*send(cluster.gateway_url, "POST", {}, raw))
