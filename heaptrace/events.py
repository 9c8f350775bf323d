"""Plain data shared by every layer: the kinds of memory syscalls (one table, `SPECS`) and one
traced call.

A kind is a row of `SPECS`: everything a consumer needs to know about it (its index in the
probe, where the probe sees it, whether its bytes are growth or given back, its titles, how its
event is built from the syscall's arguments, the libc wrappers a stack ends in, perf's
tracepoint) is said there once.
Adding a kind is one row here plus the probe (probes/heaptrace.h, probes/heaptrace.bpf.c);
tests/unit/test_kinds.py walks every consumer for every row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, Mapping, Optional, Protocol, Sequence, Tuple


class Effect(Enum):
    """What a kind's byte delta (Event.size) means for the memory a process holds."""

    GROWS = "grows"  # size > 0 is taken from the kernel, size < 0 given back (brk, mremap)
    MAPS = "maps"  # size is the length taken (mmap)
    GIVES_BACK = "gives back"  # size is the length given back (munmap, madvise DONTNEED/FREE)
    RESIDENT = "resident"  # size is bytes that became resident: pages, not address space


class Source(Enum):
    """Where the probe sees a kind."""

    SYSCALL = "syscall"  # one event per call, at its exit, built from its arguments
    RSS = "kmem:rss_stat"  # the kernel's RSS counters: summed per stack in the probe


class MemClass(Enum):
    """What a mapping is (ARCHITECTURE.md "Event semantics"); `code` is CLASS_* in
    probes/ranges.h."""

    COMMITTED = ("committed", 1)  # private anonymous with access: growth
    RESERVED = ("reserved", 2)  # private anonymous PROT_NONE: address space only
    FILE = ("file", 3)  # file-backed
    SHARED = ("shared", 4)  # shared anonymous

    def __init__(self, label: str, code: int) -> None:
        self.label = label
        self.code = code

    @classmethod
    def from_code(cls, code: int) -> Optional[MemClass]:
        return _CLASS_OF_CODE.get(code)


_CLASS_OF_CODE = {c.code: c for c in MemClass}


# mmap flags and protection bits (Linux uapi mman.h; MAP_SHARED and MAP_PRIVATE are the
# same on every system DTrace runs on, MAP_ANONYMOUS is not: there, fd -1 tells)
MAP_SHARED, MAP_PRIVATE, MAP_TYPE, MAP_ANONYMOUS = 0x01, 0x02, 0x0F, 0x20
PROT_ACCESS = 0x7  # PROT_READ | PROT_WRITE | PROT_EXEC


