"""Every text the console translates has its Russian, and the language is negotiated as browsers ask."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.console import pages
from gateway.console.i18n import RU, from_accept_language

CONSOLE = Path(pages.__file__).resolve().parent
LITERAL = re.compile(r"""\bt\(\s*(?:"([^"]+)"|'([^']+)')\s*\)""")


def translated_texts() -> set[str]:
    texts: set[str] = set()
    for path in [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("*.py")]:
        for match in LITERAL.finditer(path.read_text()):
            texts.add(match.group(1) or match.group(2))
    # Names the templates translate by value.
    texts.update(pages.ROLES, pages.KINDS, pages.TOKEN_STATUSES)
    # The navigation's labels, listed in base.html as pairs.
    base = (CONSOLE / "templates" / "base.html").read_text()
    texts.update(re.findall(r'\("/console/[a-z]*", "([^"]+)"\)', base))
    return texts


def test_every_translated_text_has_its_russian() -> None:
    texts = translated_texts()
    assert len(texts) > 80
    missing = sorted(text for text in texts if text not in RU and text not in {"zabbix", "wialon"})
    assert missing == []


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("", "en"),
        ("ru", "ru"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
        ("en-US,en;q=0.9,ru;q=0.8", "en"),
        ("de-DE, ru;q=0.5", "ru"),
        ("de-DE, fr;q=0.5", "en"),
        ("ru;q=0, en;q=0.1", "en"),
        ("ru;q=bad", "en"),
    ],
)
def test_the_language_follows_accept_language(header: str, lang: str) -> None:
    assert from_accept_language(header) == lang
