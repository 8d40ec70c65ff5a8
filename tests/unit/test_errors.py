"""Domain errors: the wire format they travel in between services, and back."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared import errors
from shared.errors import (
    BadCredentials,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    Throttled,
    TokenHubError,
    Unavailable,
    from_wire,
)


def all_error_classes() -> list[type[TokenHubError]]:
    """TokenHubError and every subclass defined in shared.errors, found by looking, not listed."""
    found: list[type[TokenHubError]] = []
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, TokenHubError):
            found.append(value)
    return found


ALL_CLASSES = all_error_classes()

EXPECTED = {
    TokenHubError: ("internal", 500),
    InvalidInput: ("invalid_input", 400),
    BadCredentials: ("bad_credentials", 401),
    Forbidden: ("forbidden", 403),
    NotFound: ("not_found", 404),
    Conflict: ("conflict", 409),
    Expired: ("expired", 410),
    Throttled: ("throttled", 429),
    QuotaExceeded: ("quota_exceeded", 429),
    Unavailable: ("unavailable", 503),
}


def test_every_class_is_known() -> None:
    assert set(ALL_CLASSES) == set(EXPECTED)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_code_and_status(cls: type[TokenHubError]) -> None:
    assert (cls.code, cls.status) == EXPECTED[cls]


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in ALL_CLASSES]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_round_trip_keeps_class_message_and_details(cls: type[TokenHubError]) -> None:
    original = cls("something went wrong", constraint="users_username_key", count=3, nested={"a": [1, 2]})
    wire = original.to_wire()
    assert wire == {
        "error": {
            "code": cls.code,
            "message": "something went wrong",
            "details": {"constraint": "users_username_key", "count": 3, "nested": {"a": [1, 2]}},
        }
    }
    # through real bytes, as between two services
    rebuilt = from_wire(orjson.loads(orjson.dumps(wire)))
    assert type(rebuilt) is cls
    assert rebuilt.message == "something went wrong"
    assert str(rebuilt) == "something went wrong"
    assert rebuilt.details == original.details
    assert rebuilt.status == cls.status
    assert rebuilt.to_wire() == wire


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_round_trip_without_message_or_details(cls: type[TokenHubError]) -> None:
    original = cls()
    assert original.message == cls.code
    assert original.details == {}
    rebuilt = from_wire(orjson.loads(orjson.dumps(original.to_wire())))
    assert type(rebuilt) is cls
    assert rebuilt.message == cls.code
    assert rebuilt.details == {}


def test_errors_are_exceptions() -> None:
    with pytest.raises(TokenHubError) as excinfo:
        raise Conflict("taken", constraint="c")
    assert isinstance(excinfo.value, Conflict)
    assert excinfo.value.details == {"constraint": "c"}


@pytest.mark.parametrize(
    "body",
    [
        None,
        "error",
        42,
        [],
        [{"error": {"code": "conflict"}}],
        {},
        {"detail": "something"},
        {"error": None},
        {"error": "conflict"},
        {"error": ["conflict"]},
        {"error": 409},
    ],
)
def test_malformed_bodies_become_the_base_error(body: Any) -> None:
    error = from_wire(body)
    assert type(error) is TokenHubError
    assert error.code == "internal"
    assert error.status == 500
    assert error.message


@pytest.mark.parametrize(
    "error_body",
    [
        {},
        {"code": "no_such_code", "message": "m"},
        {"code": None, "message": "m"},
        {"code": 409, "message": "m"},
        {"code": "unauthorized", "message": "m", "details": {}},
    ],
)
def test_unknown_codes_become_the_base_error(error_body: dict[str, Any]) -> None:
    error = from_wire({"error": error_body})
    assert type(error) is TokenHubError
    assert error.code == "internal"


@pytest.mark.parametrize("details", [None, "text", [1, 2], 7])
def test_malformed_details_are_dropped(details: Any) -> None:
    error = from_wire({"error": {"code": "not_found", "message": "gone", "details": details}})
    assert type(error) is NotFound
    assert error.message == "gone"
    assert error.details == {}


@pytest.mark.parametrize("key", ["message", "self"])
def test_details_named_like_constructor_parameters_do_not_break_from_wire(key: str) -> None:
    """`from_wire` must always return an error: a backend reply whose details carry a key named
    `message` (or `self`) must not turn into a TypeError in the caller."""
    body = {"error": {"code": "conflict", "message": "m", "details": {key: "x", "constraint": "c"}}}
    error = from_wire(body)
    assert isinstance(error, TokenHubError)
    assert error.message == "m"
