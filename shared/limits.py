"""Measuring what a request hands over before anything expensive (or recursive) touches it."""

from __future__ import annotations

from typing import Any


def too_deep(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests objects and arrays deeper than `limit`. Iterative and linear
    in the value's size, so it is safe to run on anything a JSON decoder produced: JSON encoders
    (orjson stops at depth 255) and recursive code are not."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False
