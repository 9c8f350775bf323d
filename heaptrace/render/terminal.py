"""Text for a terminal: every character that a traced program or an input file controls and
that a terminal would act on (ESC sequences, OSC 52 clipboard writes, BEL, C1 controls, Unicode
line breaks and direction overrides) is shown as a visible escape, never sent raw. Undecodable
bytes kept as lone surrogates (file names from argv) are escaped too, so writing never fails.

JSON needs none of this (json.dump escapes control characters) and SVG has its own
(render/svg.py)."""

from __future__ import annotations

from typing import Dict, Iterable

_UNSAFE: Iterable[int] = (
    *range(0x00, 0x20), 0x7F, *range(0x80, 0xA0),  # C0, DEL, C1
    0x061C, 0x200E, 0x200F, *range(0x2028, 0x202F), *range(0x2066, 0x206A),  # bidi, breaks
    *range(0xD800, 0xE000),  # lone surrogates
)
_ESCAPES: Dict[int, str] = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNSAFE}
_ESCAPES_BUT_NEWLINES = {c: e for c, e in _ESCAPES.items() if c != ord("\n")}


def printable(text: str) -> str:
    """`text` on one line with every control character escaped (ESC becomes \\x1b)."""
    return text.translate(_ESCAPES)


def printable_lines(text: str) -> str:
    """Like printable(), keeping the line breaks: for a whole report heaptrace laid out."""
    return text.translate(_ESCAPES_BUT_NEWLINES)


def one_line(text: str, limit: int) -> str:
    """A command line on one line (`python3 -c` scripts have many), escaped, cut at `limit`."""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
