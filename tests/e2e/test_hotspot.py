"""The hotspot voucher dialect end to end: real gateway, issuer, registry, Postgres and Redis.

Each test calls from a loopback address of its own (hotspot_client.hotspot_client), so failed
voucher guesses of one test never throttle another.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import itertools
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from cryptography.exceptions import InvalidTag

from registry.vouchers import seal_context
from shared.secrets import Sealer, lookup_hash
from shared.settings import DEV_PEPPER, DEV_SEAL_KEY
from tests.e2e.harness import Cluster, running_cluster
from tests.e2e.hotspot_client import (
    CODE,
    TIME,
    VOUCHER_FIELDS,
    Hotspot,
    Operator,
    Reply,
    check_envelope,
    hotspot_client,
    new_operator,
    random_loopback,
    random_mac,
)

pytestmark = pytest.mark.e2e


def unix(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


def mac(n: int) -> str:
    return f"02:00:00:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


def unknown_code() -> str:
    """A well-formed code that no voucher has: codes never start with 0."""
    return "0" + "".join(str(secrets.randbelow(10)) for _ in range(9))


@pytest.fixture
async def hotspot(cluster: Cluster) -> AsyncIterator[Hotspot]:
    async with hotspot_client(cluster.gateway_url) as client:
        yield client


@pytest.fixture(scope="module")
def barren(environment: dict[str, str]) -> Operator:
    """An operator that must never end up with a voucher."""
    return new_operator(environment)


@pytest.fixture(scope="module")
def operator(environment: dict[str, str]) -> Operator:
    return new_operator(environment)


@pytest.fixture(scope="module")
def super_admin(environment: dict[str, str]) -> Operator:
    from tests.conftest import run_cli

    key = run_cli(["users", "api-key", "Admin"], environment)
    assert key.returncode == 0, key.stderr
    return Operator(1, "Admin", key.stdout.strip())


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# --- gettokens: every filter combination ---------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A voucher of the catalogue and the state the test put it in."""

    code: str
    used: bool
    repaid: bool
    multiple: bool
    validity: bool
    u_id: str | None
    deleted: bool


ABSENT = object()
FLAG_VALUES: tuple[Any, ...] = (1, 0, None, ABSENT)
# gettokens filter name -> the Known attribute it tests.
FLAG_FILTERS = {"used_at": "used", "repaid_at": "repaid", "multiple": "multiple", "validity": "validity"}
U_IDS = ("alpha", "beta", None)
# What happens to the voucher at each position of a batch: (used, repaid, deleted).
FATES = (
    (False, False, False),
    (True, False, False),
    (False, True, False),
    (True, True, False),
    (False, False, True),
    (True, False, True),
    (False, True, True),
)


def expected(catalogue: list[Known], params: dict[str, Any]) -> list[str]:
    """An independent filter: what gettokens must return for `params`, in creation order."""
    result = []
    for v in catalogue:
        if v.deleted:
            continue
        if any(
            params.get(name) is not None and getattr(v, attr) != (params[name] == 1)
            for name, attr in FLAG_FILTERS.items()
        ):
            continue
        if params.get("token") is not None and v.code != params["token"]:
            continue
        if params.get("u_id") is not None and v.u_id != params["u_id"]:
            continue
        result.append(v.code)
    return result


@pytest.fixture(scope="module")
async def catalogue(cluster: Cluster, environment: dict[str, str]) -> tuple[Operator, list[Known]]:
    """An operator of its own with vouchers in every combination of used, repaid, multiple and
    validity, each with u_id alpha, beta or none, and some of each deleted."""
    owner = new_operator(environment)
    known: list[Known] = []
    async with hotspot_client(cluster.gateway_url) as hs:
        for multiple, lifetime, u_id in itertools.product((0, 1), (0, 3600), U_IDS):
            params: dict[str, Any] = {"multiple": multiple, "lifetime": lifetime}
            if u_id is not None:
                params["u_id"] = u_id
            codes = await hs.create(owner.api_token, len(FATES), **params)
            for code, (used, repaid, deleted) in zip(codes, FATES, strict=True):
                known.append(Known(code, used, repaid, bool(multiple), bool(lifetime), u_id, deleted))
        for i, v in enumerate(k for k in known if k.used):
            await hs.ok(owner.api_token, "usetoken", {"token": v.code, "mac": mac(i + 1)})
        await hs.ok(owner.api_token, "repaytokens", {"tokens": [v.code for v in known if v.repaid]})
        await hs.ok(owner.api_token, "deletetokens", {"tokens": [v.code for v in known if v.deleted]})
    return owner, known


