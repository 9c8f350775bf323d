"""Decoding the probe's ring-buffer records, and their layouts against probes/heaptrace.h."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Dict, Tuple

import pytest

from heaptrace.backends import probe_layout
from heaptrace.backends.ebpf import (
    BATCH_HEADER,
    CALL_REC,
    COPY_HEADER,
    MAPFILE_REC,
    PROC_REC,
    PY_CODE_HEADER,
    PY_STACK_REC,
    REC_BATCH,
    REC_COPY,
    REC_EXEC,
    REC_MAPFILE,
    REC_PYCODE,
    REC_PYSTACK,
    parse_record,
)
from heaptrace.backends.probe_layout import CALL_REC as CALL_LAYOUT
from heaptrace.backends.probe_layout import COPY_HEADER as COPY_LAYOUT
from heaptrace.backends.probe_layout import (
    COUNTERS,
    LAYOUTS,
    RULE,
    Layout,
    ctype_offsets,
    mismatches,
)
from heaptrace.backends.records import (
    PY_STACK,
    STACK_COPIED,
    STACK_WALKED,
    Call,
    MappedFile,
    PyStack,
)

PROBES = Path(__file__).resolve().parents[2] / "probes"


def test_a_batch_decodes_to_its_calls():
    calls = [(1, 11, 500, 10, -1, 0, 8192, 3, 0x22, 0xFFFFFFFF, 0, 0x7F0000, 8192, 0x401000,
              STACK_WALKED | 5, STACK_COPIED | 6, 1, 0, PY_STACK | 7),
             (0, 11, 501, 10, -1, 0, 0, 0, 0, 0, 0, 0x5000, 4096, 0x402000, 0, 0, 1, 0, 0)]
    data = BATCH_HEADER.pack(REC_BATCH, len(calls), 500) + b"".join(
        CALL_REC.pack(*c) for c in calls) + b"\0" * CALL_REC.size * 3  # unused slots follow
    mmap, brk = parse_record(data)
    assert mmap == Call("mmap", 500, 10, 11, (0, 8192, 3, 0x22, 0xFFFFFFFF, 0), 0x7F0000, 8192,
                        0x401000, STACK_WALKED | 5, STACK_COPIED | 6, -1, 1, PY_STACK | 7)
    assert (brk.kind, brk.ret, brk.size, brk.stack_ref, brk.py_ref) == ("brk", 0x5000, 4096, 0, 0)

def test_python_stacks_and_code_objects():
    most = probe_layout.MAX_PY_FRAMES
    codes = [0x1000 | 1, 0x2000, 0 | 1] + [0] * (most - 3)  # the last: a 3.12 shim
    instrs = [0x10C8, 0x20D0, 0] + [0] * (most - 3)
    scopes = [0x7000, 0x7000, 0] + [0] * (most - 3)
    raw = PY_STACK_REC.pack(REC_PYSTACK, 10, 3, 1, 0x8888, *codes, *instrs, *scopes)
    (stack,) = parse_record(raw)
    assert stack == PyStack(PY_STACK | (0x8888 >> 3), 10, (
        (0x1000, 0x10C8, True, 0x7000), (0x2000, 0x20D0, False, 0x7000), (0, 0, True, 0)), True)
    lines = b"\x80\x00\xd8\x04"
    head = bytes(range(256))
    raw = PY_CODE_HEADER.pack(REC_PYCODE, 10, 99, 0x1000, 0x7000, 1, len(lines), head,
                              b"n" * 128, b"q" * 128, b"f" * 512) + lines + b"junk"
    (code,) = parse_record(raw)
    assert (code.addr, code.scope, code.gen, code.head, code.lines) == (
        0x1000, 0x7000, 1, head, lines)
    assert (code.name, len(code.filename)) == (b"n" * 128, 512)


def test_rss_records_and_resident_sums_decode_by_member():
    from heaptrace.backends.ebpf import RSS_REC, resident_sum, space_sample
    from heaptrace.backends.probe_layout import REC_RSS, RESIDENT_KEY, RESIDENT_VAL, RSS_SPACE
    from heaptrace.events import Rss
    # bytes in the probe's member order: file, anon, swap, shmem
    data = RSS_REC.pack(REC_RSS, 10, 77, 1, 500, 4096, 8192, 0, 12288, 40960, 400,
                        4096, 32768, 0, 4096)
    (r,) = parse_record(data)
    assert (r.pid, r.space, r.why, r.ts_ns) == (10, 77, "start", 500)
    assert r.rss == Rss(anon=8192, file=4096, shmem=12288) and r.rss.total == 24576
    assert (r.peak, r.peak_ts_ns, r.peak_rss) == (40960, 400, Rss(32768, 4096, 4096))
    key = RESIDENT_KEY.struct.pack(10, 1, 3, 3, 2, 0, 7, 0, STACK_WALKED | 5, 0, b"")
    value = RESIDENT_VAL.struct.pack(8192, 2, 900, 0x7F00, 11, 0)
    rs = resident_sum(key, value, {0: "file", 1: "anon", 2: "swap", 3: "shmem"})
    assert (rs.pid, rs.gen, rs.ts_ns, rs.member, rs.cause, rs.bytes, rs.increments) == (
        10, 1, 900, "shmem", 2, 8192, 2)
    assert rs.stack_id == 7 and rs.stack_ref == STACK_WALKED | 5
    space = RSS_SPACE.struct.pack(10, 0, 0, 4096, 0, 0, 4096, 0, 8192, 300, 0, 8192, 0, 0,
                                  0, 0, 0, 0)
    s = space_sample(77, space, {0: "file", 1: "anon", 2: "swap", 3: "shmem"}, 1000)
    assert (s.why, s.rss, s.peak, s.peak_ts_ns) == ("now", Rss(4096), 8192, 300)


def test_copies_mapped_files_and_process_changes():
    copy = COPY_HEADER.pack(REC_COPY, 10, 11, 5, 2, 3, STACK_COPIED | 1, 1, 2, 3, 4) + b"abcde!!"
    (c,) = parse_record(copy)
    assert (c.stack, c.gen, c.depth, c.sp, c.lr) == (b"abcde", 2, 3, 2, 4)
    mapped = MAPFILE_REC.pack(REC_MAPFILE, 10, 9, 0x7F00, 4096, 0x1000, b"/lib/libc.so.6")
    assert parse_record(mapped) == [MappedFile(10, 9, 0x7F00, 4096, 0x1000, "/lib/libc.so.6")]
    exec_ = PROC_REC.pack(REC_EXEC, 10, 9, 0, 0, b"grow", b"examples/grow")
    (p,) = parse_record(exec_)
    assert (p.what, p.comm, p.filename) == ("exec", "grow", "examples/grow")


SIZES = {"u8": 1, "char": 1, "u32": 4, "s32": 4, "u64": 8, "s64": 8}
HEADER = (PROBES / "heaptrace.h").read_text()


def define(name: str) -> int:
    m = re.search(rf"^#define {name} (\d+)", HEADER, re.M)
    assert m, f"{name} not in heaptrace.h"
    return int(m.group(1))


def _count(expr: str) -> int:
    """An array's element count: empty (not an array), a number, a constant, or copy_rec's
    `STACK_BYTES > 0 ? 2 * STACK_BYTES : 8`."""
    if not expr:
        return 1
    if expr.isdigit():
        return int(expr)
    if expr.isidentifier():
        return define(expr)
    return 2 * define("STACK_BYTES")


def c_fields(struct_name: str) -> Dict[str, Tuple[int, int]]:
    """field -> (offset, size) of a struct of heaptrace.h, with C's natural alignment;
    a nested struct array (call_batch.recs) ends the walk."""
    body = re.search(rf"struct {struct_name} \{{(.*?)\n\}};", HEADER, re.S).group(1)
    fields, offset = {}, 0
    for kind, name, count in re.findall(r"^\s+(u8|char|u32|s32|u64|s64) (\w+)(?:\[(.+?)\])?;",
                                        body, re.M):
        size = SIZES[kind]
        n = _count(count)
        offset += -offset % size
        fields[name] = (offset, size * n)
        offset += size * n
    return fields


@pytest.mark.parametrize("layout", LAYOUTS, ids=[x.c_name for x in LAYOUTS])
def test_python_layouts_match_the_c_structs_field_by_field(layout):
    c = c_fields(layout.c_name)
    if layout is COPY_LAYOUT:  # the stack bytes follow the header
        c.pop("stack")
    if layout is probe_layout.PY_CODE_HEADER:  # so does the line table
        c.pop("lines")
    assert mismatches(layout, c) == []


def test_a_swapped_field_is_caught():
    swapped = Layout("call_rec", (("tid", "I"), ("kind", "I")) + CALL_LAYOUT.fields[2:])
    assert any("call_rec.kind" in m for m in mismatches(swapped, c_fields("call_rec")))


def test_the_checker_reads_bccs_ctypes():
    class Rule(ctypes.Structure):  # as bcc builds a map's value type, one field resized
        _fields_ = [("cfa_off", ctypes.c_int), ("fp_off", ctypes.c_int),
                    ("cfa_reg", ctypes.c_ubyte), ("fp_saved", ctypes.c_ubyte),
                    ("end", ctypes.c_ushort), ("pad", ctypes.c_ubyte * 4)]
    problems = mismatches(RULE, ctype_offsets(Rule))
    assert problems and "rule.end" in problems[0]


def test_constants_match_the_header():
    for name in ("REC_BATCH", "REC_FORK", "REC_EXEC", "REC_EXIT", "REC_STACK", "REC_COPY",
                 "REC_MAPFILE", "REC_RSS", "STATE_ACTIVE", "STATE_ARMED", "NBUCKETS", "MAX_FRAMES",
                 "BATCH", "TASK_COMM_LEN", "PATH_BYTES", "SLOT_SHIFT", "NMEMBERS", "RSS_START",
                 "RSS_CHANGE", "RSS_END", "CAUSE_FAULT", "CAUSE_SYSCALL", "CAUSE_CONTEXT",
                 "CAUSE_USER", "REC_PYSTACK", "REC_PYCODE", "MAX_PY_FRAMES", "PY_CODE_BYTES",
                 "PY_NAME_BYTES", "PY_FILE_BYTES", "PY_LINES_BYTES", "PY_FRAMES_OBJECT",
                 "PY_FRAMES_IS_ENTRY", "PY_FRAMES_SHIM", "PY_CUT"):
        assert define(name) == getattr(probe_layout, name), name
    ctrs = sorted((int(v), n) for n, v in re.findall(r"^#define CTR_(\w+) (\d+)", HEADER, re.M))
    assert len(ctrs) == define("NCOUNTERS") == len(COUNTERS)
    assert [i for i, _ in ctrs] == list(range(len(COUNTERS)))
