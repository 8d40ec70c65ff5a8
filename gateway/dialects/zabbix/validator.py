"""Zabbix's API input validation (CApiInputValidator), with its exact error texts.

Zabbix runs on PHP, where a JSON object and a JSON list are both "arrays": an object rule accepts a
list (keys "0", "1", ...), an ID list accepts an object's values. Each rule validates a value at a
path ("/", "/1", "/1/name") and returns it normalised, or raises `invalid_param`.

Every rule costs time in proportion to its input, never more: a list is measured against its length
limit (Zabbix's `length` rule, "value is too long") before any of its items is looked at, repeats
are found with sets, and a digit string is measured before it is converted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.dialects.zabbix.errors import invalid_param

MAX_ID = 9223372036854775807
MIN_INT32, MAX_INT32 = -2147483648, 2147483647
# The most items a list of ids or objects may hold: the registry's own limit per call.
MAX_ITEMS = 10_000
_INT = re.compile(r"-?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
# More significant digits than this cannot fit any range we check (Python also refuses to convert
# strings of over 4,300 digits, so they are measured first).
_MAX_SIGNIFICANT_DIGITS = 20


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


def php_items(value: Any) -> list[tuple[str, Any]]:
    """The (key, value) pairs of a PHP array given as a JSON object or list."""
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    return [(str(i), v) for i, v in enumerate(value)]


def php_values(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, dict) else list(value)


def is_array(value: Any) -> bool:
    return isinstance(value, dict | list)


def php_string(value: Any) -> str:
    """PHP's strval() of a JSON scalar."""
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Rule:
    def validate(self, value: Any, path: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class String(Rule):
    not_empty: bool = False
    length: int | None = None
    one_of: tuple[str, ...] | None = None

    def validate(self, value: Any, path: str) -> str:
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


@dataclass(frozen=True)
class Int32(Rule):
    """An integer or a string of digits; `one_of` as Zabbix writes it ("0,1" or "1:2147483647")."""

    one_of: str | None = None

    def validate(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str) or not _INT.fullmatch(str(value)):
            raise invalid_param(path, "an integer is expected")
        number = bounded_int(str(value))
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


def valid_id(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | str) or not _DIGITS.fullmatch(str(value)):
        return False
    number = bounded_int(str(value))
    return number is not None and number <= MAX_ID


@dataclass(frozen=True)
class Id(Rule):
    def validate(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str) or not _DIGITS.fullmatch(str(value)):
            raise invalid_param(path, "a number is expected")
        number = bounded_int(str(value))
        if number is None or number > MAX_ID:
            raise invalid_param(path, "a number is too large")
        return number


def check_length(value: dict[str, Any] | list[Any], path: str, length: int) -> None:
    """Zabbix's `length` rule of a list: refused before any of its items costs anything."""
    if len(value) > length:
        raise invalid_param(path, "value is too long")


@dataclass(frozen=True)
class Ids(Rule):
    """A list of at most `length` ids; `normalize` accepts one valid id alone; `uniq` refuses repeats."""

    normalize: bool = False
    not_empty: bool = False
    uniq: bool = False
    length: int = MAX_ITEMS

    def validate(self, value: Any, path: str) -> list[int]:
        if self.normalize and valid_id(value):
            value = [value]
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        if self.not_empty and not value:
            raise invalid_param(path, "cannot be empty")
        check_length(value, path, self.length)
        ids: list[int] = []
        seen: set[int] = set()
        for index, item in enumerate(php_values(value), start=1):
            token_id = Id().validate(item, child(path, index))
            if self.uniq:
                if token_id in seen:
                    raise invalid_param(child(path, index), f"value ({token_id}) already exists")
                seen.add(token_id)
            ids.append(token_id)
        return ids


@dataclass(frozen=True)
class Boolean(Rule):
    def validate(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise invalid_param(path, "a boolean is expected")
        return value


@dataclass(frozen=True)
class Flag(Rule):
    """A deprecated-style flag: any value but null means true."""

    def validate(self, value: Any, path: str) -> bool:
        return value if isinstance(value, bool) else value is not None


@dataclass(frozen=True)
class Strings(Rule):
    """A list of strings, one string alone allowed with `normalize`."""

    one_of: tuple[str, ...] | None = None
    uniq: bool = False
    normalize: bool = True
    length: int = MAX_ITEMS

    def validate(self, value: Any, path: str) -> list[str]:
        if self.normalize and isinstance(value, str):
            value = [value]
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        check_length(value, path, self.length)
        result: list[str] = []
        seen: set[str] = set()
        for index, item in enumerate(php_values(value), start=1):
            text = String(one_of=self.one_of).validate(item, child(path, index))
            if self.uniq:
                if text in seen:
                    raise invalid_param(child(path, index), f"value ({text}) already exists")
                seen.add(text)
            result.append(text)
        return result


@dataclass(frozen=True)
class Output(Rule):
    fields: tuple[str, ...]

    def validate(self, value: Any, path: str) -> list[str]:
        if isinstance(value, str):
            String(one_of=("extend",)).validate(value, path)
            return list(self.fields)
        if not is_array(value):
            raise invalid_param(path, "an array or a character string is expected")
        return Strings(one_of=self.fields, uniq=True, normalize=False).validate(value, path)


@dataclass(frozen=True)
class SortOrder(Rule):
    def validate(self, value: Any, path: str) -> list[str]:
        if isinstance(value, str):
            return [String(one_of=("ASC", "DESC")).validate(value, path)]
        if not is_array(value):
            raise invalid_param(path, "an array or a character string is expected")
        return Strings(one_of=("ASC", "DESC"), normalize=False).validate(value, path)


@dataclass(frozen=True)
class Loose(Rule):
    """Filter and search values: Zabbix 6.0 checks only that each named field is known. A value
    (scalar or array) becomes a list of scalars; null means "not given". TokenHub adds a length
    limit: every value is a condition of the query."""

    search: bool = False
    length: int = MAX_ITEMS

    def validate(self, value: Any, path: str) -> list[Any] | None:
        if value is None:
            return None
        if self.search and isinstance(value, bool):
            raise invalid_param(path, "an array is expected")
        if is_array(value):
            check_length(value, path, self.length)
        items = php_values(value) if is_array(value) else [value]
        return [item for item in items if item is not None and not is_array(item)]


@dataclass(frozen=True)
class Field:
    rule: Rule
    required: bool = False
    default: Any = None
    allow_null: bool = False


@dataclass(frozen=True)
class Object(Rule):
    fields: dict[str, Field]

    def validate(self, value: Any, path: str) -> dict[str, Any]:
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        given = dict(php_items(value))
        for name in given:
            if name not in self.fields:
                raise invalid_param(path, f'unexpected parameter "{name}"')
        result: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name not in given:
                if spec.required:
                    raise invalid_param(path, f'the parameter "{name}" is missing')
                if spec.default is not None:  # normalised like a given value ("extend" -> field list)
                    result[name] = spec.rule.validate(spec.default, child(path, name))
                continue
            if given[name] is None and spec.allow_null:
                continue
            result[name] = spec.rule.validate(given[name], child(path, name))
        return result


@dataclass(frozen=True)
class Objects(Rule):
    """A list of at most `length` objects (one object alone is wrapped), with Zabbix's `uniq` checks."""

    item: Object
    not_empty: bool = True
    uniq: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    length: int = MAX_ITEMS

    def validate(self, value: Any, path: str) -> list[dict[str, Any]]:
        if not is_array(value):
            raise invalid_param(path, "an array is expected")
        if isinstance(value, dict) and value and not all(k.isdigit() for k in value):
            value = [value]
        items = php_values(value)
        if self.not_empty and not items:
            raise invalid_param(path, "cannot be empty")
        check_length(items, path, self.length)
        objects = [self.item.validate(obj, child(path, i)) for i, obj in enumerate(items, start=1)]
        for keys in self.uniq:
            check_unique(objects, keys, path)
        return objects


def check_unique(objects: Iterable[dict[str, Any]], keys: tuple[str, ...], path: str) -> None:
    seen: set[tuple[str, ...]] = set()
    for index, obj in enumerate(objects, start=1):
        if not all(k in obj for k in keys):
            continue
        values = tuple(php_string(obj[k]) for k in keys)
        if values in seen:
            raise invalid_param(
                child(path, index), f"value ({', '.join(keys)})=({', '.join(values)}) already exists"
            )
        seen.add(values)


def validate(rule: Rule, params: Any) -> Any:
    return rule.validate(params, "/")