async def test_the_catalogue_is_in_the_states_the_filters_test(
    catalogue: tuple[Operator, list[Known]], hotspot: Hotspot
) -> None:
    owner, known = catalogue
    listed = (await hotspot.ok(owner.api_token, "gettokens")).items
    live = [v for v in known if not v.deleted]
    assert [item["token"] for item in listed] == [v.code for v in live]
    for item, v in zip(listed, live, strict=True):
        assert set(item) == VOUCHER_FIELDS
        assert (item["used_at"] is not None) == v.used
        assert (item["mac"] is not None) == v.used
        assert (item["repaid_at"] is not None) == v.repaid
        assert item["multiple"] == int(v.multiple)
        assert item["validity"] == (3600 if v.validity else 0)
        assert (item["expired_at"] is not None) == (v.used and v.validity)
        assert item["u_id"] == v.u_id
    # Every combination of the four flags has a live voucher, so no filter is tested on nothing.
    states = {(v.used, v.repaid, v.multiple, v.validity) for v in live}
    assert len(states) == 16


async def test_gettokens_every_filter_combination(
    catalogue: tuple[Operator, list[Known]], hotspot: Hotspot
) -> None:
    """used_at, repaid_at, multiple, validity each 1, 0, null or absent (256 combinations), each
    alone and with token and u_id exact, against an independent filter of the known set."""
    owner, known = catalogue
    cases: list[dict[str, Any]] = []
    codes = itertools.cycle([v.code for v in known])  # deleted ones too: they must never match
    u_ids = itertools.cycle(U_IDS)
    for n, values in enumerate(itertools.product(FLAG_VALUES, repeat=4)):
        flags = {name: value for name, value in zip(FLAG_FILTERS, values, strict=True) if value is not ABSENT}
        code, u_id = next(codes), next(u_ids)
        cases += [
            # null token and u_id are ignored like absent ones.
            flags if n % 2 else {**flags, "token": None, "u_id": None},
            {**flags, "u_id": u_id},
            {**flags, "token": code},
            {**flags, "token": code, "u_id": u_id},
        ]

    async def check(params: dict[str, Any]) -> None:
        reply = await hotspot.ok(owner.api_token, "gettokens", params)
        assert reply.tokens == expected(known, params), params

    for start in range(0, len(cases), 16):
        await asyncio.gather(*(check(params) for params in cases[start : start + 16]))
    assert len(cases) == 1024


@pytest.mark.parametrize(
    ("yes", "no"), [(1, 0), ("1", "0"), (True, False)], ids=["numbers", "strings", "booleans"]
)
async def test_gettokens_flags_may_be_spelled_as_strings_or_booleans(
    catalogue: tuple[Operator, list[Known]], hotspot: Hotspot, yes: Any, no: Any
) -> None:
    owner, known = catalogue
    reply = await hotspot.ok(owner.api_token, "gettokens", {"used_at": yes, "multiple": no})
    assert reply.tokens == expected(known, {"used_at": 1, "multiple": 0})
    assert reply.tokens


async def test_gettokens_pages_with_limit_and_offset(
    catalogue: tuple[Operator, list[Known]], hotspot: Hotspot
) -> None:
    owner, known = catalogue
    everything = expected(known, {"repaid_at": 0})
    pages: list[str] = []
    for offset in range(0, len(everything) + 7, 7):
        reply = await hotspot.ok(owner.api_token, "gettokens", {"repaid_at": 0, "limit": 7, "offset": offset})
        assert len(reply.tokens) <= 7
        pages += reply.tokens
    assert pages == everything
    beyond = await hotspot.ok(owner.api_token, "gettokens", {"offset": len(known)})
    assert beyond.body["data"] == {}


# --- createtokens --------------------------------------------------------------------------------


async def test_createtokens_makes_10000_unique_10_digit_vouchers_in_one_call(
    hotspot: Hotspot, environment: dict[str, str], database_url: str
) -> None:
    owner = new_operator(environment)
    u_id = f"batch-{secrets.token_hex(4)}"
    created = await hotspot.ok(owner.api_token, "createtokens", {"count": 10_000, "u_id": u_id})
    codes = created.tokens
    assert len(codes) == 10_000
    assert len(set(codes)) == 10_000
    assert all(CODE.fullmatch(code) for code in codes)
    assert all(
        item["used_at"] is None and item["multiple"] == 0 and item["validity"] == 0 and item["u_id"] == u_id
        for item in created.items
    )
    listed = await hotspot.ok(owner.api_token, "gettokens", {"u_id": u_id, "limit": 10_000})
    assert listed.tokens == codes
    rows = await fetch(
        database_url, "SELECT count(*) AS n FROM tokens WHERE kind = 'voucher' AND owner_id = $1", owner.id
    )
    assert rows[0]["n"] == 10_000


