"""Decoding the probe's ring-buffer records (layouts mirrored from probes/heaptrace.bpf.c)."""

from __future__ import annotations

import re
from pathlib import Path

from heaptrace.backends.ebpf import (
    BATCH_HEADER,
    CALL_REC,
    COPY_HEADER,
    MAPFILE_REC,
    PROC_REC,
    REC_BATCH,
    REC_COPY,
    REC_EXEC,
    REC_MAPFILE,
    STACK_REC,
    parse_record,
)
from heaptrace.backends.records import STACK_COPIED, STACK_WALKED, Call, MappedFile

PROBE = (Path(__file__).resolve().parent.parent.parent / "probes" / "heaptrace.bpf.c").read_text()


def test_a_batch_decodes_to_its_calls():
    calls = [(1, 11, 500, 10, -1, 0, 8192, 3, 0x22, 0xFFFFFFFF, 0, 0x7F0000, 8192, 0x401000,
              STACK_WALKED | 5, STACK_COPIED | 6),
             (0, 11, 501, 10, -1, 0, 0, 0, 0, 0, 0, 0x5000, 4096, 0x402000, 0, 0)]
    data = BATCH_HEADER.pack(REC_BATCH, len(calls), 500) + b"".join(
        CALL_REC.pack(*c) for c in calls) + b"\0" * CALL_REC.size * 3  # unused slots follow
    mmap, brk = parse_record(data)
    assert mmap == Call("mmap", 500, 10, 11, (0, 8192, 3, 0x22, 0xFFFFFFFF, 0), 0x7F0000, 8192,
                        0x401000, STACK_WALKED | 5, STACK_COPIED | 6, -1)
    assert (brk.kind, brk.ret, brk.size, brk.stack_ref) == ("brk", 0x5000, 4096, 0)


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
CONSTANTS = {"PATH_BYTES": 256, "TASK_COMM_LEN": 16, "MAX_FRAMES": 64, "BATCH": 32}


def c_size(struct_name: str, stop_at: str = "") -> int:
    """Bytes of a struct of heaptrace.bpf.c (packed by construction: no padding is needed),
    up to the member `stop_at` if given."""
    body = re.search(rf"struct {struct_name} \{{(.*?)\n\}};", PROBE, re.S).group(1)
    total = 0
    for kind, name, count in re.findall(r"^\s+(u8|char|u32|s32|u64|s64) (\w+)(?:\[(\w+)\])?;",
                                        body, re.M):
        if name == stop_at:
            break
        total += SIZES[kind] * (int(CONSTANTS.get(count, count)) if count else 1)
    return total


def test_python_layouts_match_the_c_structs():
    assert CALL_REC.size == c_size("call_rec")
    assert PROC_REC.size == c_size("proc_rec")
    assert MAPFILE_REC.size == c_size("mapfile_rec")
    assert STACK_REC.size == c_size("stack_rec")
    assert COPY_HEADER.size == c_size("copy_rec", stop_at="stack")
    assert BATCH_HEADER.size == c_size("call_batch")  # the calls follow, CALL_REC each
