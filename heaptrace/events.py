"""Plain data shared by every layer: the kinds of memory syscalls and one traced call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

# Order matters: it is the kind index used by the BPF program (probes/heaptrace.bpf.c).
KINDS: Tuple[str, ...] = ("brk", "mmap", "munmap", "mremap", "madvise")
KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}
GROWTH_KINDS = ("brk", "mmap", "mremap")
# Kinds whose bytes are given back: unmapped, or (madvise DONTNEED, FREE, REMOVE) left mapped
# but handed back to the kernel page by page, as jemalloc and glibc's trimming do.
RELEASE_KINDS = ("munmap", "madvise")


@dataclass(frozen=True)
class Frame:
    """One frame of a user stack. `name` is what is shown (symbol, or module+0xoffset)."""

    name: str
    module: Optional[str] = None
    addr: Optional[int] = None


@dataclass(frozen=True)
class Event:
    """One traced call (or, for imports, one aggregated row: `calls` > 1).

    `size` is the signed byte delta the call stands for: brk growth (> 0) or shrink (< 0),
    the length of an mmap or munmap, new_len - old_len for mremap. Zero for failed calls.
    """

    kind: str
    size: int
    ts_ns: int = 0
    pid: int = 0
    tid: int = 0
    addr: int = 0
    length: int = 0
    prot: int = 0
    flags: int = 0
    fd: int = -1
    ret: int = 0
    stack_id: Optional[int] = None
    calls: int = 1
    new_addr: int = 0
    new_length: int = 0


@dataclass
class KindTotals:
    """Exact per-kind counters. `bytes` is growth (brk, mmap, mremap) or length given back
    (munmap); shrinks of brk and mremap are `released`."""

    calls: int = 0
    failed: int = 0
    bytes: int = 0
    released: int = 0
    buckets: dict = field(default_factory=dict)  # power-of-two value -> count

# Event fields per kind (Linux; the DTrace backend and importers fill what they know):
#   brk     addr = requested break (arg), ret = new break, size = ret - previous break
#   mmap    addr = hint, length, prot, flags, fd; ret = mapped address; size = length
#   munmap  addr, length; size = length
#   mremap  addr = old address, length = old_len, new_length, flags, new_addr = ret;
#           size = new_length - length
#   madvise addr, length, flags = advice; size = length for MADV_DONTNEED, MADV_FREE and
#           MADV_REMOVE (pages given back), else 0
# A failed call has ret < 0 (-errno) and size 0.
