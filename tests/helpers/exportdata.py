"""A synthetic recording for the export tests: two processes (one of which execs), stacks
through a program and libc with their mappings and build-ids, a frame without a symbol, a
stack that runs on both sides of an exec, events without a stack, shrinks, failures,
releases; and the truths the exports must add up to: per kind, and `heaptrace flame`'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

from heaptrace.events import Event, Frame
from heaptrace.formats.folded import parse_folded
from tests.helpers.cli import heaptrace
from tests.helpers.synth import Synth

PAGE = 4096
PROG = ("/usr/bin/prog", 0x400000, 0x401000, 0x1000, "aa11" * 10)
LIBC = ("/usr/lib/x86_64-linux-gnu/libc.so.6", 0x7F0000000000, 0x7F0000100000, 0x28000,
        "bb22" * 10)
SH = ("/usr/bin/sh", 0x500000, 0x510000, 0, "cc33" * 10)


def prog(name: str, offset: int) -> Frame:
    return Frame(name, "prog", PROG[1] + offset)


def libc(name: str, offset: int) -> Frame:
    return Frame(name, "libc.so.6", LIBC[1] + offset)


def sh(name: str, offset: int) -> Frame:
    return Frame(name, "sh", SH[1] + offset)


# root first
STACKS: Dict[str, Tuple[Frame, ...]] = {
    "sh_brk": (sh("main", 0x10), sh("xmalloc", 0x20), libc("brk", 0x900)),
    "common": (prog("main", 0x100), prog("common", 0x180), libc("mmap", 0x1000)),
    "load": (prog("main", 0x104), prog("load", 0x200), prog("xmalloc", 0x240),
             libc("mmap", 0x1000)),
    "heap": (prog("main", 0x108), prog("prog+0x350", 0x350), libc("malloc", 0x2000),
             libc("brk", 0x900)),
    "grow": (prog("main", 0x10C), prog("grow_buf", 0x400), libc("mremap", 0x3000)),
    "worker": (prog("worker_main", 0x500), prog("xmalloc", 0x244), libc("mmap", 0x1000)),
    "trim": (prog("worker_main", 0x504), libc("free", 0x4000), libc("madvise", 0x5000)),
}

# (ms, pid, kind, stack or None, fields)
EVENTS: List[Tuple[float, int, str, object, dict]] = [
    (2, 1, "brk", "sh_brk", dict(size=3 * PAGE, addr=0x600000, ret=0x603000)),
    (4, 1, "mmap", "common", dict(size=PAGE, length=PAGE, ret=0x70000)),
    (10, 2, "mmap", "worker", dict(size=4 * PAGE, length=4 * PAGE, ret=0x50000)),
    (12, 2, "madvise", "trim", dict(size=2 * PAGE, addr=0x50000, length=2 * PAGE)),
    (30, 1, "mmap", "load", dict(size=8 * PAGE, length=8 * PAGE, ret=0x10000)),
    (31, 1, "mmap", "load", dict(size=2 * PAGE, length=2 * PAGE, ret=0x20000)),
    (32, 1, "munmap", None, dict(size=2 * PAGE, addr=0x20000, length=2 * PAGE)),
    (33, 1, "brk", "heap", dict(size=PAGE, addr=0x1001000, ret=0x1001000)),
    (34, 1, "brk", "heap", dict(size=-PAGE // 2, addr=0x1000800, ret=0x1000800)),
    (35, 1, "mmap", "load", dict(size=0, length=1 << 40, ret=-12)),
    (36, 1, "mremap", "grow", dict(size=4 * PAGE, addr=0x10000, length=8 * PAGE,
                                   new_length=12 * PAGE, new_addr=0x80000, ret=0x80000)),
    (37, 1, "mmap", None, dict(size=PAGE, length=PAGE, ret=0x30000)),
    (40, 1, "mmap", "common", dict(size=5 * PAGE, length=5 * PAGE, ret=0x90000)),
    (70, 2, "munmap", "worker", dict(size=4 * PAGE, addr=0x50000, length=4 * PAGE)),
]
EXEC_MS = 20


def write(path: str) -> str:
    """The recording at `path`, as `heaptrace run` would leave it (without totals)."""
    synth = Synth(path)
    w = synth.writer
    w.set_meta(started_at=1_700_000_000.5, duration_s=0.1)
    synth.process(1, "sh", 0)
    synth.process(1, "prog", EXEC_MS)
    synth.process(2, "worker", 5, ppid=1, end_ms=80)
    w.add_mapping(1, SH[1], SH[2], SH[3], SH[0], SH[4], synth.ts(0), synth.ts(EXEC_MS))
    w.add_mapping(1, LIBC[1], LIBC[2], LIBC[3], LIBC[0], LIBC[4], synth.ts(0))
    for pid, first in ((1, EXEC_MS), (2, 5)):
        w.add_mapping(pid, PROG[1], PROG[2], PROG[3], PROG[0], PROG[4], synth.ts(first))
    w.add_mapping(2, LIBC[1], LIBC[2], LIBC[3], LIBC[0], LIBC[4], synth.ts(5))
    ids: Dict[Tuple[int, str], int] = {}
    for ms, pid, kind, stack, fields in EVENTS:
        stack_id = None
        if stack is not None:
            key = (pid, stack)
            if key not in ids:
                ids[key] = w.add_stack((), tuple(reversed(STACKS[stack])), pid,
                                       ts_ns=synth.ts(ms))
            stack_id = ids[key]
        w.add_events([Event(kind=kind, ts_ns=synth.ts(ms), pid=pid, tid=pid,
                            stack_id=stack_id, **fields)])
    synth.close()
    return path


def truth(kinds: Tuple[str, ...]) -> Dict[str, Tuple[int, int]]:
    """{kind: (calls, bytes of positive sizes)} of every event of `kinds`."""
    found = {kind: (0, 0) for kind in kinds}
    for _ms, _pid, kind, _stack, fields in EVENTS:
        if kind in found:
            calls, nbytes = found[kind]
            found[kind] = (calls + 1, nbytes + max(fields["size"], 0))
    return found


def flame(recording: str, *options: str) -> dict:
    """{root-first stack: bytes} of `heaptrace flame --folded` with these options."""
    out = heaptrace("flame", recording, "--folded", *options, check=True).stdout
    return parse_folded(out.splitlines())


def speedscope(recording: str, out: Path, *options: str) -> dict:
    """`heaptrace export speedscope` into `out`, parsed."""
    heaptrace("export", "speedscope", recording, *options, "-o", str(out), check=True)
    return json.loads(out.read_text())