async def test_vouchers_are_stored_as_a_hash_and_a_sealed_copy_only(
    hotspot: Hotspot, operator: Operator, database_url: str
) -> None:
    codes = await hotspot.create(operator.api_token, 3)
    sealer = Sealer.from_b64(DEV_SEAL_KEY)
    for code in codes:
        code_hash = lookup_hash(code, DEV_PEPPER)
        rows = await fetch(
            database_url,
            "SELECT sealed_secret, t::text AS whole FROM tokens t WHERE secret_hash = $1",
            code_hash,
        )
        assert len(rows) == 1
        assert code not in rows[0]["whole"]  # no column holds the code in plaintext
        assert sealer.unseal(rows[0]["sealed_secret"], seal_context(code_hash)) == code
        # The sealed copy is bound to its own row: under another code's hash it does not open.
        with pytest.raises(InvalidTag):
            sealer.unseal(rows[0]["sealed_secret"], seal_context(lookup_hash(unknown_code(), DEV_PEPPER)))


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"count": 0},
        {"count": 10_001},
        {"count": -1},
        {"count": 1.5},
        {"count": "ten"},
        {"count": True},
        {"count": 1, "multiple": 2},
        {"count": 1, "lifetime": -1},
        {"count": 1, "lifetime": 2**31},
        {"count": 1, "u_id": "x" * 256},
        {"count": 1, "u_id": "line\nbreak"},
        {"count": 1, "u_id": ["list"]},
        {"count": 1, "counts": 2},
    ],
)
async def test_createtokens_refuses_bad_parameters_and_creates_nothing(
    hotspot: Hotspot, barren: Operator, parameters: dict[str, Any]
) -> None:
    reply = await hotspot.call(barren.api_token, "createtokens", parameters)
    assert reply.error_code == "invalid_request"
    assert (await hotspot.ok(barren.api_token, "gettokens")).body["data"] == {}


async def test_a_u_id_comes_back_as_the_type_it_was_given(hotspot: Hotspot, operator: Operator) -> None:
    number = (await hotspot.create(operator.api_token, 1, u_id=123))[0]
    text = (await hotspot.create(operator.api_token, 1, u_id="123"))[0]
    for code, expected in ((number, 123), (text, "123")):
        voucher = await hotspot.voucher(operator.api_token, code)
        assert voucher is not None
        assert voucher["u_id"] == expected
    # Filtering by u_id matches both spellings, as they name one reference.
    for given in (123, "123"):
        listed = (await hotspot.ok(operator.api_token, "gettokens", {"u_id": given})).tokens
        assert {number, text} <= set(listed)


async def test_voucher_object_fields_and_times(hotspot: Hotspot, operator: Operator) -> None:
    before = int(time.time()) - 1
    code = (await hotspot.create(operator.api_token, 1, multiple=1, lifetime=3600, u_id=42))[0]
    after = int(time.time()) + 1
    fresh = await hotspot.voucher(operator.api_token, code)
    assert fresh is not None
    assert fresh["token"] == code
    assert TIME.fullmatch(fresh["created_at"])
    assert before <= unix(fresh["created_at"]) <= after
    assert [fresh[name] for name in ("used_at", "expired_at", "repaid_at", "mac")] == [None] * 4
    # u_id keeps the type it was given: the document's own example answers "u_id": 123.
    assert (fresh["multiple"], fresh["validity"], fresh["u_id"]) == (1, 3600, 42)

    used = (await hotspot.ok(operator.api_token, "usetoken", {"token": int(code), "mac": mac(7)})).item
    assert TIME.fullmatch(used["used_at"])
    assert unix(used["used_at"]) >= unix(used["created_at"])
    # The validity period starts at first use.
    assert unix(used["expired_at"]) - unix(used["used_at"]) == 3600
    assert used["mac"] == mac(7)
    assert await hotspot.voucher(operator.api_token, code) == used

    endless = (await hotspot.create(operator.api_token, 1))[0]
    used_endless = (await hotspot.ok(operator.api_token, "usetoken", {"token": endless, "mac": mac(8)})).item
    assert used_endless["used_at"] is not None
    assert used_endless["expired_at"] is None
    assert used_endless["validity"] == 0


