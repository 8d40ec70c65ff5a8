"""Zabbix's API input validation (CApiInputValidator), with its exact error texts.

Zabbix runs on PHP, where a JSON object and a JSON list are both "arrays": an object rule accepts a
list (keys "0", "1", ...), an ID list accepts an object's values. Each rule validates a value at a
path ("/", "/1", "/1/name") and returns it normalised and typed, or raises `invalid_param`. An
object's fields are declared as typed `Field`s, and read back through them: `token[NAME]` is a str.

Every rule costs time in proportion to its input, never more: a list is measured against its length
limit (Zabbix's `length` rule, "value is too long") before any of its items is looked at, repeats
are found with sets, and a digit string is measured before it is converted.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from pydantic import JsonValue
from typing_extensions import TypeIs

from gateway.dialects.common import JsonObject
from gateway.dialects.zabbix.errors import invalid_param
from shared.contracts.registry.zabbix_tokens import MAX_ITEMS

MAX_ID = 9223372036854775807
MIN_INT32, MAX_INT32 = -2147483648, 2147483647
_INT = re.compile(r"-?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
# More significant digits than this cannot fit any range we check (Python also refuses to convert
# strings of over 4,300 digits, so they are measured first).
_MAX_SIGNIFICANT_DIGITS = 20

# A JSON value that is not an array: what filters and searches compare with.
Scalar = str | int | float | bool | None
# What PHP calls an array: a JSON object or list.
Array = JsonObject | list[JsonValue]

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)
T_co = TypeVar("T_co", covariant=True)


def bounded_int(text: str) -> int | None:
    """The value of a decimal string that matched _INT or _DIGITS; None if it is so long that it
    is out of every range (PHP's bccomp takes leading zeros, so "007" is 7)."""
    digits = text.lstrip("-").lstrip("0")
    if len(digits) > _MAX_SIGNIFICANT_DIGITS:
        return None
    value = int(digits or "0")  # without its zeros: Python counts them against its limit too
    return -value if text.startswith("-") else value


def child(path: str, key: str | int) -> str:
    return f"{path.rstrip('/')}/{key}"


def is_array(value: JsonValue) -> TypeIs[Array]:
    return isinstance(value, dict | list)


def php_items(value: Array) -> list[tuple[str, JsonValue]]:
    """The (key, value) pairs of a PHP array given as a JSON object or list."""
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    return [(str(i), v) for i, v in enumerate(value)]


def php_values(value: Array) -> list[JsonValue]:
    return list(value.values()) if isinstance(value, dict) else list(value)


def php_string(value: Scalar) -> str:
    """PHP's strval() of a JSON scalar."""
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Rule(Generic[T_co]):
    def validate(self, value: JsonValue, path: str) -> T_co:
        raise NotImplementedError


@dataclass(frozen=True)
class String(Rule[str]):
    not_empty: bool = False
    length: int | None = None
    one_of: tuple[str, ...] | None = None

    def validate(self, value: JsonValue, path: str) -> str:
        if not isinstance(value, str):
            raise invalid_param(path, "a character string is expected")
        if self.not_empty and value == "":
            raise invalid_param(path, "cannot be empty")
        if self.length is not None and len(value) > self.length:
            raise invalid_param(path, "value is too long")
        if self.one_of is not None and value not in self.one_of:
            choices = ", ".join(f'"{c}"' for c in self.one_of)
            raise invalid_param(
                path,
                f"value must be one of {choices}" if len(self.one_of) > 1 else f"value must be {choices}",
            )
        return value


def _decimal(value: JsonValue, pattern: re.Pattern[str]) -> str | None:
    """The text of an integer or a string of digits (as `pattern` allows), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not pattern.fullmatch(str(value)):
        return None
    return str(value)


@dataclass(frozen=True)
class Int32(Rule[int]):
    """An integer or a string of digits; `one_of` as Zabbix writes it ("0,1" or "1:2147483647")."""

    one_of: str | None = None

    def validate(self, value: JsonValue, path: str) -> int:
        text = _decimal(value, _INT)
        if text is None:
            raise invalid_param(path, "an integer is expected")
        number = bounded_int(text)
        if number is None or not MIN_INT32 <= number <= MAX_INT32:
            raise invalid_param(path, "a number is too large")
        if self.one_of is not None and not _int_in(number, self.one_of):
            shown = ", ".join(part.replace(":", "-") for part in self.one_of.split(","))
            raise invalid_param(path, f"value must be one of {shown}")
        return number


def _int_in(number: int, spec: str) -> bool:
    for part in spec.split(","):
        low, sep, high = part.partition(":")
        if not sep and number == int(low):
            return True
        if sep and int(low or MIN_INT32) <= number <= int(high or MAX_INT32):
            return True
    return False


def valid_id(value: JsonValue) -> bool:
    text = _decimal(value, _DIGITS)
    number = None if text is None else bounded_int(text)
    return number is not None and number <= MAX_ID


@dataclass(frozen=True)
class Id(Rule[int]):
    def validate(self, value: JsonValue, path: str) -> int:
        text = _decimal(value, _DIGITS)
        if text is None:
            raise invalid_param(path, "a number is expected")
        number = bounded_int(text)
        if number is None or number > MAX_ID:
            raise invalid_param(path, "a number is too large")
        return number


def check_length(value: Array, path: str, length: int) -> None:
    """Zabbix's `length` rule of a list: refused before any of its items costs anything."""
    if len(value) > length:
        raise invalid_param(path, "value is too long")


def each(value: Array, path: str, rule: Rule[H], *, uniq: bool) -> list[H]:
    """Every item of a list that passed `rule`; with `uniq`, the first repeat is refused at its path."""
    result: list[H] = []
    seen: set[H] = set()
    for index, item in enumerate(php_values(value), start=1):
        checked = rule.validate(item, child(path, index))
        if uniq:
            if checked in seen:
                raise invalid_param(child(path, index), f"value ({checked}) already exists")
            seen.add(checked)
        result.append(checked)
    return result


@dataclass(frozen=True)
class Ids(Rule[list[int]]):
    """A list of at most `length` ids; `normalize` accepts one valid id alone; `uniq` refuses repeats."""

    normalize: bool = False
    not_empty: bool = False
    uniq: bool = False
    length: int = MAX_ITEMS

    def validate(self, value: JsonValue, path: str) -> list[int]:
        if self.normalize and valid_id(value):
            value = [value]
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        if self.not_empty and not value:
            raise invalid_param(path, "cannot be empty")
        check_length(value, path, self.length)
        return each(value, path, Id(), uniq=self.uniq)


@dataclass(frozen=True)
class Boolean(Rule[bool]):
    def validate(self, value: JsonValue, path: str) -> bool:
        if not isinstance(value, bool):
            raise invalid_param(path, "a boolean is expected")
        return value


@dataclass(frozen=True)
class Flag(Rule[bool]):
    """A deprecated-style flag: any value but null means true."""

    def validate(self, value: JsonValue, path: str) -> bool:
        return value if isinstance(value, bool) else value is not None


@dataclass(frozen=True)
class Strings(Rule[list[str]]):
    """A list of strings, one string alone allowed with `normalize`."""

    one_of: tuple[str, ...] | None = None
    uniq: bool = False
    normalize: bool = True
    length: int = MAX_ITEMS

    def validate(self, value: JsonValue, path: str) -> list[str]:
        if self.normalize and isinstance(value, str):
            value = [value]
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        check_length(value, path, self.length)
        return each(value, path, String(one_of=self.one_of), uniq=self.uniq)


@dataclass(frozen=True)
class Output(Rule[list[str]]):
    fields: tuple[str, ...]

    def validate(self, value: JsonValue, path: str) -> list[str]:
        if isinstance(value, str):
            String(one_of=("extend",)).validate(value, path)
            return list(self.fields)
        if not is_array(value):
            raise invalid_param(path, "an array or a character string is expected")
        return Strings(one_of=self.fields, uniq=True, normalize=False).validate(value, path)


@dataclass(frozen=True)
class SortOrder(Rule[list[str]]):
    def validate(self, value: JsonValue, path: str) -> list[str]:
        if isinstance(value, str):
            return [String(one_of=("ASC", "DESC")).validate(value, path)]
        if not is_array(value):
            raise invalid_param(path, "an array or a character string is expected")
        return Strings(one_of=("ASC", "DESC"), normalize=False).validate(value, path)


@dataclass(frozen=True)
class Loose(Rule[list[Scalar] | None]):
    """Filter and search values: Zabbix 6.0 checks only that each named field is known. A value
    (scalar or array) becomes a list of scalars; null means "not given". TokenHub adds a length
    limit: every value is a condition of the query."""

    search: bool = False
    length: int = MAX_ITEMS

    def validate(self, value: JsonValue, path: str) -> list[Scalar] | None:
        if value is None:
            return None
        if self.search and isinstance(value, bool):
            raise invalid_param(path, "an array is expected")
        if is_array(value):
            check_length(value, path, self.length)
            items = php_values(value)
        else:
            items = [value]
        return [item for item in items if item is not None and not is_array(item)]


@dataclass(frozen=True)
class Field(Generic[T_co]):
    """One named member of an object, and the rule its value must pass."""

    name: str
    rule: Rule[T_co]
    required: bool = False
    default: JsonValue = None  # validated like a given value when the member is absent
    allow_null: bool = False  # null is taken as "not given"


class Validated:
    """An object that passed its rule: each member's value, read through its typed `Field`."""

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values

    def get(self, field: Field[T]) -> T | None:
        """The member's value; None if it was not given (or given null where that is allowed)."""
        # Only `field.rule` put a value under this name, so it is a T.
        return cast("T | None", self._values.get(field.name))

    def __getitem__(self, field: Field[T]) -> T:
        """The value of a required member, or of one with a default."""
        if field.name not in self._values:
            raise KeyError(field.name)
        return cast(T, self._values[field.name])

    def key(self, names: Sequence[str]) -> tuple[str, ...] | None:
        """The members' values as PHP strings, for Zabbix's `uniq` checks; None if one is missing."""
        values: list[str] = []
        for name in names:
            value = self._values.get(name)
            if not isinstance(value, (str, int, float, bool)):
                return None
            values.append(php_string(value))
        return tuple(values)


@dataclass(frozen=True)
class Object(Rule[Validated]):
    fields: tuple[Field[object], ...]

    def validate(self, value: JsonValue, path: str) -> Validated:
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        given = dict(php_items(value))
        known = {spec.name for spec in self.fields}
        for name in given:
            if name not in known:
                raise invalid_param(path, f'unexpected parameter "{name}"')
        result: dict[str, object] = {}
        for spec in self.fields:
            if spec.name not in given:
                if spec.required:
                    raise invalid_param(path, f'the parameter "{spec.name}" is missing')
                if spec.default is not None:  # normalised like a given value ("extend" -> field list)
                    result[spec.name] = spec.rule.validate(spec.default, child(path, spec.name))
                continue
            if given[spec.name] is None and spec.allow_null:
                continue
            result[spec.name] = spec.rule.validate(given[spec.name], child(path, spec.name))
        return Validated(result)


@dataclass(frozen=True)
class Objects(Rule[list[Validated]]):
    """A list of at most `length` objects (one object alone is wrapped), with Zabbix's `uniq` checks."""

    item: Object
    not_empty: bool = True
    uniq: tuple[tuple[str, ...], ...] = ()
    length: int = MAX_ITEMS

    def validate(self, value: JsonValue, path: str) -> list[Validated]:
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        if isinstance(value, dict) and value and not all(k.isdigit() for k in value):
            value = [value]
        items = php_values(value)
        if self.not_empty and not items:
            raise invalid_param(path, "cannot be empty")
        check_length(items, path, self.length)
        objects = [self.item.validate(obj, child(path, i)) for i, obj in enumerate(items, start=1)]
        for names in self.uniq:
            check_unique(names, [obj.key(names) for obj in objects], path)
        return objects


def check_unique(names: Sequence[str], keys: Iterable[tuple[str, ...] | None], path: str) -> None:
    """Zabbix's `uniq` rule: the first item whose members `names` repeat an earlier item's (as PHP
    strings) is refused; items missing one of them (key None) are not compared."""
    seen: set[tuple[str, ...]] = set()
    for index, values in enumerate(keys, start=1):
        if values is None:
            continue
        if values in seen:
            raise invalid_param(
                child(path, index), f"value ({', '.join(names)})=({', '.join(values)}) already exists"
            )
        seen.add(values)


def validate(rule: Rule[T], params: JsonValue) -> T:
    return rule.validate(params, "/")
