"""Property: nothing sent to /api_jsonrpc.php yields HTTP 500, a traceback, or a reply that is not
a JSON-RPC result or error object."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_PASSWORD
from tests.e2e.harness import Cluster

pytestmark = pytest.mark.e2e

CODES = {-32700, -32600, -32601, -32602, -32603, -32500}
METHODS = [
    "apiinfo.version",
    "user.login",
    "user.logout",
    "user.checkAuthentication",
    "token.create",
    "token.update",
    "token.delete",
    "token.get",
    "token.generate",
    "TOKEN.GET",
    "token.nosuch",
    "nosuch.get",
    "",
    ".",
]
PARAM_NAMES = [
    "name", "description", "userid", "status", "expires_at", "tokenid", "tokenids", "userids", "token",
    "valid_at", "expired_at", "filter", "search", "searchByAny", "startSearch", "excludeSearch",
    "searchWildcardsEnabled", "output", "countOutput", "sortfield", "sortorder", "limit", "preservekeys",
    "username", "password", "userData", "sessionid", "0",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
special_text = st.sampled_from(
    [
        "%", "_", "*", "\\", "'; DROP TABLE tokens; --", "0", "-1", "extend", "ASC", "\x00", "ü",
        # Past Python's 4,300-digit int conversion limit, with and without leading zeros and a sign.
        "9" * 4301, "0" * 4300 + "1", "-" + "7" * 5000,
    ]
)  # fmt: skip
json_values = st.recursive(
    scalars | special_text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
params = (
    json_values
    | st.dictionaries(st.sampled_from(PARAM_NAMES), json_values, max_size=6)
    | st.lists(st.dictionaries(st.sampled_from(PARAM_NAMES), json_values, max_size=4), max_size=3)
)
calls = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]) | scalars,
        "method": st.sampled_from(METHODS) | scalars,
        "params": params,
        "id": st.integers() | st.text(max_size=5) | st.none() | json_values,
        "auth": st.sampled_from(["SESSION", "0" * 64, "nonsense"]) | scalars,
    },
)
bodies = calls | st.lists(calls, max_size=3) | json_values


def post(
    url: str, data: bytes, content_type: str = "application/json-rpc", method: str = "POST"
) -> tuple[int, bytes]:
    # Only ever the test's own gateway on loopback.
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_reply(reply: Any) -> None:
    assert isinstance(reply, dict), reply
    assert reply["jsonrpc"] == "2.0"
    assert "id" in reply
    assert ("result" in reply) != ("error" in reply), reply
    if "error" in reply:
        error = reply["error"]
        assert error["code"] in CODES, error
        assert isinstance(error["message"], str)
        assert isinstance(error["data"], str)
        assert error["code"] != -32603, f"internal error: {reply}"


@pytest.fixture(scope="module")
def session(cluster: Cluster) -> str:
    body = {
        "jsonrpc": "2.0",
        "method": "user.login",
        "params": {"username": "Admin", "password": ADMIN_PASSWORD},
        "id": 1,
    }
    status, raw = post(cluster.gateway_url + "/api_jsonrpc.php", json.dumps(body).encode())
    assert status == 200
    session_id: str = json.loads(raw)["result"]
    return session_id


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_any_json_gets_a_json_rpc_reply(cluster: Cluster, session: str, body: Any) -> None:
    text = json.dumps(body).replace('"SESSION"', json.dumps(session))
    status, raw = post(cluster.gateway_url + "/api_jsonrpc.php", text.encode())
    assert status == 200, raw
    assert b"Traceback" not in raw
    if not raw:  # notifications only
        return
    reply = json.loads(raw)
    for one in reply if isinstance(reply, list) else [reply]:
        check_reply(one)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json-rpc", "application/json", "text/plain", ""]),
)
def test_any_bytes_get_a_parse_error_or_a_412(cluster: Cluster, raw: bytes, content_type: str) -> None:
    status, reply = post(cluster.gateway_url + "/api_jsonrpc.php", raw, content_type)
    if content_type in ("text/plain", ""):
        assert status == 412
        return
    assert status == 200
    assert b"Traceback" not in reply
    if reply:
        decoded = json.loads(reply)
        for one in decoded if isinstance(decoded, list) else [decoded]:
            check_reply(one)


def test_options_is_a_preflight_answered_as_api_jsonrpc_php_does(cluster: Cluster) -> None:
    """Zabbix 6.0 answers OPTIONS with its CORS headers and nothing else, whatever the Content-Type."""
    url = cluster.gateway_url + "/api_jsonrpc.php"
    for content_type in ("", "application/json"):
        request = urllib.request.Request(  # noqa: S310 (loopback only)
            url, method="OPTIONS", headers={"Content-Type": content_type} if content_type else {}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert (response.status, response.read()) == (200, b"")
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"
            assert response.headers["Access-Control-Allow-Methods"] == "POST"
            assert response.headers["Access-Control-Max-Age"] == "1000"


def test_every_answer_carries_the_cors_headers(cluster: Cluster) -> None:
    url = cluster.gateway_url + "/api_jsonrpc.php"
    for content_type, body in (("", b""), ("application/json", b"{"), ("application/json", b"{}")):
        request = urllib.request.Request(  # noqa: S310 (loopback only)
            url, data=body, method="POST", headers={"Content-Type": content_type} if content_type else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                headers = response.headers
        except urllib.error.HTTPError as exc:
            headers = exc.headers
        assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_http_methods_are_answered_as_api_jsonrpc_php_does(cluster: Cluster, method: str) -> None:
    """api_jsonrpc.php looks at the Content-Type, not at the method: without a JSON one a bare 412,
    with one the body is read as a call like any POST's (an empty body is a parse error)."""
    url = cluster.gateway_url + "/api_jsonrpc.php"
    assert post(url, b"", "", method) == (412, b"")
    status, raw = post(url, b"", "application/json", method)
    assert status == 200
    assert json.loads(raw)["error"]["code"] == -32700
    call = {"jsonrpc": "2.0", "method": "apiinfo.version", "params": {}, "id": 7}
    status, raw = post(url, json.dumps(call).encode(), "application/json-rpc", method)
    assert status == 200
    assert json.loads(raw)["result"] == "6.0.14"


def test_oversized_body_gets_an_error_object(cluster: Cluster) -> None:
    status, raw = post(cluster.gateway_url + "/api_jsonrpc.php", b"[" + b"1," * (1 << 20) + b"1]")
    assert status == 413
    check_reply(json.loads(raw))
