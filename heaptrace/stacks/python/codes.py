"""Code objects as the probe copies them (raw bytes of the object, of its name, qualified name
and file name str objects, and of its line-table bytes object), decoded with the layout of
the interpreter that made them; and a frame's instruction position as a bytecode offset."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from heaptrace.stacks.procmem import MemoryReader
from heaptrace.stacks.python.layouts import (
    BYTES_DATA,
    BYTES_SIZE,
    INSTR_POINTER,
    LASTI_UNITS,
    UNICODE_LENGTH,
    UNICODE_STATE,
    PyLayout,
)


@dataclass(frozen=True)
class CodeInfo:
    name: str
    qualname: str  # the qualified name (3.11+), else the name
    filename: str
    firstlineno: int
    first_traceable: int  # byte offset of the first instruction a traceback shows (3.11+)
    lines: bytes  # the line table, in the layout's format
    lines_format: str


def decode_str(raw: bytes, layout: PyLayout) -> Optional[str]:
    """A compact str object (every str the compiler makes is) from a copy of its head and
    text; None if the copy is not one or is too short."""
    if len(raw) < layout.ascii_size:
        return None
    length = struct.unpack_from("<q", raw, UNICODE_LENGTH)[0]
    state = struct.unpack_from("<I", raw, UNICODE_STATE)[0]
    kind, compact, ascii = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
    if not compact or kind not in (1, 2, 4) or not 0 <= length < 1 << 20:
        return None
    start = layout.ascii_size if ascii else layout.compact_size
    text = raw[start:start + length * kind]
    if len(text) < length * kind:
        return None
    encoding = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind]
    return text.decode(encoding, "replace")


def _u64(raw: bytes, offset: int) -> int:
    return struct.unpack_from("<Q", raw, offset)[0]


def _i32(raw: bytes, offset: int) -> int:
    return struct.unpack_from("<i", raw, offset)[0]


def decode_lines(raw: bytes, addr: int, read: Optional[MemoryReader]) -> bytes:
    """The data of a bytes object from a copy of its head and data; the part the copy cut
    short is read from the process when it still runs and the object there still starts
    as the copy does (a module's code, say, is freed once the module ran)."""
    if len(raw) < BYTES_DATA:
        return b""
    size = struct.unpack_from("<q", raw, BYTES_SIZE)[0]
    data = raw[BYTES_DATA:BYTES_DATA + max(size, 0)]
    if len(data) < size and read is not None and addr and size < 1 << 24:
        whole = read(addr, BYTES_DATA + size)
        same = whole is not None and whole[8:BYTES_SIZE + 8] == raw[8:BYTES_SIZE + 8] and \
            whole[BYTES_DATA:BYTES_DATA + len(data)] == data
        data = whole[BYTES_DATA:] if same and whole is not None else data
    return data


def read_str(read: MemoryReader, addr: int, layout: PyLayout) -> Optional[str]:
    """A str object of a live process: its head, then as much text as it says it has."""
    head = read(addr, layout.compact_size) if addr else None
    if head is None:
        return None
    length = struct.unpack_from("<q", head, UNICODE_LENGTH)[0]
    if not 0 <= length < 1 << 20:
        return None
    whole = read(addr, layout.compact_size + 4 * length)
    return decode_str(whole or head, layout)


def code_type(head: bytes) -> int:
    """The type pointer of an object from a copy of its head: PyCode_Type's address."""
    return _u64(head, 8)


def read_code(read: MemoryReader, addr: int, layout: PyLayout,
              expected_type: Optional[int] = None) -> Optional[CodeInfo]:
    """A code object of a live process read whole from its memory: what the probe sends,
    for the code objects the probe had no room to send (it sends a few per call). None
    when it is gone, or what is there now is not a code object (`expected_type`)."""
    size = 8 + max(x for x in (layout.code_filename, layout.code_name, layout.code_qualname,
                               layout.code_linetable, layout.code_firstlineno,
                               layout.code_firsttraceable) if x is not None)
    head = read(addr, size)
    if head is None or (expected_type is not None and code_type(head) != expected_type):
        return None
    lines_addr = _u64(head, layout.code_linetable)
    lines = read(lines_addr, BYTES_DATA) if lines_addr else None
    return decode_code(head, b"", b"", b"", lines or b"", layout, read)


def decode_code(head: bytes, name: bytes, qualname: bytes, filename: bytes, lines: bytes,
                layout: PyLayout, read: Optional[MemoryReader] = None) -> CodeInfo:
    """A CodeInfo from the probe's copies; names that did not copy whole read `?`, or from
    the process through `read` when it still runs."""

    def string(raw: bytes, offset: Optional[int]) -> Optional[str]:
        text = decode_str(raw, layout) if raw else None
        if text is None and read is not None and offset is not None:
            text = read_str(read, _u64(head, offset), layout)
        return text

    short = string(name, layout.code_name) or "?"
    qualified = (string(qualname, layout.code_qualname) if layout.code_qualname is not None
                 else None) or short
    table = decode_lines(lines, _u64(head, layout.code_linetable), read)
    traceable = (2 * _i32(head, layout.code_firsttraceable)
                 if layout.code_firsttraceable is not None else 0)
    return CodeInfo(short, qualified, string(filename, layout.code_filename) or "?",
                    _i32(head, layout.code_firstlineno), traceable, table, layout.lines)


def instruction_offset(layout: PyLayout, code: int, instr: int) -> int:
    """The byte offset in the bytecode of a frame's current instruction (3.11+: from the
    pointer into co_code_adaptive; before: f_lasti, in code units on 3.10)."""
    if layout.instr == INSTR_POINTER:
        assert layout.code_adaptive is not None
        return instr - code - layout.code_adaptive if code else 0
    lasti = instr & 0xFFFFFFFF
    lasti = lasti - (1 << 32) if lasti >= 1 << 31 else lasti
    return 2 * lasti if layout.instr == LASTI_UNITS else lasti