# --- usetoken: the MAC rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    ["0A:1B:2C:3D:4E:5F", "0a-1b-2c-3d-4e-5f", "0a1b.2c3d.4e5f", "0A1B2C3D4E5F", " 0a:1b:2c:3d:4e:5f "],
)
async def test_usetoken_normalises_the_mac_to_lower_case_colon_form(
    hotspot: Hotspot, operator: Operator, given: str
) -> None:
    code = (await hotspot.create(operator.api_token))[0]
    used = (await hotspot.ok(operator.api_token, "usetoken", {"token": code, "mac": given})).item
    assert used["mac"] == "0a:1b:2c:3d:4e:5f"
    # The same device in another spelling is still the bound device.
    again = await hotspot.ok(operator.api_token, "usetoken", {"token": code, "mac": "0a:1b:2c:3d:4e:5f"})
    assert again.item["used_at"] == used["used_at"]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0a:1b:2c:3d:4e",
        "0a:1b:2c:3d:4e:5f:60",
        "0g:1b:2c:3d:4e:5f",
        "0a:1b-2c:3d:4e:5f",
        "0a:1b:2c:3d:4e:5",
        "01:00:5e:00:00:01",  # multicast
        "ff:ff:ff:ff:ff:ff",  # broadcast
        "00:00:00:00:00:00",
        123,
        ["0a:1b:2c:3d:4e:5f"],
        None,
    ],
)
async def test_usetoken_refuses_what_is_not_a_device_mac(
    hotspot: Hotspot, operator: Operator, bad: Any
) -> None:
    code = (await hotspot.create(operator.api_token))[0]
    reply = await hotspot.call(operator.api_token, "usetoken", {"token": code, "mac": bad})
    assert reply.error_code == "invalid_request"
    voucher = await hotspot.voucher(operator.api_token, code)
    assert voucher is not None
    assert voucher["used_at"] is None


async def test_single_use_voucher_works_only_from_the_mac_that_used_it_first(
    hotspot: Hotspot, operator: Operator
) -> None:
    code = (await hotspot.create(operator.api_token, multiple=0))[0]
    first = (await hotspot.ok(operator.api_token, "usetoken", {"token": code, "mac": mac(1)})).item
    again = (await hotspot.ok(operator.api_token, "usetoken", {"token": code, "mac": mac(1)})).item
    assert again["used_at"] == first["used_at"]
    other = await hotspot.call(operator.api_token, "usetoken", {"token": code, "mac": mac(2)})
    assert other.error_code == "voucher_used"
    assert other.status == 409
    assert (await hotspot.voucher(operator.api_token, code)) == first


async def test_multi_use_voucher_works_from_any_mac_and_keeps_its_first_use(
    hotspot: Hotspot, operator: Operator
) -> None:
    code = (await hotspot.create(operator.api_token, multiple=1, lifetime=600))[0]
    first = (await hotspot.ok(operator.api_token, "usetoken", {"token": code, "mac": mac(1)})).item
    for n in (2, 3, 1):
        later = (await hotspot.ok(operator.api_token, "usetoken", {"token": code, "mac": mac(n)})).item
        assert (later["used_at"], later["expired_at"], later["mac"]) == (
            first["used_at"],
            first["expired_at"],
            mac(1),
        )


async def test_concurrent_first_uses_of_a_single_use_voucher_have_exactly_one_winner(
    hotspot: Hotspot, operator: Operator
) -> None:
    codes = await hotspot.create(operator.api_token, 10)

    async def race(code: str) -> None:
        replies = await asyncio.gather(
            *(hotspot.call(operator.api_token, "usetoken", {"token": code, "mac": mac(n)}) for n in (1, 2))
        )
        winners = [r for r in replies if r.status == 200]
        losers = [r for r in replies if r.status != 200]
        assert len(winners) == 1, [r.body for r in replies]
        assert losers[0].error_code == "voucher_used"
        stored = await hotspot.voucher(operator.api_token, code)
        assert stored is not None
        assert stored["mac"] == winners[0].item["mac"]

    await asyncio.gather(*(race(code) for code in codes))


async def test_a_voucher_fails_once_its_validity_period_is_over(hotspot: Hotspot, operator: Operator) -> None:
    single, multi = [(await hotspot.create(operator.api_token, multiple=m, lifetime=1))[0] for m in (0, 1)]
    for code in (single, multi):
        await hotspot.ok(operator.api_token, "usetoken", {"token": code, "mac": mac(1)})
    await asyncio.sleep(1.5)  # the period is one second; waiting longer only makes it more over
    for code in (single, multi):
        for n in (1, 2):
            reply = await hotspot.call(operator.api_token, "usetoken", {"token": code, "mac": mac(n)})
            assert reply.error_code == "voucher_expired"
    listed = await hotspot.voucher(operator.api_token, single)
    assert listed is not None
    assert listed["expired_at"] is not None  # still listed: expired is a state, not a deletion


# --- repaytokens, deletetokens -------------------------------------------------------------------


