"""The hotspot dialect on the in-process trio: a voucher's life (create, get, use, repay, delete), JSON
and form bodies, and the envelope's errors, in milliseconds."""

from __future__ import annotations

import io
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from registry.store import Store
from registry.voucher_routes import ROUTES
from shared.contracts.registry import vouchers
from shared.postgres import create_pool
from tests.inprocess.conftest import Trio


@dataclass(frozen=True)
class Operator:
    username: str
    api_token: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def items(self) -> list[dict[str, Any]]:
        assert self.status == 200, self.body
        assert self.body["status"] == "success"
        data: dict[str, dict[str, Any]] = self.body["data"]
        assert list(data) == [str(i) for i in range(len(data))]
        return list(data.values())

    @property
    def codes(self) -> list[str]:
        return [item["token"] for item in self.items]

    @property
    def error(self) -> str:
        assert self.body["status"] == "error", self.body
        assert self.body["error"]["message"]
        code: str = self.body["error"]["code"]
        return code


@pytest.fixture(scope="module")
async def store(trio: Trio) -> AsyncIterator[Store]:
    pool = await create_pool(trio.settings.database_url, max_size=2, timeout=5.0)
    try:
        yield Store(pool, trio.settings.pepper)
    finally:
        await pool.close()


async def new_operator(store: Store, *, disabled: bool = False) -> Operator:
    username = f"hotspot-{secrets.token_hex(4)}"
    await store.add_user(username, "admin")
    key = await store.new_api_key(username)
    if disabled:
        await store.set_status(username, "disabled")
    return Operator(username, key)


@pytest.fixture(scope="module")
async def operator(store: Store) -> Operator:
    return await new_operator(store)


async def send(trio: Trio, method: str = "POST", **kwargs: Any) -> Answer:
    async with trio.gateway.request(method, "/hotspot/api", **kwargs) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        return Answer(response.status, body, dict(response.headers))


async def call(
    trio: Trio, op: Operator, method: str, params: dict[str, Any] | None = None, *, form: bool = False
) -> Answer:
    if form:
        fields = {"api_token": op.api_token, "method": method}
        if params is not None:
            fields["parameters"] = orjson.dumps(params).decode()
        return await send(trio, data=fields)
    return await send(trio, json={"api_token": op.api_token, "method": method, "parameters": params})


def device() -> str:
    """A MAC of its own per use: the guess throttle counts per device."""
    return "02:" + ":".join(secrets.token_hex(1) for _ in range(5))


async def test_a_vouchers_life_from_create_to_delete(trio: Trio, operator: Operator) -> None:
    u_id = f"life-{secrets.token_hex(4)}"
    created = await call(trio, operator, "createtokens", {"count": 3, "lifetime": 3600, "u_id": u_id})
    first, second, third = created.codes
    assert all(len(code) == 10 and code.isdigit() for code in created.codes)
    assert created.items[0]["validity"] == 3600
    assert created.items[0]["u_id"] == u_id
    assert created.items[0]["used_at"] is None

    listed = await call(trio, operator, "gettokens", {"u_id": u_id})
    assert listed.codes == [first, second, third]

    mac = device()
    used = await call(trio, operator, "usetoken", {"token": first, "mac": mac.upper().replace(":", "-")})
    assert used.items[0]["mac"] == mac
    assert used.items[0]["used_at"] is not None
    assert used.items[0]["expired_at"] is not None
    assert (await call(trio, operator, "usetoken", {"token": first, "mac": device()})).error == "voucher_used"
    assert (await call(trio, operator, "gettokens", {"u_id": u_id, "used_at": 1})).codes == [first]
    assert (await call(trio, operator, "gettokens", {"u_id": u_id, "used_at": "0"})).codes == [second, third]

    unknown = "1" * 10 if "1" * 10 not in created.codes else "2" * 10
    repaid = await call(trio, operator, "repaytokens", {"tokens": [second, unknown, second]})
    assert repaid.items == [
        {"token": second, "result": "repaid"},
        {"token": unknown, "result": "not_found"},
        {"token": second, "result": "repaid"},
    ]
    assert (
        await call(trio, operator, "usetoken", {"token": second, "mac": device()})
    ).error == "voucher_repaid"
    assert (await call(trio, operator, "gettokens", {"u_id": u_id, "repaid_at": True})).codes == [second]

    deleted = await call(trio, operator, "deletetokens", {"tokens": [third, int(first)]})
    assert deleted.items == [{"token": third, "result": "deleted"}, {"token": first, "result": "deleted"}]
    assert (await call(trio, operator, "gettokens", {"u_id": u_id})).codes == [second]
    assert (
        await call(trio, operator, "usetoken", {"token": third, "mac": device()})
    ).error == "voucher_deleted"
    again = await call(trio, operator, "deletetokens", {"tokens": [third]})
    assert again.items == [{"token": third, "result": "not_found"}]


async def test_a_multi_use_voucher_works_from_any_device(trio: Trio, operator: Operator) -> None:
    (code,) = (await call(trio, operator, "createtokens", {"count": 1, "multiple": 1, "u_id": 42})).codes
    first = await call(trio, operator, "usetoken", {"token": code, "mac": device()})
    later = await call(trio, operator, "usetoken", {"token": code, "mac": device()})
    assert first.items[0]["multiple"] == later.items[0]["multiple"] == 1
    assert later.items[0]["used_at"] == first.items[0]["used_at"]
    assert later.items[0]["u_id"] == 42  # given as a number, answered as one


