"""The held replay: each process image's address space, page by page, as its calls change it.

Events are replayed in time order over a model of each process image's address space, page
by page in ranges (ARCHITECTURE.md "Event semantics"): every range has the stack that took it
and a state. Only committed memory a traced call took and did not give back is *held*:
- mmap maps a range of its class: committed (held), reserved (PROT_NONE), file or shared;
  MAP_FIXED replaces what it overlaps. Reserved, file and shared ranges are followed (a later
  mprotect or munmap needs them) but never held.
- mprotect with access commits the reserved pages of its range (held, by the mprotect's
  stack: glibc's thread arenas and stacks grow this way); mprotect(PROT_NONE) makes committed
  pages reserved again (given back).
- madvise(MADV_DONTNEED/FREE/REMOVE) gives back the held pages of its range while the mapping
  stays; touching them again is resident growth, not taken again.
- munmap removes what it overlaps (partial unmaps split a range); mremap moves, grows or
  shrinks a range, the moved pages keep their stack and state, bytes added by growing belong
  to the mremap's own stack and take the old range's class; brk grows the heap at the break
  and shrinks it from the top.
An exec ends one image and starts an empty one in the same pid; a process exit ends its image.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import fields
from enum import Enum
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from heaptrace.analysis.stacks import (
    Owner,
    ProcessNames,
    Selection,
    time_window,
)
from heaptrace.events import (
    GIVE_BACK_ADVICE,
    PROT_ACCESS,
    SYSCALL_KINDS,
    Event,
    MemClass,
    mmap_class,
)
from heaptrace.recording import Recording

# The kernel unmaps whole pages: a release covers the rest of its last page. Recordings
# say their page size ("page_size"); imported ones do not, and get the usual 4 KiB.
DEFAULT_PAGE_SIZE = 4096
MREMAP_DONTUNMAP = 4  # Linux uapi mman.h: the old range stays mapped, emptied


class Page(Enum):
    """What the pages of a range are, for held: only HELD pages count."""

    HELD = "held"  # committed by a traced call and not given back
    RETURNED = "returned"  # committed, but given back by madvise while the mapping stays
    RESERVED = "reserved"  # private anonymous PROT_NONE: address space only
    FILE = "file"
    SHARED = "shared"


PAGE_OF_CLASS = {MemClass.COMMITTED: Page.HELD, MemClass.RESERVED: Page.RESERVED,
                 MemClass.FILE: Page.FILE, MemClass.SHARED: Page.SHARED}
Span = Tuple[int, int, Owner, Page]  # [start, end), who took it, what it is now
Piece = Tuple[int, int, Owner]  # [start, end) held, and who allocated it


def page_size(rec: Recording) -> int:
    size = rec.meta().page_size
    return size if size is not None and size > 0 else DEFAULT_PAGE_SIZE


def page_end(addr: int, length: int, page: int) -> int:
    return (addr + length + page - 1) // page * page


class IntervalMap:
    """Non-overlapping [start, end) address ranges, each with its owner and state; `total`
    is the bytes of HELD ranges."""

    __slots__ = ("_starts", "_spans", "total")  # a replay makes millions of lookups of them

    def __init__(self) -> None:
        self._starts: List[int] = []
        self._spans: Dict[int, Tuple[int, Owner, Page]] = {}
        self.total = 0

    def insert(self, start: int, end: int, owner: Owner, state: Page = Page.HELD) -> List[Span]:
        """Map a range; whatever it overlaps is replaced (MAP_FIXED semantics) and returned."""
        if end <= start:
            return []
        replaced = self.remove(start, end)
        self._put(start, end, owner, state)
        return replaced

    def remove(self, start: int, end: int) -> List[Span]:
        """Unmap a range; returns the spans it took, in address order."""
        starts, spans = self._starts, self._spans
        hi = bisect_left(starts, end)  # the spans starting before `end`: starts[:hi]
        lo = hi  # of those, the ones ending after `start` (ends rise with starts)
        while lo > 0 and spans[starts[lo - 1]][0] > start:
            lo -= 1
        if lo == hi:  # the usual mmap of fresh addresses: nothing there
            return []
        hit = starts[lo:hi]
        del starts[lo:hi]
        taken = []
        for s in hit:
            e, owner, state = spans.pop(s)
            if state is Page.HELD:
                self.total -= e - s
            taken.append((max(s, start), min(e, end), owner, state))
            if s < start:
                self._put(s, start, owner, state)
            if e > end:
                self._put(end, e, owner, state)
        return taken

    def change(self, start: int, end: int,
               how: Callable[[Owner, Page], Tuple[Owner, Page]]) -> List[Span]:
        """Give every span inside [start, end) the owner and state `how` says; returns the
        spans as they were (the gaps between them stay unmapped)."""
        before = self.remove(start, end)
        for s, e, owner, state in before:
            self._put(s, e, *how(owner, state))
        return before

    def spans(self) -> Iterator[Span]:
        for s in self._starts:
            e, owner, state = self._spans[s]
            yield s, e, owner, state

    def pieces(self) -> Iterator[Piece]:
        """The held ranges."""
        for s, e, owner, state in self.spans():
            if state is Page.HELD:
                yield s, e, owner

    def _put(self, start: int, end: int, owner: Owner, state: Page) -> None:
        insort(self._starts, start)
        self._spans[start] = (end, owner, state)
        if state is Page.HELD:
            self.total += end - start


def gaps(start: int, end: int, spans: List[Span]) -> Iterator[Tuple[int, int]]:
    """The parts of [start, end) that none of `spans` (in address order) covers."""
    at = start
    for s, e, _, _ in spans:
        if s > at:
            yield at, s
        at = max(at, e)
    if at < end:
        yield at, end


class AddressSpace:
    """One process image: its ranges (the brk heap among them), and, for imports, heap growth
    and allocations without an address."""

    __slots__ = ("maps", "heap", "heap_total", "floating", "floating_total")

    def __init__(self) -> None:
        self.maps = IntervalMap()
        self.heap: List[List] = []  # imports: brk growth without a break, [length, owner]
        self.heap_total = 0
        self.floating: List[Tuple[int, Owner]] = []  # imports: a size but no address
        self.floating_total = 0

    @property
    def total(self) -> int:
        return self.maps.total + self.heap_total + self.floating_total

    def grow_heap(self, nbytes: int, owner: Owner) -> None:
        self.heap.append([nbytes, owner])
        self.heap_total += nbytes

    def shrink_heap(self, nbytes: int) -> List[Tuple[Owner, int]]:
        """Give back `nbytes` from the top of the heap; returns what was known of them."""
        released: List[Tuple[Owner, int]] = []
        left = nbytes
        while self.heap and left > 0:
            top = self.heap[-1]
            take = min(top[0], left)
            top[0] -= take
            left -= take
            released.append((top[1], take))
            if top[0] == 0:
                self.heap.pop()
        self.heap_total -= nbytes - left
        return released

    def add_floating(self, nbytes: int, owner: Owner) -> None:
        self.floating.append((nbytes, owner))
        self.floating_total += nbytes

    def held(self) -> Iterator[Tuple[Owner, int]]:
        for start, end, owner in self.maps.pieces():
            yield owner, end - start
        for length, owner in self.heap:
            yield owner, length
        yield from ((owner, n) for n, owner in self.floating)


def give_back(owner: Owner, state: Page) -> Tuple[Owner, Page]:
    """madvise(DONTNEED/FREE/REMOVE): held pages are handed back, the mapping stays."""
    return owner, Page.RETURNED if state is Page.HELD else state


def to_reserved(owner: Owner, state: Page) -> Tuple[Owner, Page]:
    """mprotect(PROT_NONE): committed pages become reserved (given back)."""
    return owner, Page.RESERVED if state in (Page.HELD, Page.RETURNED) else state


def committer(new_owner: Owner) -> Callable[[Owner, Page], Tuple[Owner, Page]]:
    """mprotect with access: reserved pages become held, taken by the mprotect."""
    def commit(owner: Owner, state: Page) -> Tuple[Owner, Page]:
        return (new_owner, Page.HELD) if state is Page.RESERVED else (owner, state)
    return commit


class Call(NamedTuple):
    """One traced call as the replay reads it: an Event's fields, in its order, in a tuple
    (built in a sixth of the time a frozen Event takes: seconds over ten million calls)."""

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
    mem_class: int = 0


assert Call._fields == tuple(f.name for f in fields(Event))

Step = Union[Call, int]  # a call, or the pid whose image ends here (exec or exit)


class Replay:
    """Applies events to per-pid address spaces, keeping the sum the live images hold."""

    __slots__ = ("page", "spaces", "ended", "total", "unmatched", "released", "unmatched_now",
                 "ended_now")

    def __init__(self, page: int = DEFAULT_PAGE_SIZE) -> None:
        self.page = page
        self.spaces: Dict[int, AddressSpace] = {}
        self.ended: List[AddressSpace] = []
        self.total = 0
        self.unmatched = 0  # bytes given back that no traced allocation covered
        # What the last step gave back: held pages it unmapped, replaced, advised away or made
        # PROT_NONE, by who took them (`released`), and bytes no traced call took (mapped
        # before an attach, `unmatched_now`). An image's end gives nothing back: it ends.
        self.released: List[Tuple[Owner, int]] = []
        self.unmatched_now = 0
        self.ended_now: Optional[AddressSpace] = None  # the image the last step ended

    @property
    def given(self) -> int:
        """Bytes the last step gave back: `released` and `unmatched_now` together."""
        return sum(n for _, n in self.released) + self.unmatched_now

    def step(self, step: Step) -> None:
        self.released, self.unmatched_now, self.ended_now = [], 0, None
        if isinstance(step, int):
            self.end_image(step)
            return
        pid = step.pid
        space = self.spaces.get(pid)
        if space is None:
            space = self.spaces[pid] = AddressSpace()
        kind = step.kind
        handler = HANDLERS.get(kind)
        if handler is None or step.ret < 0:
            return
        if (kind == "mmap" and self._fresh_mmap(space.maps, step)) or \
                (kind == "munmap" and self._whole_munmap(space.maps, step)):
            return
        before, unmatched = space.total, self.unmatched
        handler(self, space, step, (pid, step.ts_ns, step.stack_id, kind))
        self.total += space.total - before
        self.unmatched_now = self.unmatched - unmatched

    # The two steps most calls are, done in place (a replay of ten million calls spends
    # most of its time in the general handlers' calls); each does what its handler would.

    def _fresh_mmap(self, maps: IntervalMap, e: Call) -> bool:
        """An mmap of addresses nothing is mapped at: its range added (as _mmap would)."""
        if e.size <= 0 or e.ret <= 0:
            return False
        start, page = e.ret, self.page
        end = (start + e.size + page - 1) // page * page
        starts, spans = maps._starts, maps._spans
        i = bisect_left(starts, end)  # the spans starting before its end: starts[:i]
        if i and spans[starts[i - 1]][0] > start:
            return False  # it overlaps the last of them
        state = PAGE_OF_CLASS[mmap_class(e)]
        starts.insert(i, start)
        spans[start] = (end, (e.pid, e.ts_ns, e.stack_id, "mmap"), state)
        if state is Page.HELD:
            maps.total += end - start
            self.total += end - start
        return True

    def _whole_munmap(self, maps: IntervalMap, e: Call) -> bool:
        """A munmap of exactly one mapped range: that range removed (as _munmap would)."""
        start, page = e.addr, self.page
        span = maps._spans.get(start)
        if span is None or span[0] != (start + e.length + page - 1) // page * page:
            return False
        end, owner, state = span
        starts = maps._starts
        del starts[bisect_left(starts, start)]
        del maps._spans[start]
        if state is Page.HELD:
            maps.total -= end - start
            self.total -= end - start
            self.released = [(owner, end - start)]
        unmatched = max(e.length - (end - start), 0)
        self.unmatched += unmatched
        self.unmatched_now = unmatched
        return True

    def end_image(self, pid: int) -> None:
        space = self.spaces.pop(pid, None)
        if space is not None:
            self.total -= space.total
            self.ended.append(space)
            self.ended_now = space

    def _give(self, spans: List[Span]) -> None:
        if spans:
            self.released.extend((owner, end - start) for start, end, owner, state in spans
                                 if state is Page.HELD)

    def _brk(self, space: AddressSpace, e: Call, owner: Owner) -> None:
        if e.ret <= 0:  # an import without the break: a stack of growths
            if e.size > 0:
                space.grow_heap(e.size, owner)
            elif e.size < 0:
                known = space.shrink_heap(-e.size)
                self.released.extend(known)
                self.unmatched += -e.size - sum(n for _, n in known)
        elif e.size > 0:  # the heap grew from the previous break to the new one
            self._give(space.maps.insert(e.ret - e.size, e.ret, owner))
        elif e.size < 0:
            taken = space.maps.remove(e.ret, e.ret - e.size)
            self._give(taken)
            self.unmatched += -e.size - sum(end - start for start, end, _, _ in taken)

    def _mmap(self, space: AddressSpace, e: Call, owner: Owner) -> None:
        if e.size <= 0:
            return
        state = PAGE_OF_CLASS[mmap_class(e)]
        if e.ret > 0:  # the kernel maps whole pages
            self._give(space.maps.insert(e.ret, page_end(e.ret, e.size, self.page), owner,
                                         state))
        elif state is Page.HELD:
            space.add_floating(e.size, owner)

    def _munmap(self, space: AddressSpace, e: Call, owner: Owner) -> None:
        taken = space.maps.remove(e.addr, page_end(e.addr, e.length, self.page))
        self._give(taken)
        self.unmatched += max(e.length - sum(end - start for start, end, _, _ in taken), 0)

    def _madvise(self, space: AddressSpace, e: Call, owner: Owner) -> None:
        if e.flags in GIVE_BACK_ADVICE:
            end = page_end(e.addr, e.length, self.page)
            self._give(space.maps.change(e.addr, end, give_back))

    def _mprotect(self, space: AddressSpace, e: Call, owner: Owner) -> None:
        end = page_end(e.addr, e.length, self.page)
        if not e.prot & PROT_ACCESS:
            self._give(space.maps.change(e.addr, end, to_reserved))
            return
        before = space.maps.change(e.addr, end, committer(owner))
        # Pages the probe saw committed that this replay does not know (reserved before an
        # attach, or inherited over fork): held from here, by this call.
        unknown = e.size - sum(s_end - s for s, s_end, _, state in before
                               if state is Page.RESERVED)
        for start, stop in gaps(e.addr, end, before):
            if unknown <= 0:
                break
            take = min(stop - start, unknown)
            space.maps.insert(start, start + take, owner)
            unknown -= take

    def _mremap(self, space: AddressSpace, e: Call, owner: Owner) -> None:
        new = e.new_addr or e.ret
        old_end = page_end(e.addr, e.length, self.page)
        taken = space.maps.remove(e.addr, old_end)
        if e.flags & MREMAP_DONTUNMAP:  # the old range stays, its pages gone with the move
            for start, end, who, state in taken:
                space.maps.insert(start, end, who, give_back(who, state)[1])
        keep_end = page_end(e.addr, min(e.length, e.new_length), self.page)
        for start, end, who, state in taken:  # shrinking gives back the end of the old range
            if start < keep_end:
                self._give(space.maps.insert(
                    start - e.addr + new, min(end, keep_end) - e.addr + new, who, state))
            if end > keep_end and state is Page.HELD and not e.flags & MREMAP_DONTUNMAP:
                self.released.append((who, end - max(start, keep_end)))
        if e.new_length > e.length:
            self._give(space.maps.insert(
                page_end(new, e.length, self.page), page_end(new, e.new_length, self.page),
                owner, grown_state(e, taken)))


HANDLERS: Dict[str, Callable[[Replay, AddressSpace, Call, Owner], None]] = {
    "brk": Replay._brk, "mmap": Replay._mmap, "munmap": Replay._munmap,
    "madvise": Replay._madvise, "mprotect": Replay._mprotect, "mremap": Replay._mremap,
}


def grown_state(e: Call, taken: List[Span]) -> Page:
    """The state of the bytes an mremap added: its class when the probe said it, else that
    of most of the old range (held when nothing of it is known)."""
    known = MemClass.from_code(e.mem_class) if e.mem_class else None
    if known is not None:
        return PAGE_OF_CLASS[known]
    sizes: Dict[Page, int] = {}
    for start, end, _, state in taken:
        kind = Page.HELD if state is Page.RETURNED else state
        sizes[kind] = sizes.get(kind, 0) + end - start
    return max(sizes, key=lambda k: sizes[k]) if sizes else Page.HELD


def image_ends(rec: Recording, pid: Optional[int]) -> List[Tuple[int, int]]:
    """(ts_ns, pid) at which an image ends: every exec after the first image, and exits."""
    marks = [(t, p) for p, times in ProcessNames(rec.processes()).exec_times().items()
             for t in times]
    last_end: Dict[int, int] = {}
    for proc in rec.processes():
        if proc.end_ns is not None:
            last_end[proc.pid] = proc.end_ns
    marks += [(t, p) for p, t in last_end.items()]
    return sorted(m for m in marks if pid is None or m[1] == pid)


def steps(rec: Recording, sel: Selection) -> Iterator[Tuple[int, Step]]:
    """(ts_ns, step) in time order up to --to: the calls merged with image ends."""
    _, hi = time_window(rec, sel)
    marks = image_ends(rec, sel.pid)
    i = 0
    next_mark = marks[0][0] if marks else None
    for call in map(Call._make, rec.event_rows(SYSCALL_KINDS, sel.pid)):
        ts = call.ts_ns
        if hi is not None and ts > hi:
            break
        while next_mark is not None and next_mark <= ts:
            yield next_mark, marks[i][1]
            i += 1
            next_mark = marks[i][0] if i < len(marks) else None
        yield ts, call
    yield from ((t, p) for t, p in marks[i:] if hi is None or t <= hi)