async def test_repaytokens_annuls_and_reports_what_was_not_found(
    hotspot: Hotspot, operator: Operator
) -> None:
    code, used = await hotspot.create(operator.api_token, 2)
    await hotspot.ok(operator.api_token, "usetoken", {"token": used, "mac": mac(1)})
    missing = unknown_code()
    reply = await hotspot.ok(operator.api_token, "repaytokens", {"tokens": [code, missing, int(used), code]})
    assert reply.items == [
        {"token": code, "result": "repaid"},
        {"token": missing, "result": "not_found"},
        {"token": used, "result": "repaid"},
        {"token": code, "result": "repaid"},
    ]
    repaid = await hotspot.voucher(operator.api_token, code)
    assert repaid is not None
    assert repaid["repaid_at"] is not None
    # Repaying again is no error and keeps the first repaid_at.
    await hotspot.ok(operator.api_token, "repaytokens", {"tokens": [code]})
    assert await hotspot.voucher(operator.api_token, code) == repaid
    for voucher in (code, used):
        refused = await hotspot.call(operator.api_token, "usetoken", {"token": voucher, "mac": mac(1)})
        assert refused.error_code == "voucher_repaid"


async def test_deletetokens_soft_deletes_and_reports_what_was_not_found(
    hotspot: Hotspot, operator: Operator
) -> None:
    code, repaid = await hotspot.create(operator.api_token, 2)
    await hotspot.ok(operator.api_token, "repaytokens", {"tokens": [repaid]})
    missing = unknown_code()
    reply = await hotspot.ok(operator.api_token, "deletetokens", {"tokens": [code, missing, repaid]})
    assert reply.items == [
        {"token": code, "result": "deleted"},
        {"token": missing, "result": "not_found"},
        {"token": repaid, "result": "deleted"},
    ]
    assert await hotspot.voucher(operator.api_token, code) is None
    again = await hotspot.ok(operator.api_token, "deletetokens", {"tokens": [code]})
    assert again.items == [{"token": code, "result": "not_found"}]
    repay_deleted = await hotspot.ok(operator.api_token, "repaytokens", {"tokens": [code]})
    assert repay_deleted.items == [{"token": code, "result": "not_found"}]
    refused = await hotspot.call(operator.api_token, "usetoken", {"token": code, "mac": mac(1)})
    assert refused.error_code == "voucher_deleted"


@pytest.mark.parametrize("method", ["repaytokens", "deletetokens"])
@pytest.mark.parametrize(
    "tokens", [[], "1234567890", ["123"], [None], [12345678901], ["1234567890"] * 10_001], ids=repr
)
async def test_batch_methods_refuse_malformed_lists(
    hotspot: Hotspot, operator: Operator, method: str, tokens: Any
) -> None:
    reply = await hotspot.call(operator.api_token, method, {"tokens": tokens})
    assert reply.error_code == "invalid_request"


async def test_audit_log_records_one_event_per_batch(
    hotspot: Hotspot, environment: dict[str, str], database_url: str
) -> None:
    owner = new_operator(environment)
    codes = await hotspot.create(owner.api_token, 5)
    await hotspot.ok(owner.api_token, "usetoken", {"token": codes[0], "mac": mac(1)})
    await hotspot.ok(owner.api_token, "usetoken", {"token": codes[0], "mac": mac(1)})  # a reconnect
    await hotspot.ok(owner.api_token, "repaytokens", {"tokens": codes[1:3]})
    await hotspot.ok(owner.api_token, "deletetokens", {"tokens": codes[3:]})
    rows = await fetch(
        database_url,
        "SELECT event, details, client_addr FROM audit_log"
        " WHERE actor_id = $1 AND kind = 'voucher' ORDER BY id",
        owner.id,
    )
    assert [(r["event"], orjson.loads(r["details"]).get("count")) for r in rows] == [
        ("created", 5),
        ("used", None),
        ("repaid", 2),
        ("deleted", 2),
    ]
    assert orjson.loads(rows[1]["details"]) == {"mac": mac(1)}
    assert {r["client_addr"] for r in rows} == {hotspot.address}
    assert not any(code in r["details"] for r in rows for code in codes)


# --- operators see their own vouchers, a super_admin everyone's --------------------------------------


