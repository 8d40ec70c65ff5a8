"""Shapes of bad input that used to reach an internal error (issue 13, item 5): each gets the
dialect's own error now, and no service logs a surprise. (The fuzz suites generate these shapes too.)
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from shared.internal import INTERNAL_KEY_HEADER
from tests.conftest import ADMIN_PASSWORD
from tests.e2e.harness import Cluster, Service
from tests.e2e.raw_http import send_raw
from tests.e2e.zabbix_client import login, rpc

# Python refuses to turn a string of over 4,300 digits into an int.
LONG_DIGITS = "9" * 4301
LONG_ONE = "0" * 4300 + "1"  # PHP reads leading zeros away: this is the id 1
TOO_LARGE = "a number is too large"


@pytest.fixture(scope="module")
async def session(cluster: Cluster) -> str:
    async with aiohttp.ClientSession() as http:
        return await login(http, cluster.gateway_url, "Admin", ADMIN_PASSWORD)


@pytest.mark.parametrize(
    ("method", "params", "path"),
    [
        ("token.delete", [LONG_DIGITS], "/1"),
        ("token.generate", [LONG_DIGITS], "/1"),
        ("token.update", [{"tokenid": LONG_DIGITS}], "/1/tokenid"),
        ("token.update", [{"tokenid": "1", "status": LONG_DIGITS}], "/1/status"),
        ("token.update", [{"tokenid": "1", "expires_at": "-" + LONG_DIGITS}], "/1/expires_at"),
        ("token.create", [{"name": "x", "userid": LONG_DIGITS}], "/1/userid"),
        ("token.create", [{"name": "x", "expires_at": LONG_DIGITS}], "/1/expires_at"),
        ("token.get", {"tokenids": [LONG_DIGITS]}, "/tokenids/1"),
        ("token.get", {"userids": ["1", LONG_DIGITS]}, "/userids/2"),
        ("token.get", {"valid_at": LONG_DIGITS}, "/valid_at"),
        ("token.get", {"expired_at": LONG_DIGITS}, "/expired_at"),
        ("token.get", {"limit": LONG_DIGITS}, "/limit"),
    ],
)
async def test_a_digit_string_past_pythons_conversion_limit_is_a_number_too_large(
    cluster: Cluster, session: str, method: str, params: Any, path: str
) -> None:
    async with aiohttp.ClientSession() as http:
        reply = await rpc(http, cluster.gateway_url, method, params, auth=session)
    assert reply["error"] == {
        "code": -32602,
        "message": "Invalid params.",
        "data": f'Invalid parameter "{path}": {TOO_LARGE}.',
    }


async def test_leading_zeros_are_read_away_as_php_does(cluster: Cluster, session: str) -> None:
    async with aiohttp.ClientSession() as http:
        reply = await rpc(
            http,
            cluster.gateway_url,
            "token.get",
            {"tokenids": [LONG_ONE], "countOutput": True},
            auth=session,
        )
        assert "result" in reply, reply
        # As a filter value, a long digit string matches nothing, and is no error either.
        reply = await rpc(
            http,
            cluster.gateway_url,
            "token.get",
            {"filter": {"tokenid": [LONG_DIGITS]}, "countOutput": True},
            auth=session,
        )
        assert reply["result"] == "0"


@pytest.mark.parametrize(
    "value",
    [b"Bearer \xff\xfe" + b"0" * 62, b"Bearer \xc3" + b"a" * 63, b"Bearer " + "é".encode() + b"\xff"],
    ids=["latin1", "broken-utf8", "mixed"],
)
async def test_a_bearer_value_that_is_not_utf8_is_not_authorized(cluster: Cluster, value: bytes) -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "method": "token.get", "params": {}, "id": 1})
    headers = [b"Content-Type: application/json-rpc", b"Authorization: " + value]
    reply = await send_raw(cluster["gateway"].port, "POST", "/api_jsonrpc.php", headers, body)
    assert reply.status == 200
    assert reply.json()["error"] == {"code": -32602, "message": "Invalid params.", "data": "Not authorized."}


@pytest.mark.parametrize("service", ["issuer", "registry"])
async def test_an_internal_key_that_is_not_utf8_is_refused_like_a_wrong_one(
    cluster: Cluster, service: Service
) -> None:
    path = "/v1/pairs/check" if service == "issuer" else "/v1/users/1"
    method = "POST" if service == "issuer" else "GET"
    reply = await send_raw(
        cluster[service].port,
        method,
        path,
        [INTERNAL_KEY_HEADER.encode() + b": \xff\xfe\xfd" + b"k" * 30],
        b"{}",
    )
    assert reply.status == 401
    assert reply.json()["error"]["code"] == "internal_key_refused"
