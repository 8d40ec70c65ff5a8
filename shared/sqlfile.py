"""Named SQL blocks: each service keeps its SQL in a `.sql` file, loaded once at import.

A block starts with a line `-- name: some_query` and runs to the next such line. Queries are
always parameterised ($1, $2, ...); nothing here is ever assembled from user input.

Every block is a whole statement, and tests/db/test_schema.py PREPAREs each one against the migrated
schema. A block that is only a piece other blocks are composed from says so on a line of its own,
`-- fragment: <what it is part of>`, and is prepared only as part of those.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_FRAGMENT_LINE = re.compile(r"^--\s*fragment:", re.MULTILINE)


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


def is_fragment(sql: str) -> bool:
    """Whether a block is a piece for composition (a `-- fragment:` line), not a statement."""
    return _FRAGMENT_LINE.search(sql) is not None
