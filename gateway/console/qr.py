"""QR codes for the voucher sheet: segno, in pure Python, as inline SVG (no image requests, no
inline style, so the console's CSP holds)."""

from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(text: str, label: str) -> Markup:
    """A QR code of `text` (medium error correction: a printed sheet gets creased), scaled to fill its
    box in print, with an accessible name."""
    code = segno.make(text, error="m", micro=False)
    svg = code.svg_inline(scale=4, border=2, dark="#000", light="#fff", svgclass="th-qr", lineclass=None)
    width, height = code.symbol_size(scale=4, border=2)
    # segno writes `<svg width=.. height=..`: a viewBox lets the stylesheet size it; a role and a label
    # name it for screen readers.
    labelled = svg.replace(
        "<svg ", f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{Markup.escape(label)}" ', 1
    )
    return Markup(labelled)  # noqa: S704 (segno's own markup; the label is escaped)
