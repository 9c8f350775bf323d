"""Python frames, the pure parts: merging them into native stacks (each evaluation-loop
frame gives way to the Python frames of its C call, in order), and the decoders on objects
built byte by byte (str objects, the three line-table formats, 3.13's debug offsets, BTF).
tests/host/test_python_host.py checks the same code against the real interpreters."""

from __future__ import annotations

import dataclasses
import struct
from typing import List

from heaptrace.backends.btf import Btf
from heaptrace.events import Frame
from heaptrace.stacks.python.codes import decode_str
from heaptrace.stacks.python.layouts import (
    DEBUG_COOKIE,
    DEBUG_GROUPS,
    LINETABLE_310,
    LNOTAB,
    LOCATIONS,
    TABLE,
    from_debug_offsets,
    parse_debug_offsets,
)
from heaptrace.stacks.python.linetable import line_of
from heaptrace.stacks.python.mixed import CodeNames, CodeRow, eval_groups, is_python, merge

LINES_311 = bytes([0x80 | (13 << 3) | 0, 0x00,  # 2 bytes at firstlineno (delta 0)
                   0x80 | (13 << 3) | 3, 0x04])  # 8 bytes at firstlineno + 2


def row(name: str, file: str = "/srv/radio.py", first: int = 10) -> CodeRow:
    return CodeRow(0, name, name, file, first, 0, "locations", LINES_311)


CODES = CodeNames([(1, 0x100, 7, row("main")), (1, 0x200, 7, row("broadcast")),
                   (1, 0x300, 7, row("receive")),
                   (1, 0x300, 8, row("other", "/srv/other.py"))])


def native(*names: str) -> List[Frame]:
    return [Frame(n, "python3", 0x1000 + i) for i, n in enumerate(names)]


def names(frames: List[Frame]) -> List[str]:
    return [f.name for f in frames]


def test_each_eval_frame_gives_way_to_its_python_frames():
    # leaf first: receive and broadcast ran in one eval call (3.11+ inlines Python calls),
    # main in the one before it
    groups = eval_groups([(0x300, 4, False, 7), (0x200, 0, True, 7), (0x100, 2, True, 7)],
                         CODES, 1, None)
    stack = native("brk", "malloc", "bytes_repeat", "_PyEval_EvalFrameDefault",
                   "_PyFunction_Vectorcall", "_PyEval_EvalFrameDefault", "Py_RunMain", "_start")
    merged = merge(stack, groups)
    assert names(merged) == ["brk", "malloc", "bytes_repeat", "receive (radio.py:12)",
                             "broadcast (radio.py:10)", "_PyFunction_Vectorcall",
                             "main (radio.py:12)", "Py_RunMain", "_start"]
    assert [is_python(f) for f in merged] == [False] * 3 + [True] * 2 + [False, True] + [False] * 2
    assert merged[3].module == "/srv/radio.py"


def test_the_same_address_with_other_globals_is_another_code_object():
    (group,) = eval_groups([(0x300, 0, True, 8)], CODES, 1, None)
    assert names(group) == ["other (other.py:10)"]


def test_an_empty_eval_call_keeps_its_native_frame_and_leftovers_stay_in_order():
    # a 3.12 shim with no frame yet, then main; the native stack has only one eval frame
    groups = eval_groups([(0, 0, True, 0), (0x100, 0, True, 7)], CODES, 1, None)
    merged = merge(native("malloc", "_PyEval_EvalFrameDefault", "Py_RunMain"), groups)
    assert names(merged) == ["malloc", "_PyEval_EvalFrameDefault", "main (radio.py:10)",
                             "Py_RunMain"]


def test_an_unknown_code_object_and_an_unstarted_frame():
    codes = CodeNames([(1, 0x100, 7, dataclasses.replace(row("main"), first_traceable=6))])
    (group,) = eval_groups([(0x100, 2, False, 7), (0x999, 0, True, 7)], codes, 1, None)
    assert names(group) == ["<code 0x999> (?:?)"]  # main had not started: tracebacks omit it


# --- the decoders, on objects built here byte by byte ---------------------------------------

