"""The source line of a bytecode offset, from a code object's line table: co_lnotab (3.8,
3.9), 3.10's co_linetable, and the location table of 3.11+ (Objects/locations.md and
lnotab_notes.txt in CPython's source describe the three)."""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

from heaptrace.stacks.python.layouts import LINETABLE_310, LNOTAB, LOCATIONS

Range = Tuple[int, int, Optional[int]]  # [start, end) in bytes of bytecode, line (None: none)


def line_of(table: bytes, fmt: str, firstlineno: int, offset: int) -> Optional[int]:
    """The line of the instruction at byte `offset` of the bytecode, None when the table says
    it has none or does not reach that far."""
    if fmt == LNOTAB:
        return _lnotab_line(table, firstlineno, offset)
    ranges = _linetable_310(table, firstlineno) if fmt == LINETABLE_310 else (
        _locations(table, firstlineno) if fmt == LOCATIONS else iter(()))
    for start, end, line in ranges:
        if start <= offset < end:
            return line
    return None


def _lnotab_line(table: bytes, firstlineno: int, offset: int) -> Optional[int]:
    """co_lnotab: (bytecode increment, signed line increment) byte pairs; an instruction's
    line is the one in force after the last increment at or before its offset."""
    line, addr = firstlineno, 0
    for i in range(0, len(table) - 1, 2):
        addr += table[i]
        if addr > offset:
            break
        delta = table[i + 1]
        line += delta - 256 if delta >= 128 else delta
    return line


def _linetable_310(table: bytes, firstlineno: int) -> Iterator[Range]:
    """3.10: (bytecode length, signed line delta) byte pairs; a delta of -128: no line."""
    line, end = firstlineno, 0
    for i in range(0, len(table) - 1, 2):
        start, end = end, end + table[i]
        delta = table[i + 1] - 256 if table[i + 1] >= 128 else table[i + 1]
        if delta == -128:
            yield start, end, None
            continue
        line += delta
        yield start, end, line


def _varint(table: bytes, i: int) -> Tuple[int, int]:
    b = table[i]
    value, shift, i = b & 63, 6, i + 1
    while b & 64:
        b = table[i]
        value |= (b & 63) << shift
        shift, i = shift + 6, i + 1
    return value, i


def _svarint(table: bytes, i: int) -> Tuple[int, int]:
    value, i = _varint(table, i)
    return (-(value >> 1) if value & 1 else value >> 1), i


def _locations(table: bytes, firstlineno: int) -> Iterator[Range]:
    """3.11+: entries of a first byte (1, code:4, length-1:3) in 2-byte code units, then the
    code's fields: 15 no location, 14 long form, 13 line only, 10-12 one line with columns
    (delta code-10), 0-9 short form (same line)."""
    line, end, i = firstlineno, 0, 0
    try:
        while i < len(table):
            first = table[i]
            i += 1
            code, units = (first >> 3) & 15, (first & 7) + 1
            start, end = end, end + 2 * units
            if code == 15:
                yield start, end, None
                continue
            if code == 14:
                delta, i = _svarint(table, i)
                for _ in range(3):  # end line delta, column + 1, end column + 1
                    _, i = _varint(table, i)
            elif code == 13:
                delta, i = _svarint(table, i)
            elif code >= 10:
                delta, i = code - 10, i + 2
            else:
                delta, i = 0, i + 1
            line += delta
            yield start, end, line
    except IndexError:  # a table cut short: what it said so far stands
        return
