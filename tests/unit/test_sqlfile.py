"""Named SQL blocks: the loader's rules, and that every query the code asks for exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.sqlfile import load_queries

ROOT = Path(__file__).resolve().parents[2]

# Q["name"] or Q['name'], possibly split over lines by the formatter.
_Q_USE = re.compile(r"""\bQ\[\s*(["'])([A-Za-z_][A-Za-z0-9_]*)\1\s*\]""")


def write(tmp_path: Path, text: str, name: str = "queries.sql") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_blocks_are_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "-- a preamble comment, not a query\n"
        "\n"
        "-- name: first_query\n"
        "SELECT 1\n"
        "FROM t\n"
        "WHERE a = $1;\n"
        "\n"
        "-- name: second_query\n"
        "-- a comment inside the block stays\n"
        "UPDATE t SET b = $2 WHERE a = $1;\n",
    )
    queries = load_queries(path)
    assert list(queries) == ["first_query", "second_query"]
    assert queries["first_query"] == "SELECT 1\nFROM t\nWHERE a = $1;"
    assert queries["second_query"] == "-- a comment inside the block stays\nUPDATE t SET b = $2 WHERE a = $1;"


def test_name_line_spacing_variants(tmp_path: Path) -> None:
    path = write(tmp_path, "--name:a\nSELECT 1;\n--   name:   b_2   \nSELECT 2;\n")
    assert load_queries(path) == {"a": "SELECT 1;", "b_2": "SELECT 2;"}


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "crlf.sql"
    path.write_bytes(b"-- name: a\r\nSELECT 1;\r\n-- name: b\r\nSELECT 2;\r\n")
    queries = load_queries(path)
    assert set(queries) == {"a", "b"}
    assert queries["a"].startswith("SELECT 1;")


def test_file_without_names_is_empty(tmp_path: Path) -> None:
    assert load_queries(write(tmp_path, "SELECT 1;\n")) == {}
    assert load_queries(write(tmp_path, "", name="empty.sql")) == {}


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "-- name: q\nSELECT 1;\n-- name: other\nSELECT 2;\n-- name: q\nSELECT 3;\n")
    with pytest.raises(ValueError, match=r"queries\.sql.*'q'.*twice"):
        load_queries(path)


@pytest.mark.parametrize(
    "text",
    [
        "-- name: q\n",
        "-- name: q\n\n   \n-- name: r\nSELECT 1;\n",
        "-- name: r\nSELECT 1;\n-- name: q\n  \n",
    ],
)
def test_empty_block_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match=r"'q'.*empty"):
        load_queries(write(tmp_path, text))


def test_name_must_be_lowercase_identifier(tmp_path: Path) -> None:
    """A line that is not a valid name line is part of the previous block, not a new query."""
    path = write(tmp_path, "-- name: q\nSELECT 1;\n-- name: Bad-Name\nSELECT 2;\n")
    queries = load_queries(path)
    assert list(queries) == ["q"]
    assert "Bad-Name" in queries["q"]


def test_q_regex_finds_uses() -> None:
    text = 'a = Q["one"]\nb = Q[\n    "two"\n]\nc = Q[\'three\']\nd = XQ["not_me"]\n'
    assert {m.group(2) for m in _Q_USE.finditer(text)} == {"one", "two", "three"}


# A module's own SQL file: `Q = load_queries(Path(__file__).with_name("name.sql"))`.
_LOADS = re.compile(r"""load_queries\(\s*Path\(__file__\)\.with_name\(\s*["']([\w.]+)["']\s*\)\s*\)""")
MODULES_WITH_SQL = sorted(
    path
    for package in ("registry", "sweeper")
    for path in (ROOT / package).glob("*.py")
    if _LOADS.search(path.read_text())
)


def test_modules_with_sql_are_found() -> None:
    assert {p.name for p in MODULES_WITH_SQL} >= {"store.py", "zabbix_tokens.py", "jobs.py"}


@pytest.mark.parametrize("module", MODULES_WITH_SQL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_query_a_module_uses_is_in_its_sql_file(module: Path) -> None:
    text = module.read_text()
    match = _LOADS.search(text)
    assert match is not None
    queries = load_queries(module.with_name(match.group(1)))
    assert queries, f"{match.group(1)} defines no query"
    used = {m.group(2) for m in _Q_USE.finditer(text)}
    missing = sorted(used - set(queries))
    assert not missing, f"{module.name} uses queries missing from {match.group(1)}: {missing}"


def test_every_sweeper_job_has_its_batch_and_count_queries() -> None:
    from sweeper.jobs import JOBS

    for job in JOBS:
        assert "FOR UPDATE SKIP LOCKED" in job.batch_query
        assert job.count_query.startswith("SELECT count(*)")
