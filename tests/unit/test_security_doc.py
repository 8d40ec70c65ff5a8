"""SECURITY.md names the test behind each promise: every test and file it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w.]+))?`")


def test_every_test_security_md_names_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    references = REFERENCE.findall(text)
    assert len(references) > 20
    missing = []
    for path, name in references:
        source = ROOT / path
        if not source.exists():
            missing.append(path)
            continue
        defined = re.search(rf"def {re.escape(name)}\(", source.read_text())
        if name and not name.startswith("...") and not defined:  # "..." abbreviates the one before
            missing.append(f"{path}::{name}")
    assert not missing, f"SECURITY.md names what does not exist: {missing}"
