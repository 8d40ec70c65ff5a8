"""Domain errors: the wire format they travel in between services, and back."""

from __future__ import annotations

import dataclasses
import types
import typing

import orjson
import pytest
from pydantic import JsonValue

from shared import errors
from shared.errors import (
    ERRORS,
    BadCredentials,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    NameTaken,
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

# The broad errors, each with a wire code and HTTP status of its own. Every other class refines one
# of these (`kind`) and keeps its code and status.
EXPECTED: dict[type[TokenHubError], tuple[str, int]] = {
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


def broad_error(cls: type[TokenHubError]) -> type[TokenHubError]:
    """The class of EXPECTED that `cls` is, or refines."""
    return next(base for base in cls.__mro__ if base in EXPECTED)


def sample(annotation: object, index: int) -> JsonValue:
    """A value of a field's type that is not its default, distinct per field."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is int:
        return 7 + index
    if annotation is str:
        return f"value-{index}"
    if origin is typing.Literal:
        value = args[-1]
        assert isinstance(value, str)
        return value
    if origin is list and args == (str,):
        return ["tokens.0.name: String should have at most 255 characters", "id: Field required"]
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        return sample(next(arg for arg in args if arg is not type(None)), index)
    raise AssertionError(f"no sample for a field of type {annotation!r}: teach sample() this type")


def fields_of(cls: type[TokenHubError]) -> dict[str, JsonValue]:
    """A sample for every typed field of the class (all but the message)."""
    hints = typing.get_type_hints(cls)
    return {
        field.name: sample(hints[field.name], index)
        for index, field in enumerate(dataclasses.fields(cls))
        if field.name != "message"
    }


def required_fields_of(cls: type[TokenHubError]) -> dict[str, JsonValue]:
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return {name: value for name, value in fields_of(cls).items() if name in required}


def make(cls: type[TokenHubError], message: str, fields: dict[str, JsonValue]) -> TokenHubError:
    # A dataclass built from its fields by name, as from_wire does; the message positionally.
    return cls(message, **fields)


def typed_fields(error: TokenHubError) -> dict[str, object]:
    return {f.name: getattr(error, f.name) for f in dataclasses.fields(error) if f.name != "message"}


def test_every_class_is_known() -> None:
    """Every error class comes back from the wire as itself (a class missing from ERRORS would come
    back as an internal error), and every one is, or refines, a broad error."""
    assert set(ALL_CLASSES) == set(ERRORS)
    assert set(EXPECTED) <= set(ALL_CLASSES)
    for cls in ALL_CLASSES:
        assert broad_error(cls)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_code_and_status(cls: type[TokenHubError]) -> None:
    assert (cls.code, cls.status) == EXPECTED[broad_error(cls)]
    # A broad error is known by its code; a refinement by a kind of its own.
    assert cls.known_as() == (cls.code if cls in EXPECTED else cls.kind)


def test_codes_and_kinds_are_unique() -> None:
    codes = [cls.code for cls in EXPECTED]
    assert len(codes) == len(set(codes))
    kinds = [cls.known_as() for cls in ALL_CLASSES]
    assert len(kinds) == len(set(kinds))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_round_trip_keeps_class_message_and_fields(cls: type[TokenHubError]) -> None:
    fields = fields_of(cls)
    original = make(cls, "something went wrong", fields)
    wire = original.to_wire()
    assert wire == {
        "error": {
            "code": cls.code,
            "kind": cls.known_as(),
            "message": "something went wrong",
            "fields": fields,
        }
    }
    # through real bytes, as between two services
    rebuilt = from_wire(orjson.loads(orjson.dumps(wire)))
    assert type(rebuilt) is cls
    assert rebuilt.message == "something went wrong"
    assert str(rebuilt) == "something went wrong"
    assert typed_fields(rebuilt) == typed_fields(original) == fields
    assert rebuilt.status == cls.status
    assert rebuilt.to_wire() == wire


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_round_trip_without_message_or_optional_fields(cls: type[TokenHubError]) -> None:
    original = make(cls, "", required_fields_of(cls))
    assert original.message == cls.code
    rebuilt = from_wire(orjson.loads(orjson.dumps(original.to_wire())))
    assert type(rebuilt) is cls
    assert rebuilt.message == cls.code
    assert typed_fields(rebuilt) == typed_fields(original)


def test_errors_are_exceptions_with_typed_fields() -> None:
    with pytest.raises(TokenHubError) as excinfo:
        raise NameTaken("taken", owner_id=3, name="x")
    error = excinfo.value
    assert isinstance(error, Conflict)
    assert isinstance(error, NameTaken)
    assert (error.owner_id, error.name, error.position) == (3, "x", None)


def test_a_refinement_reads_as_its_broad_error_on_the_wire() -> None:
    wire = NameTaken("taken", owner_id=3, name="x", position=1).to_wire()
    assert wire["error"] == {
        "code": "conflict",
        "kind": "name_taken",
        "message": "taken",
        "fields": {"owner_id": 3, "name": "x", "position": 1},
    }


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
def test_malformed_bodies_become_the_base_error(body: JsonValue) -> None:
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
        {"code": "unauthorized", "kind": "unauthorized", "message": "m", "fields": {}},
        {"code": "conflict", "kind": None, "message": "m", "fields": {}},
        {"code": "conflict", "kind": 409, "message": "m", "fields": {}},
        # The old format (code and details, no kind): not ours any more.
        {"code": "conflict", "message": "m", "details": {}},
    ],
)
def test_unknown_kinds_become_the_base_error(error_body: dict[str, JsonValue]) -> None:
    error = from_wire({"error": error_body})
    assert type(error) is TokenHubError
    assert error.code == "internal"


@pytest.mark.parametrize("fields", [None, "text", [1, 2], 7])
def test_malformed_fields_become_the_base_error(fields: JsonValue) -> None:
    error = from_wire(
        {"error": {"code": "not_found", "kind": "not_found", "message": "gone", "fields": fields}}
    )
    assert type(error) is TokenHubError
    assert error.code == "internal"


@pytest.mark.parametrize(
    "error_body",
    [
        {"code": "throttled", "kind": "throttled", "message": "m", "fields": {"retry_after": "soon"}},
        {"code": "quota_exceeded", "kind": "quota_exceeded", "message": "m", "fields": {"limit": 1}},
        {"code": "forbidden", "kind": "refused", "message": "m", "fields": {"reason": "no-such-reason"}},
        {"code": "not_found", "kind": "not_found", "message": 404, "fields": {}},
    ],
)
def test_fields_of_the_wrong_type_become_the_base_error(error_body: dict[str, JsonValue]) -> None:
    """A callee on another version of the contract: the caller never sees a half-built error."""
    error = from_wire({"error": error_body})
    assert type(error) is TokenHubError
    assert error.code == "internal"
    assert error.message


@pytest.mark.parametrize("key", ["message", "self"])
def test_fields_named_like_constructor_parameters_do_not_break_from_wire(key: str) -> None:
    """`from_wire` must always return an error: a backend reply whose fields carry a key named
    `message` (or `self`) must not turn into a TypeError in the caller."""
    body: JsonValue = {
        "error": {"code": "conflict", "kind": "conflict", "message": "m", "fields": {key: "x"}}
    }
    error = from_wire(body)
    assert isinstance(error, TokenHubError)
    assert error.message == "m"