class MapArgs(Protocol):
    """What mmap_class reads of a call: an Event, or the held replay's lighter row of one."""

    @property
    def mem_class(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def fd(self) -> int: ...
    @property
    def prot(self) -> int: ...


def mmap_class(event: MapArgs) -> MemClass:
    """What an mmap mapped: the probe's class when it said, else from its flags."""
    known = MemClass.from_code(event.mem_class) if event.mem_class else None
    if known is not None:
        return known
    if event.flags & MAP_TYPE == 0:  # flags not recorded (an import): counted as growth
        return MemClass.COMMITTED
    if not (event.flags & MAP_ANONYMOUS or event.fd == -1):
        return MemClass.FILE
    if event.flags & MAP_TYPE != MAP_PRIVATE:
        return MemClass.SHARED
    return MemClass.COMMITTED if event.prot & PROT_ACCESS else MemClass.RESERVED


# madvise advice values that hand pages back while the mapping stays (Linux uapi mman-common.h).
MADV_DONTNEED, MADV_FREE, MADV_REMOVE = 4, 8, 9
GIVE_BACK_ADVICE = (MADV_DONTNEED, MADV_FREE, MADV_REMOVE)


@dataclass(frozen=True)
class KindSpec:
    """One kind of memory syscall, as every layer sees it."""

    name: str
    index: int  # KIND_* in probes/heaptrace.h: the probe's totals slot and mask bit
    effect: Effect
    title: str  # histogram title (DTrace's quantize() heading)
    bytes_label: str  # histogram's total line for `bytes`
    args: Tuple[str, ...]  # Event fields the syscall's arguments fill, in argument order
    returns_address: bool  # a successful call returns the (new) address: Event.new_addr
    leaf: str  # regex: libc wrapper names a stack of this kind ends in (importers)
    perf_tracepoint: str  # perf's tracepoint for the call (its entry: the arguments)
    perf_args: Tuple[str, ...]  # that tracepoint's names for `args`, in the same order
    source: Source = Source.SYSCALL

    @property
    def is_syscall(self) -> bool:
        return self.source is Source.SYSCALL

    def growth(self, size: int) -> int:
        """Bytes an event of this kind takes from the kernel."""
        if self.effect in (Effect.GIVES_BACK, Effect.RESIDENT):
            return 0
        return max(size, 0)

    def given_back(self, size: int) -> int:
        """Bytes an event of this kind gives back to the kernel."""
        if self.effect is Effect.GIVES_BACK:
            return max(size, 0)
        if self.effect is Effect.RESIDENT:
            return 0
        return max(-size, 0)

    def size_of(self, fields: Mapping[str, int]) -> Optional[int]:
        """The byte delta of a successful call from its argument fields (see ARCHITECTURE.md);
        None for brk, whose growth depends on the previous break, for mprotect, whose bytes
        depend on what the pages were, for a kind that is not a syscall, or when a field is
        missing."""
        try:
            if self.name in ("brk", "mprotect") or not self.is_syscall:
                return None
            if self.name == "mremap":
                return fields["new_length"] - fields["length"]
            if self.name == "madvise":
                return fields["length"] if fields["flags"] in GIVE_BACK_ADVICE else 0
            return fields["length"]
        except KeyError:
            return None

    def fields_from_args(self, args: Sequence[int],
                         named: Optional[Mapping[str, int]] = None) -> Dict[str, int]:
        """Event fields from the syscall's raw arguments in order (or already `named` by
        field), fd as the signed int it is."""
        fields = dict(zip(self.args, args)) if named is None else dict(named)
        if "fd" in fields:
            fd = fields["fd"] & 0xFFFFFFFF
            fields["fd"] = fd - (1 << 32) if fd & 0x80000000 else fd
        return fields


SPECS: Tuple[KindSpec, ...] = (
    KindSpec("brk", 0, Effect.GROWS, "brk() heap growth sizes", "Total bytes allocated",
             ("addr",), False, r"^_*s?brk(_unlocked)?$", "syscalls:sys_enter_brk", ("brk",)),
    KindSpec("mmap", 1, Effect.MAPS, "mmap() sizes", "Total bytes allocated",
             ("addr", "length", "prot", "flags", "fd"), True, r"^_*mmap(64)?$",
             "syscalls:sys_enter_mmap", ("addr", "len", "prot", "flags", "fd")),
    KindSpec("munmap", 2, Effect.GIVES_BACK, "munmap() sizes", "Total bytes released",
             ("addr", "length"), False, r"^_*munmap$", "syscalls:sys_enter_munmap",
             ("addr", "len")),
    KindSpec("mremap", 3, Effect.GROWS, "mremap() growth sizes", "Total bytes allocated",
             ("addr", "length", "new_length", "flags"), True, r"^_*mremap$",
             "syscalls:sys_enter_mremap", ("addr", "old_len", "new_len", "flags")),
    KindSpec("madvise", 4, Effect.GIVES_BACK,
             "madvise() sizes given back (DONTNEED, FREE, REMOVE)", "Total bytes given back",
             ("addr", "length", "flags"), False, r"^_*madvise$", "syscalls:sys_enter_madvise",
             ("start", "len_in", "behavior")),
    KindSpec("mprotect", 5, Effect.GROWS, "mprotect() sizes committed (reserved made accessible)",
             "Total bytes committed", ("addr", "length", "prot"), False, r"^_*mprotect$",
             "syscalls:sys_enter_mprotect", ("start", "len", "prot")),
    # Not a syscall: pages becoming resident (first touch), from the kernel's RSS counters.
    KindSpec("resident", 6, Effect.RESIDENT, "Resident growth sizes (pages made resident)",
             "Total bytes made resident", (), False, r"(?!)", "", (), Source.RSS),
)
# Kinds whose totals say what class of memory their bytes were (KindTotals.classes).
CLASSED_KINDS = ("mmap", "mremap")

SPEC: Dict[str, KindSpec] = {s.name: s for s in SPECS}
# Order matters: it is the kind index used by the BPF program (probes/heaptrace.h).
KINDS: Tuple[str, ...] = tuple(s.name for s in sorted(SPECS, key=lambda s: s.index))
KIND_INDEX = {s.name: s.index for s in SPECS}
SYSCALL_KINDS = tuple(s.name for s in SPECS if s.is_syscall)
GROWTH_KINDS = tuple(s.name for s in SPECS if s.effect in (Effect.GROWS, Effect.MAPS))
# Kinds whose bytes are given back: unmapped, or (madvise DONTNEED, FREE, REMOVE) left mapped
# but handed back to the kernel page by page, as jemalloc and glibc's trimming do.
RELEASE_KINDS = tuple(s.name for s in SPECS if s.effect is Effect.GIVES_BACK)
LEAF_PATTERNS = tuple((re.compile(s.leaf), s.name) for s in SPECS)


def growth(event: Event) -> int:
    """Committed bytes `event` took from the kernel (0 for the kinds that give back, and for
    mappings that are reserved, file or shared)."""
    if event.kind == "mmap" and mmap_class(event) is not MemClass.COMMITTED:
        return 0
    if event.kind == "mremap" and event.mem_class not in (0, MemClass.COMMITTED.code):
        return 0
    return SPEC[event.kind].growth(event.size)


def given_back(event: Event) -> int:
    """Bytes `event` gave back to the kernel."""
    return SPEC[event.kind].given_back(event.size)


@dataclass(frozen=True)
class Frame:
    """One frame of a user stack. `name` is what is shown (symbol, or module+0xoffset; a
    Python frame's `qualname (file.py:line)`, its module the source file)."""

    name: str
    module: Optional[str] = None
    addr: Optional[int] = None


# The name of a Python frame (heaptrace/stacks/python/): "qualname (file.py:line)", the line
# "?" when it is not known. Views tell Python frames from native ones by it.
PYTHON_FRAME = re.compile(r" \([^()]*:(\d+|\?)\)$")


def is_python_name(name: str) -> bool:
    return PYTHON_FRAME.search(name) is not None


# Outermost frames of a whole user stack: a process's entry, a thread's (glibc's clone3 or
# clone, musl's __clone), or the dynamic loader's start before main.
ENTRY_POINTS = frozenset({"_start", "__start", "clone", "clone3", "__clone", "_dl_start_user"})
# The frame that ends a stack the unwinder could not follow to an entry point, so that the
# cut shows (at the root of the flame graph) instead of passing for a whole stack.
TRUNCATED = "[truncated]"


@dataclass(frozen=True)
class Event:
    """One traced call (or, for imports, one aggregated row: `calls` > 1).

    `size` is the signed byte delta the call stands for: brk growth (> 0) or shrink (< 0),
    the length of an mmap or munmap, new_len - old_len for mremap, the length given back by
    madvise. Zero for failed calls. Which fields each kind fills: its KindSpec's `args`.
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
    mem_class: int = 0  # MemClass.code the probe gave (mmap, mremap, mprotect); 0: not known


# RSS by memory class, as the kernel counts it (kmem:rss_stat): the RSS is anon + file + shmem;
# swap is apart. A resident event's `flags` is its class, `prot` its cause.
RSS_CLASSES = ("anon", "file", "shmem")
RSS_CLASS = {"anon": 1, "file": 2, "shmem": 3}
CAUSES = {1: "fault", 2: "syscall", 3: "context", 4: "user"}


@dataclass(frozen=True)
class Rss:
    """Bytes resident in one address space (or summed over several), by class, and in swap."""

    anon: int = 0
    file: int = 0
    shmem: int = 0
    swap: int = 0

    @property
    def total(self) -> int:
        return self.anon + self.file + self.shmem

    def __add__(self, other: Rss) -> Rss:
        return Rss(self.anon + other.anon, self.file + other.file, self.shmem + other.shmem,
                   self.swap + other.swap)


@dataclass
class KindTotals:
    """Exact per-kind counters. `bytes` is growth (brk, mmap, mremap) or length given back
    (munmap, madvise); shrinks of brk and mremap are `released`."""

    calls: int = 0
    failed: int = 0
    bytes: int = 0
    released: int = 0
    buckets: Dict[int, int] = field(default_factory=dict)  # power-of-two value -> count
    # mmap: lengths by class (they add up to `bytes`); mremap: growth by class of the mapping
    classes: Dict[str, int] = field(default_factory=dict)

def committed_growth(totals: Mapping[str, KindTotals]) -> int:
    """Growth (ARCHITECTURE.md): brk growth + committed mmaps + anonymous mremap growth +
    mprotect commits. A recording without classes (an import, an older heaptrace) counts
    every mmap and mremap growth, as it could not tell."""
    total = 0
    for kind in GROWTH_KINDS:
        t = totals.get(kind)
        if t is None:
            continue
        classes = t.classes if kind in CLASSED_KINDS else {}
        total += classes.get(MemClass.COMMITTED.label, 0) if classes else t.bytes
    return total


def mapped_apart(totals: Mapping[str, KindTotals]) -> Dict[str, int]:
    """Bytes mapped (or grown by mremap) that are not growth, by class: reserved, file,
    shared."""
    out = {c.label: 0 for c in MemClass if c is not MemClass.COMMITTED}
    for kind in CLASSED_KINDS:
        t = totals.get(kind)
        for label, nbytes in (t.classes.items() if t else ()):
            if label in out:
                out[label] += nbytes
    return out


# Event fields per kind (Linux; the DTrace backend and importers fill what they know):
#   brk     addr = requested break (arg), ret = new break, size = ret - previous break
#   mmap    addr = hint, length, prot, flags, fd; ret = mapped address = new_addr; size = length
#   munmap  addr, length; size = length
#   mremap  addr = old address, length = old_len, new_length, flags, new_addr = ret;
#           size = new_length - length
#   madvise addr, length, flags = advice; size = length for MADV_DONTNEED, MADV_FREE and
#           MADV_REMOVE (pages given back), else 0
#   resident  one sum of pages that became resident in one process, time slot, memory class
#           and stack: size = bytes, calls = increments (pages, or huge pages), flags = the
#           class (RSS_CLASS: anon, file, shmem), prot = the cause (CAUSES: a user page fault,
#           a syscall, another task's context), fd = the syscall's number for a syscall,
#           addr = the first faulting address, tid = the first thread
# A failed call has ret < 0 (-errno) and size 0.
