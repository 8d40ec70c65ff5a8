"""Named SQL blocks: each service keeps its SQL in a `.sql` file, loaded once at import.

A block starts with a line `-- name: some_query` and runs to the next such line. Queries are
always parameterised ($1, $2, ...); nothing here is ever assembled from user input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load_queries(path: Path) -> dict[str, str]:
    text = path.read_text()
    # re.split says `str | Any` (a group that did not take part gives None); the one group here
    # always takes part.
    parts = cast(list[str], _NAME_LINE.split(text))
    queries: dict[str, str] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{path.name}: query {name!r} is defined twice")
        sql = body.strip()
        if not sql:
            raise ValueError(f"{path.name}: query {name!r} is empty")
        queries[name] = sql
    return queries
