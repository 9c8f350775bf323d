"""Reading another tool's text output (folded stacks, DTrace, `perf script`) with bounds.

The input may come from anywhere: a file another user wrote, a pipe, a device named by
mistake. Lines are read one at a time with a bound on each line and on the whole input, so
`/dev/zero`, a 1 GiB line or an endless pipe ends in one clear error instead of filling
memory; devices, directories and sockets are refused before anything is read. The parsers
that consume these lines split them with string methods or regular expressions that cannot
backtrack, so their time is linear in the input.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator

from heaptrace.errors import ImportFormatError

MAX_LINE_BYTES = 4 << 20  # a folded line of 20,000 frames of 200 characters fits
MAX_INPUT_BYTES = 1 << 30
# Counts are stored as SQLite's signed 64-bit integers.
MAX_COUNT = (1 << 63) - 1


class LineError(Exception):
    """Raised inside a parser with the line number; turned into ImportFormatError by the caller."""

    def __init__(self, line: int, expected: str) -> None:
        super().__init__(expected)
        self.line = line
        self.expected = expected


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def open_input(path: str) -> int:
    """A file descriptor on `path`, which must be a regular file or a pipe."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImportFormatError(path, 0, f"cannot read: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "a device or socket"
        raise ImportFormatError(path, 0, f"expected a file or a pipe, not {what}")
    return fd


def input_lines(path: str, max_line: int = MAX_LINE_BYTES,
                max_total: int = MAX_INPUT_BYTES) -> Iterator[str]:
    """The lines of `path` without their line ends (LF or CRLF), undecodable bytes
    replaced; an error names the line that is too long or where the input got too big."""
    with os.fdopen(open_input(path), "rb") as f:
        total, number = 0, 0
        while True:
            raw = f.readline(max_line + 1)
            if not raw:
                return
            number += 1
            total += len(raw)
            if len(raw) > max_line and not raw.endswith(b"\n"):
                raise ImportFormatError(path, number, f"a line longer than {_mib(max_line)}: "
                                        "expected lines of text (is this the right file?)")
            if total > max_total:
                raise ImportFormatError(path, number, f"more than {_mib(max_total)} of input: "
                                        "split it, or filter it to the events you need")
            yield raw.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")


def fits(value: int) -> bool:
    """Whether a count or byte sum fits a recording (SQLite's signed 64 bits)."""
    return -MAX_COUNT <= value <= MAX_COUNT


def checked_int(number: int, token: str, base: int = 10) -> int:
    """A number token of line `number` that must fit a recording."""
    value = to_int(token, base)
    if not fits(value):
        raise LineError(number, f"expected a number below 2^63, not {token[:40]}"
                        f"{'...' if len(token) > 40 else ''}")
    return value


def to_int(token: str, base: int = 10) -> int:
    """int(token) for a token already checked to be a number; one of more than 24 digits
    becomes MAX_COUNT + 1 (too big for a recording either way) without converting it, as
    Python refuses to convert very long numbers and it would take quadratic time."""
    digits = token.lstrip("-+")
    if base == 16 and digits[:2].lower() == "0x":
        digits = digits[2:]
    if len(digits.lstrip("0")) > 24:
        return -(MAX_COUNT + 1) if token.startswith("-") else MAX_COUNT + 1
    return int(token, base)