async def test_an_unknown_code_is_not_found(trio: Trio, operator: Operator) -> None:
    answer = await call(trio, operator, "usetoken", {"token": "0000000001", "mac": device()})
    assert (answer.status, answer.error) == (404, "not_found")


async def test_form_encoded_and_multipart_bodies(trio: Trio, operator: Operator) -> None:
    u_id = f"form-{secrets.token_hex(4)}"
    created = await call(trio, operator, "createtokens", {"count": "2", "u_id": u_id}, form=True)
    assert len(created.codes) == 2
    assert (await call(trio, operator, "gettokens", {"u_id": u_id, "limit": "1"}, form=True)).codes == [
        created.codes[0]
    ]
    multipart = aiohttp.FormData(default_to_multipart=True)
    multipart.add_field("api_token", operator.api_token)
    multipart.add_field("method", "gettokens")
    multipart.add_field("parameters", orjson.dumps({"u_id": u_id, "offset": 1}).decode())
    assert (await send(trio, data=multipart)).codes == [created.codes[1]]
    # Parameters as a JSON string in a JSON body (double-encoding clients).
    as_string = {"api_token": operator.api_token, "method": "gettokens", "parameters": f'{{"u_id":"{u_id}"}}'}
    assert (await send(trio, json=as_string)).codes == created.codes
    # A form field twice, or as a file, is refused.
    twice = [("api_token", operator.api_token), ("method", "gettokens"), ("method", "x")]
    assert (await send(trio, data=twice)).error == "invalid_request"
    as_file = aiohttp.FormData()
    as_file.add_field("api_token", operator.api_token)
    as_file.add_field("method", "gettokens")
    as_file.add_field("parameters", b"{}", filename="parameters.json")
    assert (await send(trio, data=as_file)).error == "invalid_request"


@pytest.mark.parametrize(
    ("envelope", "status", "code"),
    [
        ({"method": "gettokens"}, 401, "unauthorized"),
        ({"api_token": "thk_" + "0" * 64, "method": "gettokens"}, 401, "unauthorized"),
        ({"api_token": "x" * 1000, "method": "gettokens"}, 401, "unauthorized"),
        ({"api_token": "KEY"}, 400, "invalid_request"),
        ({"api_token": "KEY", "method": 5}, 400, "invalid_request"),
        ({"api_token": 5, "method": "gettokens"}, 400, "invalid_request"),
        ({"api_token": "KEY", "method": "GetTokens"}, 400, "unknown_method"),
        ({"api_token": "KEY", "method": "gettokens", "parameters": [1]}, 400, "invalid_request"),
        ({"api_token": "KEY", "method": "gettokens", "parameters": "{"}, 400, "invalid_request"),
        ({"api_token": "KEY", "method": "gettokens", "parameters": {"used": 1}}, 400, "invalid_request"),
        ({"api_token": "KEY", "method": "gettokens", "parameters": {"limit": 0}}, 400, "invalid_request"),
        ({"api_token": "KEY", "method": "createtokens", "parameters": {}}, 400, "invalid_request"),
        ({"api_token": "KEY", "method": "usetoken", "parameters": {"token": 1}}, 400, "invalid_request"),
        (
            {
                "api_token": "KEY",
                "method": "usetoken",
                "parameters": {"token": "1234567890", "mac": "ff" * 6},
            },
            400,
            "invalid_request",
        ),
        ({"api_token": "KEY", "method": "repaytokens", "parameters": {"tokens": []}}, 400, "invalid_request"),
    ],
)
async def test_envelope_and_parameter_errors(
    trio: Trio, operator: Operator, envelope: dict[str, Any], status: int, code: str
) -> None:
    if envelope.get("api_token") == "KEY":
        envelope = {**envelope, "api_token": operator.api_token}
    answer = await send(trio, json=envelope)
    assert (answer.status, answer.error) == (status, code)


async def test_bodies_that_are_no_envelope(trio: Trio) -> None:
    not_json = await send(trio, data=b"{not json", headers={"Content-Type": "application/json"})
    assert (not_json.status, not_json.error) == (400, "invalid_request")
    assert (await send(trio, json=[])).error == "invalid_request"
    get = await send(trio, "GET")
    assert (get.status, get.error, get.headers["Allow"]) == (405, "method_not_allowed", "POST")
    huge = orjson.dumps({"method": "gettokens", "parameters": {"u_id": "x" * (1 << 20)}})
    too_large = await send(trio, data=io.BytesIO(huge), headers={"Content-Type": "application/json"})
    assert (too_large.status, too_large.error) == (413, "payload_too_large")


async def test_a_disabled_operator_is_forbidden(trio: Trio, store: Store) -> None:
    disabled = await new_operator(store, disabled=True)
    answer = await call(trio, disabled, "gettokens")
    assert (answer.status, answer.error) == (403, "forbidden")


async def test_operators_see_only_their_own_vouchers(trio: Trio, store: Store, operator: Operator) -> None:
    other = await new_operator(store)
    (code,) = (await call(trio, other, "createtokens", {"count": 1})).codes
    assert (await call(trio, operator, "gettokens", {"token": code})).items == []
    assert (await call(trio, operator, "deletetokens", {"tokens": [code]})).items == [
        {"token": code, "result": "not_found"}
    ]
    assert (await call(trio, other, "gettokens", {"token": code})).codes == [code]


def test_the_registry_serves_every_voucher_endpoint_and_no_other() -> None:
    assert sorted(r.path for r in ROUTES) == sorted(e.path for e in vouchers.ENDPOINTS)