async def test_operators_see_and_change_only_their_own_vouchers(
    hotspot: Hotspot, environment: dict[str, str], super_admin: Operator
) -> None:
    alice, bob = new_operator(environment), new_operator(environment)
    u_id = f"shared-{secrets.token_hex(4)}"
    a_codes = await hotspot.create(alice.api_token, 3, u_id=u_id)
    b_codes = await hotspot.create(bob.api_token, 2, u_id=u_id)

    assert (await hotspot.ok(alice.api_token, "gettokens", {"u_id": u_id})).tokens == a_codes
    assert (await hotspot.ok(bob.api_token, "gettokens", {"u_id": u_id})).tokens == b_codes
    assert (await hotspot.ok(alice.api_token, "gettokens")).tokens == a_codes
    assert (await hotspot.ok(alice.api_token, "gettokens", {"token": b_codes[0]})).tokens == []

    # Another operator's voucher is "not found" for every method, and stays untouched.
    used = await hotspot.call(alice.api_token, "usetoken", {"token": b_codes[0], "mac": random_mac()})
    assert used.error_code == "not_found"
    repaid = await hotspot.ok(alice.api_token, "repaytokens", {"tokens": [b_codes[0], a_codes[0]]})
    assert [item["result"] for item in repaid.items] == ["not_found", "repaid"]
    deleted = await hotspot.ok(alice.api_token, "deletetokens", {"tokens": [b_codes[1]]})
    assert [item["result"] for item in deleted.items] == ["not_found"]
    untouched = (await hotspot.ok(bob.api_token, "gettokens", {"u_id": u_id})).items
    assert [v["token"] for v in untouched] == b_codes
    assert all(v["used_at"] is None and v["repaid_at"] is None for v in untouched)

    # The super_admin sees both operators' vouchers and acts on any of them.
    everyone = await hotspot.ok(super_admin.api_token, "gettokens", {"u_id": u_id})
    assert everyone.tokens == a_codes + b_codes
    assert (await hotspot.ok(super_admin.api_token, "gettokens", {"token": b_codes[0]})).tokens == [
        b_codes[0]
    ]
    await hotspot.ok(super_admin.api_token, "usetoken", {"token": b_codes[0], "mac": mac(5)})
    by_admin = await hotspot.ok(super_admin.api_token, "repaytokens", {"tokens": [b_codes[1]]})
    assert by_admin.items == [{"token": b_codes[1], "result": "repaid"}]
    seen_by_bob = (await hotspot.ok(bob.api_token, "gettokens", {"u_id": u_id})).items
    assert seen_by_bob[0]["mac"] == mac(5)
    assert seen_by_bob[1]["repaid_at"] is not None


async def test_super_admin_listing_filters_every_operators_vouchers(
    hotspot: Hotspot, super_admin: Operator, database_url: str
) -> None:
    """The super_admin's unscoped listing (no token, no u_id) against an independent filter of
    every live voucher in the database, a page from the middle of each result."""
    await hotspot.create(super_admin.api_token, 3, multiple=1)  # its own, beside the operators'
    rows = await fetch(
        database_url,
        "SELECT id, owner_id, secret_hash, first_used_at IS NOT NULL AS used,"
        " repaid_at IS NOT NULL AS repaid, multi_use AS multiple, lifetime_s > 0 AS validity"
        " FROM tokens WHERE kind = 'voucher' AND deleted_at IS NULL ORDER BY id",
    )
    assert len({r["owner_id"] for r in rows}) > 2
    for values in itertools.product((1, 0, None), repeat=4):
        flags = dict(zip(FLAG_FILTERS, values, strict=True))
        wanted = [
            r["secret_hash"]
            for r in rows
            if all(
                value is None or r[attr] == (value == 1)
                for attr, value in zip(FLAG_FILTERS.values(), values, strict=True)
            )
        ]
        offset = len(wanted) // 2
        page = await hotspot.ok(super_admin.api_token, "gettokens", {**flags, "limit": 20, "offset": offset})
        assert [lookup_hash(code, DEV_PEPPER) for code in page.tokens] == wanted[offset : offset + 20], flags


# --- the envelope: form encoding and every error code ----------------------------------------------


async def test_form_encoded_requests(hotspot: Hotspot, operator: Operator) -> None:
    u_id = f"form-{secrets.token_hex(4)}"
    created = await hotspot.call(operator.api_token, "createtokens", {"count": "2", "u_id": u_id}, form=True)
    assert created.status == 200
    codes = created.tokens
    await hotspot.ok(operator.api_token, "usetoken", {"token": codes[0], "mac": mac(1)})
    listed = await hotspot.call(operator.api_token, "gettokens", {"u_id": u_id, "used_at": "0"}, form=True)
    assert listed.tokens == [codes[1]]

    multipart = aiohttp.FormData(default_to_multipart=True)
    multipart.add_field("api_token", operator.api_token)
    multipart.add_field("method", "gettokens")
    multipart.add_field("parameters", orjson.dumps({"u_id": u_id, "used_at": 1}).decode())
    assert (await hotspot.send(data=multipart)).tokens == [codes[0]]

    # Without parameters gettokens lists everything of the operator's.
    bare = await hotspot.send(data={"api_token": operator.api_token, "method": "gettokens"})
    assert set(codes) <= set(bare.tokens)
    # JSON clients that send parameters as a JSON string are understood too.
    as_string = await hotspot.send(
        json={"api_token": operator.api_token, "method": "gettokens", "parameters": f'{{"u_id":"{u_id}"}}'}
    )
    assert as_string.tokens == codes