def str_object(text: str, layout) -> bytes:  # noqa: ANN001 - a PyLayout
    """A compact str object as CPython lays it out: length, state (kind, compact, ascii)."""
    kind = 1 if max(map(ord, text), default=0) < 256 else (2 if max(map(ord, text)) < 65536 else 4)
    ascii = all(ord(c) < 128 for c in text)
    head = bytearray(layout.ascii_size if ascii else layout.compact_size)
    struct.pack_into("<q", head, 16, len(text))
    struct.pack_into("<I", head, 32, (kind << 2) | (1 << 5) | (int(ascii) << 6))
    return bytes(head) + text.encode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind])


def test_str_objects_of_every_kind_and_layout():
    for version in ((3, 8), (3, 11), (3, 12), (3, 13)):
        layout = TABLE[version]
        for text in ("main", "ünï", "日本", "\U0001F600x"):
            assert decode_str(str_object(text, layout), layout) == text
        assert decode_str(str_object("main", layout)[:-1], layout) is None  # cut short


def test_line_tables_of_the_three_formats():
    # co_lnotab (3.8): +6 bytes -> +1 line, +4 -> +2
    assert [line_of(bytes([6, 1, 4, 2]), LNOTAB, 10, o) for o in (0, 5, 6, 9, 10, 20)] == \
        [10, 10, 11, 11, 13, 13]
    # 3.10: (length, line delta) pairs, -128: no line
    table = bytes([4, 0, 4, 1, 2, 0x80, 2, 3])
    assert [line_of(table, LINETABLE_310, 10, o) for o in (0, 4, 8, 10, 12)] == \
        [10, 11, None, 14, None]
    # 3.11+: short form (same line), one-line form (+2), long form (-1), no location
    table = bytes([0x80 | 0 << 3 | 1, 5,                 # 4 bytes, same line
                   0x80 | 12 << 3 | 0, 1, 2,             # 2 bytes, line + 2
                   0x80 | 14 << 3 | 0, 3, 0, 1, 1,       # 2 bytes, line - 1 (svarint 3)
                   0x80 | 15 << 3 | 1])                  # 4 bytes without a line
    assert [line_of(table, LOCATIONS, 10, o) for o in (0, 2, 4, 6, 8, 10, 12)] == \
        [10, 10, 12, 11, None, None, None]


def test_debug_offsets_of_313_override_the_table():
    values = {"version": 0x030D00F0, "free_threaded": 0}
    words, names_ = [], []
    for group, fields in DEBUG_GROUPS:
        for field in fields:
            names_.append(f"{group}.{field}")
            words.append(1000 + len(words))
    raw = DEBUG_COOKIE + struct.pack(f"<{2 + len(words)}Q", values["version"], 0, *words)
    offsets = parse_debug_offsets(raw)
    assert offsets is not None and offsets["code_object.qualname"] == words[
        names_.index("code_object.qualname")]
    layout = from_debug_offsets(offsets)
    assert layout is not None
    assert (layout.threads_head, layout.code_qualname, layout.frame_code) == (
        offsets["interpreter_state.threads_head"], offsets["code_object.qualname"],
        offsets["interpreter_frame.executable"])
    assert layout.code_firsttraceable == TABLE[(3, 13)].code_firsttraceable  # not published
    assert parse_debug_offsets(b"notdebug" + raw[8:]) is None
    assert from_debug_offsets({**offsets, "free_threaded": 1}) is None


def test_btf_offsets_through_nested_structs_and_typedefs():
    strings = b"\0int\0task_struct\0thread\0thread_struct\0fsbase\0ts_t\0pad\0"
    name = {s.decode(): strings.index(b"\0" + s + b"\0") + 1
            for s in (b"int", b"task_struct", b"thread", b"thread_struct", b"fsbase", b"ts_t",
                      b"pad")}
    types = b"".join([
        struct.pack("<IIII", name["int"], 1 << 24, 8, 64),                    # 1: int
        struct.pack("<III", name["thread_struct"], 4 << 24 | 2, 16),          # 2: struct
        struct.pack("<III", name["pad"], 1, 0), struct.pack("<III", name["fsbase"], 1, 64),
        struct.pack("<III", name["ts_t"], 8 << 24, 2),                        # 3: typedef
        struct.pack("<III", name["task_struct"], 4 << 24 | 2, 40),            # 4: struct
        struct.pack("<III", name["pad"], 1, 0), struct.pack("<III", name["thread"], 3, 192),
    ])
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    btf = Btf(header + types + strings)
    assert btf.offset("task_struct", ("thread", "fsbase")) == 24 + 8
    assert btf.offset("task_struct", ("thread", "nothing")) is None
    assert btf.offset("no_struct", ("thread",)) is None
