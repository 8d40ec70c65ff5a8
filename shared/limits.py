"""Measuring what a request hands over before anything expensive (or recursive) touches it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast


def too_deep(value: object, limit: int) -> bool:
    """Whether a decoded JSON value nests objects and arrays deeper than `limit`. Iterative and linear
    in the value's size, so it is safe to run on anything a JSON decoder produced: JSON encoders
    (orjson stops at depth 255) and recursive code are not."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        # Whatever a dict or list holds is some object: said so, since isinstance alone says Any.
        children: Iterable[object]
        if isinstance(item, dict):
            children = cast(dict[object, object], item).values()
        elif isinstance(item, list):
            children = cast(list[object], item)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