async def test_form_encoded_errors(hotspot: Hotspot, operator: Operator) -> None:
    twice = await hotspot.send(
        data=[("api_token", operator.api_token), ("method", "gettokens"), ("method", "x")]
    )
    assert twice.error_code == "invalid_request"
    not_json = await hotspot.send(
        data={"api_token": operator.api_token, "method": "gettokens", "parameters": "{used_at:1}"}
    )
    assert not_json.error_code == "invalid_request"
    as_file = aiohttp.FormData()
    as_file.add_field("api_token", operator.api_token)
    as_file.add_field("method", "gettokens")
    as_file.add_field("parameters", b"{}", filename="parameters.json")
    assert (await hotspot.send(data=as_file)).error_code == "invalid_request"


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "invalid_request"),
        ({"data": b"\xff\xfe", "headers": {"Content-Type": "text/plain"}}, "invalid_request"),
        ({"json": []}, "invalid_request"),
        ({"json": "gettokens"}, "invalid_request"),
        ({"json": {"api_token": "KEY"}}, "invalid_request"),
        ({"json": {"api_token": "KEY", "method": 5}}, "invalid_request"),
        ({"json": {"api_token": 5, "method": "gettokens"}}, "invalid_request"),
        ({"json": {"api_token": "KEY", "method": "gettokens", "parameters": [1]}}, "invalid_request"),
        ({"json": {"api_token": "KEY", "method": "gettokens", "parameters": "{"}}, "invalid_request"),
        ({"json": {"api_token": "KEY", "method": "gettokens", "parameters": {"used": 1}}}, "invalid_request"),
        (
            {"json": {"api_token": "KEY", "method": "gettokens", "parameters": {"used_at": 2}}},
            "invalid_request",
        ),
        (
            {"json": {"api_token": "KEY", "method": "gettokens", "parameters": {"multiple": 1.0}}},
            "invalid_request",
        ),
        (
            {"json": {"api_token": "KEY", "method": "gettokens", "parameters": {"limit": 0}}},
            "invalid_request",
        ),
        (
            {"json": {"api_token": "KEY", "method": "gettokens", "parameters": {"limit": 10001}}},
            "invalid_request",
        ),
        (
            {"json": {"api_token": "KEY", "method": "gettokens", "parameters": {"offset": -1}}},
            "invalid_request",
        ),
        (
            {"json": {"api_token": "KEY", "method": "gettokens", "parameters": {"token": "12345"}}},
            "invalid_request",
        ),
        (
            {"json": {"api_token": "KEY", "method": "usetoken", "parameters": {"token": "1234567890"}}},
            "invalid_request",
        ),
        ({"json": {"api_token": "KEY", "method": "GetTokens"}}, "unknown_method"),
        ({"json": {"api_token": "KEY", "method": "token.get"}}, "unknown_method"),
        ({"json": {"method": "gettokens"}}, "unauthorized"),
        ({"json": {"api_token": "", "method": "gettokens"}}, "unauthorized"),
        ({"json": {"api_token": "thk_" + "0" * 64, "method": "gettokens"}}, "unauthorized"),
        ({"json": {"api_token": "x" * 1000, "method": "gettokens"}}, "unauthorized"),
        (
            {
                "json": {
                    "api_token": "KEY",
                    "method": "usetoken",
                    "parameters": {"token": "0000000001", "mac": "MAC"},
                }
            },
            "not_found",
        ),
    ],
)
async def test_error_codes_of_the_envelope_and_parameters(
    hotspot: Hotspot, operator: Operator, request_kwargs: dict[str, Any], code: str
) -> None:
    envelope = request_kwargs.get("json")
    if isinstance(envelope, dict) and envelope.get("api_token") == "KEY":
        parameters = envelope.get("parameters")
        if isinstance(parameters, dict) and parameters.get("mac") == "MAC":
            parameters = {**parameters, "mac": random_mac()}  # a device of its own (per-MAC throttle)
        request_kwargs = {"json": {**envelope, "api_token": operator.api_token, "parameters": parameters}}
    reply = await hotspot.send(**request_kwargs)
    assert reply.error_code == code
    assert reply.body["error"]["message"]


async def test_a_disabled_operator_is_forbidden(
    hotspot: Hotspot, environment: dict[str, str], database_url: str
) -> None:
    owner = new_operator(environment)
    await hotspot.create(owner.api_token)
    await fetch(database_url, "UPDATE users SET status = 'disabled' WHERE id = $1", owner.id)
    for method in ("gettokens", "createtokens"):
        reply = await hotspot.call(owner.api_token, method, {"count": 1} if method == "createtokens" else {})
        assert reply.error_code == "forbidden"


async def test_other_http_methods_and_oversized_bodies_get_the_envelope(
    cluster: Cluster, hotspot: Hotspot, operator: Operator
) -> None:
    async with hotspot.http.get(cluster.gateway_url + "/hotspot/api") as r:
        body = await r.json()
        check_envelope(r.status, body)
        assert body["error"]["code"] == "method_not_allowed"
        assert r.headers["Allow"] == "POST"
    huge = orjson.dumps(
        {"api_token": operator.api_token, "method": "gettokens", "parameters": {"u_id": "x" * (1 << 20)}}
    )
    reply = await hotspot.send(data=io.BytesIO(huge), headers={"Content-Type": "application/json"})
    assert reply.error_code == "payload_too_large"


