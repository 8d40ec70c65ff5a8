"""The hotspot dialect's and the voucher store's pure helpers: parameter parsing, MAC
normalisation, the voucher object, code generation and sealing."""

from __future__ import annotations

import calendar
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from gateway.dialects.hotspot.envelope import positional
from gateway.dialects.hotspot.errors import STATUS, HotspotError
from gateway.dialects.hotspot.params import (
    normalise_mac,
    parse_code,
    parse_codes,
    parse_flag,
    parse_int,
    parse_u_id,
)
from gateway.dialects.hotspot.vouchers import format_time, voucher_object
from registry.vouchers import NEWEST_FIRST, new_codes, protect, seal_context
from registry.vouchers import Q as VOUCHER_QUERIES
from shared.contracts.registry.vouchers import Voucher
from shared.secrets import Sealer, lookup_hash

PEPPER = "unit-test-pepper-0123456789"
# Digits to Python's str.isdigit, not to the API: only ASCII 0-9 make a code.
FULLWIDTH_DIGITS = "".join(chr(0xFF10 + int(d)) for d in "1234567890")


def as_voucher(fields: dict[str, Any]) -> Voucher:
    """The registry's voucher as the dialect receives it: its typed reply model."""
    return Voucher.model_validate({"id": 1, "owner_id": 1, **fields})


def refused(call: Any, *args: Any) -> HotspotError:
    with pytest.raises(HotspotError) as caught:
        call(*args)
    assert caught.value.code == "invalid_request"
    return caught.value


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "meaning"),
    [(1, True), ("1", True), (True, True), (0, False), ("0", False), (False, False), (None, None)],
)
def test_flags(value: Any, meaning: bool | None) -> None:
    assert parse_flag(value, "used_at") is meaning


@pytest.mark.parametrize("value", [2, -1, 1.0, 0.0, "yes", "", "01", [], {}, [1]])
def test_flags_refuse_anything_else(value: Any) -> None:
    assert '"used_at"' in refused(parse_flag, value, "used_at").message


@pytest.mark.parametrize(("value", "number"), [(1, 1), ("42", 42), (10_000, 10_000), ("0010", 10)])
def test_whole_numbers(value: Any, number: int) -> None:
    assert parse_int(value, "count", 0, 10_000) == number


@pytest.mark.parametrize("value", [True, 1.5, 2.0, "1e3", "-1", " 1", "", None, [1], 10_001, -1, "9" * 30])
def test_whole_numbers_refuse_anything_else(value: Any) -> None:
    refused(parse_int, value, "count", 0, 10_000)


@pytest.mark.parametrize(
    ("value", "code"),
    [("1234567890", "1234567890"), (9876543210, "9876543210"), ("0123456789", "0123456789")],
)
def test_codes(value: Any, code: str) -> None:
    assert parse_code(value, "token") == code


@pytest.mark.parametrize(
    "value", ["123456789", "12345678901", 123456789, "12345 67890", FULLWIDTH_DIGITS, True, None, 1.0]
)
def test_codes_refuse_anything_else(value: Any) -> None:
    refused(parse_code, value, "token")


def test_code_lists_name_the_position_of_a_bad_code() -> None:
    assert parse_codes(["1234567890", 1234567891]) == ["1234567890", "1234567891"]
    assert '"tokens/1"' in refused(parse_codes, ["1234567890", "x"]).message
    refused(parse_codes, [])
    refused(parse_codes, "1234567890")
    refused(parse_codes, ["1234567890"] * 10_001)


@pytest.mark.parametrize(
    ("value", "u_id"), [("room-12", "room-12"), (42, "42"), ("", None), (None, None), ("ü" * 255, "ü" * 255)]
)
def test_u_ids(value: Any, u_id: str | None) -> None:
    assert parse_u_id(value) == u_id


@pytest.mark.parametrize("value", ["x" * 256, "tab\there", "nul\x00", "del\x7f", True, 1.5, ["a"], {"a": 1}])
def test_u_ids_refuse_anything_else(value: Any) -> None:
    refused(parse_u_id, value)


# --- MAC addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "0a:1b:2c:3d:4e:5f",
        "0A:1B:2C:3D:4E:5F",
        "0a-1b-2c-3d-4e-5f",
        "0a1b.2c3d.4e5f",
        "0A1B2C3D4E5F",
        "\t0a:1b:2c:3d:4e:5f ",
    ],
)
def test_mac_spellings_normalise_to_lower_case_colon_form(spelling: str) -> None:
    assert normalise_mac(spelling) == "0a:1b:2c:3d:4e:5f"


def test_locally_administered_macs_are_devices_too() -> None:
    # Phones randomise their MAC per network with the locally administered bit set.
    assert normalise_mac("DA:A1:19:00:00:01") == "da:a1:19:00:00:01"


@pytest.mark.parametrize(
    "value",
    [
        "0a:1b:2c:3d:4e",
        "0a:1b:2c:3d:4e:5f:60",
        "0a:1b-2c:3d:4e:5f",
        "0a:1b:2c:3d:4e:5",
        "0a:1b:2c:3d:4e:5g",
        "0a1b2c3d4e5",
        "0a1b.2c3d.4e5f.0000",
        "01:00:5e:00:00:01",  # IPv4 multicast
        "33:33:00:00:00:01",  # IPv6 multicast
        "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00",
        "",
        None,
        0x0A1B2C3D4E5F,
    ],
)
def test_what_is_not_a_device_mac_is_refused(value: Any) -> None:
    refused(normalise_mac, value)


# --- the voucher object -----------------------------------------------------------------------------


def test_times_are_utc_with_seconds() -> None:
    moment = calendar.timegm((2024, 2, 29, 23, 59, 58, 0, 0, 0))
    assert format_time(moment) == "2024-02-29 23:59:58"
    assert format_time(0) == "1970-01-01 00:00:00"
    assert format_time(None) is None


def test_voucher_object_speaks_the_documents_names() -> None:
    internal = {
        "id": 7,
        "code": "1234567890",
        "owner_id": 3,
        "created_at": 1_700_000_000,
        "first_used_at": 1_700_000_060,
        "expires_at": 1_700_003_660,
        "repaid_at": None,
        "mac": "0a:1b:2c:3d:4e:5f",
        "multi_use": True,
        "lifetime_s": 3600,
        "external_ref": "room-12",
        "external_ref_numeric": False,
    }
    assert voucher_object(as_voucher(internal)) == {
        "token": "1234567890",
        "created_at": "2023-11-14 22:13:20",
        "used_at": "2023-11-14 22:14:20",
        "expired_at": "2023-11-14 23:14:20",
        "multiple": 1,
        "validity": 3600,
        "repaid_at": None,
        "mac": "0a:1b:2c:3d:4e:5f",
        "u_id": "room-12",
    }


def test_a_u_id_given_as_a_number_goes_out_as_that_number() -> None:
    internal = {
        "code": "1234567890",
        "created_at": 1_700_000_000,
        "first_used_at": None,
        "expires_at": None,
        "repaid_at": None,
        "mac": None,
        "multi_use": False,
        "lifetime_s": 0,
    }
    assert (
        voucher_object(as_voucher({**internal, "external_ref": "123", "external_ref_numeric": True}))["u_id"]
        == 123
    )
    assert (
        voucher_object(as_voucher({**internal, "external_ref": "-5", "external_ref_numeric": True}))["u_id"]
        == -5
    )
    assert (
        voucher_object(as_voucher({**internal, "external_ref": "123", "external_ref_numeric": False}))["u_id"]
        == "123"
    )
    assert (
        voucher_object(as_voucher({**internal, "external_ref": None, "external_ref_numeric": False}))["u_id"]
        is None
    )


def test_data_is_keyed_by_position() -> None:
    assert positional([{"a": 1}, {"b": 2}]) == {"0": {"a": 1}, "1": {"b": 2}}
    assert positional([]) == {}


def test_error_codes_never_answer_500_and_are_documented() -> None:
    assert all(400 <= status < 500 or status == 503 for status in STATUS.values())
    docs = (Path(__file__).resolve().parents[2] / "docs" / "hotspot.md").read_text()
    for code, status in STATUS.items():
        assert re.search(rf"`{code}`\s*\|\s*{status}\b", docs), code


# --- codes and their storage ------------------------------------------------------------------------


def test_new_codes_are_distinct_10_digit_numbers_without_a_leading_zero() -> None:
    codes = new_codes(20_000)
    assert len(codes) == len(set(codes)) == 20_000
    assert all(re.fullmatch(r"[1-9][0-9]{9}", code) for code in codes)
    # Random over the whole range: the first digits of 20,000 draws cover 1..9.
    assert {code[0] for code in codes} == set("123456789")


def test_new_codes_avoid_the_codes_already_taken() -> None:
    taken = set(new_codes(1000))
    assert not taken & set(new_codes(1000, taken))


def test_protect_gives_lookup_hashes_and_copies_sealed_to_their_own_hash() -> None:
    sealer = Sealer(bytes(range(32)))
    codes = new_codes(3)
    hashes, sealed = protect(codes, PEPPER, sealer)
    assert hashes == [lookup_hash(code, PEPPER) for code in codes]
    for code, code_hash, box in zip(codes, hashes, sealed, strict=True):
        assert code.encode() not in box
        assert sealer.unseal(box, seal_context(code_hash)) == code
    with pytest.raises(InvalidTag):
        sealer.unseal(sealed[0], seal_context(hashes[1]))


def test_every_voucher_query_exists_and_is_used() -> None:
    """registry/vouchers.py reads its own vouchers.sql: each Q[...] it names is defined there, and
    nothing there is dead."""
    source = (Path(__file__).resolve().parents[2] / "registry" / "vouchers.py").read_text()
    used = set(re.findall(r'\bQ\[\s*"([a-z_][a-z0-9_]*)"\s*\]', source))
    assert used
    # The listings are also used newest first: each reversed (every ORDER BY descending), so each
    # still walks its index, backwards.
    for name, reversed_sql in NEWEST_FIRST.items():
        assert reversed_sql.count(" DESC") == VOUCHER_QUERIES[name].count("ORDER BY") > 0, name
    assert used | set(NEWEST_FIRST) == set(VOUCHER_QUERIES)