# --- guessing is throttled; a backend that is down is a 503 ----------------------------------------


@pytest.fixture(scope="module")
def throttle_cluster(
    environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Four services of this module's own (Redis state included), with small failure limits and a
    window far longer than the test, so that no counter runs out while it is being checked."""
    env = dict(
        environment,
        TOKENHUB_REDIS_PREFIX=f"{environment['TOKENHUB_REDIS_PREFIX']}{secrets.token_hex(3)}:",
        TOKENHUB_ADDRESS_FAILURES_MAX="6",
        TOKENHUB_LOGIN_FAILURES_MAX="3",
        TOKENHUB_LOGIN_FAILURE_WINDOW="600",
    )
    with running_cluster(env, tmp_path_factory.mktemp("hotspot-throttle")) as running:
        yield running


async def _use(hs: Hotspot, op: Operator, code: str, device: str) -> Reply:
    return await hs.call(op.api_token, "usetoken", {"token": code, "mac": device})


async def test_guessed_codes_are_throttled_per_device_mac(
    throttle_cluster: Cluster, environment: dict[str, str]
) -> None:
    owner = new_operator(environment)
    async with hotspot_client(throttle_cluster.gateway_url) as hs:
        good, spare = await hs.create(owner.api_token, 2)
        guesser = random_mac()
        for _ in range(3):  # TOKENHUB_LOGIN_FAILURES_MAX for subjects other than the address
            assert (await _use(hs, owner, unknown_code(), guesser)).error_code == "not_found"
        blocked = await _use(hs, owner, good, guesser)
        assert blocked.error_code == "too_many_attempts"
        assert int(blocked.headers["Retry-After"]) > 0
        # Refused before the registry was asked: the voucher is still unused.
        unused = await hs.voucher(owner.api_token, good)
        assert unused is not None
        assert unused["used_at"] is None
        # Another device behind the same address is not blocked (3 failures < 6 for the address).
        assert (await _use(hs, owner, spare, random_mac())).status == 200


async def test_guessed_codes_are_throttled_per_client_address(
    throttle_cluster: Cluster, environment: dict[str, str]
) -> None:
    owner = new_operator(environment)
    guesser, neighbour = random_loopback(), random_loopback()
    async with hotspot_client(throttle_cluster.gateway_url, guesser) as hs:
        good, other = await hs.create(owner.api_token, 2)
        # A new MAC for each guess, as a guesser would do: only the address can stop it.
        for _ in range(6):
            assert (await _use(hs, owner, unknown_code(), random_mac())).error_code == "not_found"
        assert (await _use(hs, owner, good, random_mac())).error_code == "too_many_attempts"
    async with hotspot_client(throttle_cluster.gateway_url, neighbour) as hs:
        assert (await _use(hs, owner, other, random_mac())).status == 200


async def test_only_unknown_codes_count_as_guesses(
    throttle_cluster: Cluster, environment: dict[str, str]
) -> None:
    owner = new_operator(environment)
    async with hotspot_client(throttle_cluster.gateway_url) as hs:
        taken, repaid, good = await hs.create(owner.api_token, 3)
        await hs.ok(owner.api_token, "repaytokens", {"tokens": [repaid]})
        first, second = random_mac(), random_mac()
        assert (await _use(hs, owner, taken, first)).status == 200
        for _ in range(7):  # more than either limit
            assert (await _use(hs, owner, taken, second)).error_code == "voucher_used"
            assert (await _use(hs, owner, repaid, second)).error_code == "voucher_repaid"
            assert (await _use(hs, owner, "12345", second)).error_code == "invalid_request"
        assert (await _use(hs, owner, good, second)).status == 200


async def test_a_backend_that_is_down_gives_service_unavailable(
    private_cluster: Cluster, environment: dict[str, str]
) -> None:
    owner = new_operator(environment)
    async with hotspot_client(private_cluster.gateway_url) as hs:
        code = (await hs.create(owner.api_token))[0]
        private_cluster["issuer"].stop(signal.SIGKILL)
        # usetoken's guess throttle lives in the issuer: without it, redeeming fails closed...
        assert (await _use(hs, owner, code, mac(1))).error_code == "service_unavailable"
        # ...while listing, which needs only the registry, still works.
        assert (await hs.ok(owner.api_token, "gettokens", {"token": code})).tokens == [code]
        private_cluster["registry"].stop(signal.SIGKILL)
        down = await hs.call(owner.api_token, "gettokens")
        assert down.error_code == "service_unavailable"
        assert down.status == 503
