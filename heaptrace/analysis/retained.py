"""Retained bytes: what was still held, and which stacks allocated it.

Events are replayed in time order over a model of each process image's address space:
mmaps are address intervals, munmaps remove what they overlap (partial unmaps split an
interval), mremap moves, grows or shrinks a range and the moved bytes keep the stack that
first allocated them (bytes added by growing belong to the mremap's own stack, as they do
in the growth view), and the brk heap is a stack of growths released from the top. An exec
ends one image and starts an empty one in the same pid; a process exit ends its image.

"At exit" reports what every image still held when it ended (or when the window closed):
memory a program never gave back. "At peak" reports what the live images held at the
moment their sum was highest.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple, Union

from heaptrace.analysis.stacks import (
    Chart,
    Folded,
    Folder,
    Owner,
    ProcessNames,
    Selection,
    append_run,
    kinds_for,
    run_start_ns,
    time_window,
)
from heaptrace.errors import UsageError
from heaptrace.events import KINDS, RELEASE_KINDS, Event
from heaptrace.recording import Recording

# The kernel unmaps whole pages: a release covers the rest of its last page. Recordings
# say their page size ("page_size"); imported ones do not, and get the usual 4 KiB.
DEFAULT_PAGE_SIZE = 4096
Piece = Tuple[int, int, Owner]  # [start, end) and who allocated it


def page_size(rec: Recording) -> int:
    size = rec.meta().get("page_size")
    return size if isinstance(size, int) and size > 0 else DEFAULT_PAGE_SIZE


def page_end(addr: int, length: int, page: int) -> int:
    return (addr + length + page - 1) // page * page


class IntervalMap:
    """Non-overlapping [start, end) address ranges, each with its owner."""

    def __init__(self) -> None:
        self._starts: List[int] = []
        self._spans: Dict[int, Tuple[int, Owner]] = {}
        self.total = 0

    def insert(self, start: int, end: int, owner: Owner) -> None:
        """Map a range; whatever it overlaps is replaced (MAP_FIXED semantics)."""
        if end <= start:
            return
        self.remove(start, end)
        self._put(start, end, owner)

    def remove(self, start: int, end: int) -> List[Piece]:
        """Unmap a range; returns the pieces it took, in address order."""
        lo = max(bisect_right(self._starts, start) - 1, 0)
        hi = bisect_left(self._starts, end)
        hit = [s for s in self._starts[lo:hi] if self._spans[s][0] > start]
        taken = []
        for s in hit:
            e, owner = self._drop(s)
            taken.append((max(s, start), min(e, end), owner))
            if s < start:
                self._put(s, start, owner)
            if e > end:
                self._put(end, e, owner)
        return taken

    def pieces(self) -> Iterator[Piece]:
        for s in self._starts:
            e, owner = self._spans[s]
            yield s, e, owner

    def _put(self, start: int, end: int, owner: Owner) -> None:
        insort(self._starts, start)
        self._spans[start] = (end, owner)
        self.total += end - start

    def _drop(self, start: int) -> Tuple[int, Owner]:
        del self._starts[bisect_left(self._starts, start)]
        end, owner = self._spans.pop(start)
        self.total -= end - start
        return end, owner


class AddressSpace:
    """One process image: its mappings, its brk heap, and allocations without an address."""

    def __init__(self) -> None:
        self.maps = IntervalMap()
        self.heap: List[List] = []  # [length, owner], lowest address first
        self.heap_total = 0
        self.floating: List[Tuple[int, Owner]] = []  # imports: a size but no address
        self.floating_total = 0

    @property
    def total(self) -> int:
        return self.maps.total + self.heap_total + self.floating_total

    def grow_heap(self, nbytes: int, owner: Owner) -> None:
        self.heap.append([nbytes, owner])
        self.heap_total += nbytes

    def shrink_heap(self, nbytes: int) -> int:
        """Give back `nbytes` from the top of the heap; returns how many were known."""
        released = 0
        while self.heap and released < nbytes:
            top = self.heap[-1]
            take = min(top[0], nbytes - released)
            top[0] -= take
            released += take
            if top[0] == 0:
                self.heap.pop()
        self.heap_total -= released
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


Step = Union[Event, int]  # an event, or the pid whose image ends here (exec or exit)


class Replay:
    """Applies events to per-pid address spaces, keeping the sum the live images hold."""

    def __init__(self, page: int = DEFAULT_PAGE_SIZE) -> None:
        self.page = page
        self.spaces: Dict[int, AddressSpace] = {}
        self.ended: List[AddressSpace] = []
        self.total = 0
        self.unmatched = 0  # bytes given back that no traced allocation covered

    def step(self, step: Step) -> None:
        if isinstance(step, int):
            self.end_image(step)
            return
        space = self.spaces.setdefault(step.pid, AddressSpace())
        before = space.total
        handler = getattr(self, f"_{step.kind}", None)
        if handler is not None and step.ret >= 0:
            handler(space, step, (step.pid, step.ts_ns, step.stack_id, step.kind))
        self.total += space.total - before

    def end_image(self, pid: int) -> None:
        space = self.spaces.pop(pid, None)
        if space is not None:
            self.total -= space.total
            self.ended.append(space)

    def _brk(self, space: AddressSpace, e: Event, owner: Owner) -> None:
        if e.size > 0:
            space.grow_heap(e.size, owner)
        elif e.size < 0:
            self.unmatched += -e.size - space.shrink_heap(-e.size)

    def _mmap(self, space: AddressSpace, e: Event, owner: Owner) -> None:
        if e.size <= 0:
            return
        if e.ret > 0:
            space.maps.insert(e.ret, e.ret + e.size, owner)
        else:
            space.add_floating(e.size, owner)

    def _munmap(self, space: AddressSpace, e: Event, owner: Owner) -> None:
        taken = space.maps.remove(e.addr, page_end(e.addr, e.length, self.page))
        self.unmatched += max(e.length - sum(end - start for start, end, _ in taken), 0)

    def _mremap(self, space: AddressSpace, e: Event, owner: Owner) -> None:
        new = e.new_addr or e.ret
        taken = space.maps.remove(e.addr, page_end(e.addr, e.length, self.page))
        keep_end = e.addr + min(e.length, e.new_length)
        for start, end, who in taken:  # shrinking gives back the end of the old range
            if start < keep_end:
                space.maps.insert(start - e.addr + new, min(end, keep_end) - e.addr + new, who)
        if e.new_length > e.length:
            space.maps.insert(new + e.length, new + e.new_length, owner)


def image_ends(rec: Recording, pid: Optional[int]) -> List[Tuple[int, int]]:
    """(ts_ns, pid) at which an image ends: every exec after the first image, and exits."""
    marks = [(t, p) for p, times in ProcessNames(rec.processes()).exec_times().items()
             for t in times]
    last_end: Dict[int, int] = {}
    for row_pid, _ppid, _comm, _start, end_ns, _code in rec.processes():
        if end_ns is not None:
            last_end[row_pid] = end_ns
    marks += [(t, p) for p, t in last_end.items()]
    return sorted(m for m in marks if pid is None or m[1] == pid)


def steps(rec: Recording, sel: Selection) -> Iterator[Tuple[int, Step]]:
    """(ts_ns, step) in time order up to --to: the events merged with image ends."""
    _, hi = time_window(rec, sel)
    marks = image_ends(rec, sel.pid)
    i = 0
    for event in rec.events(KINDS, sel.pid):
        if hi is not None and event.ts_ns > hi:
            break
        while i < len(marks) and marks[i][0] <= event.ts_ns:
            yield marks[i][0], marks[i][1]
            i += 1
        yield event.ts_ns, event
    yield from ((t, p) for t, p in marks[i:] if hi is None or t <= hi)


@dataclass
class Retained:
    """Bytes held at a moment, folded by allocating stack."""

    folded: Folded
    at: str  # "exit" or "peak"
    held: int  # sum of `folded`
    moment_ns: Optional[int]  # when the peak was (None for exit)
    unmatched: int  # bytes released that matched no traced allocation
    pieces: List[Tuple[Owner, int]] = field(default_factory=list)  # what made `folded`


def find_peak(rec: Recording, sel: Selection) -> Tuple[int, Optional[int]]:
    """(number of steps up to the peak, its ts_ns): the first moment inside the window at
    which the live images together held the most."""
    lo, _ = time_window(rec, sel)
    replay, best, count, best_count, when = Replay(page_size(rec)), -1, 0, 0, None
    for count, (ts, step) in enumerate(steps(rec, sel), 1):
        replay.step(step)
        if replay.total > best and (lo is None or ts >= lo):
            best, best_count, when = replay.total, count, ts
    return (best_count, when) if when is not None else (count, None)


def retained(rec: Recording, sel: Selection, at: str = "exit") -> Retained:
    """Bytes held at exit (or at peak) by the stacks that allocated them. Only allocations
    of the selected kinds made inside the time window are shown."""
    if sel.kind in RELEASE_KINDS:
        raise UsageError("--retained shows allocations: use --event growth, brk, mmap or mremap")
    if at not in ("exit", "peak"):
        raise UsageError(f"--at must be exit or peak, not {at!r}")
    limit, moment = find_peak(rec, sel) if at == "peak" else (None, None)
    replay = Replay(page_size(rec))
    for count, (_, step) in enumerate(steps(rec, sel), 1):
        if limit is not None and count > limit:
            break
        replay.step(step)
    spaces = list(replay.spaces.values()) + (replay.ended if at == "exit" else [])
    pieces = held_pieces(rec, sel, spaces)
    folder = Folder(rec, sel.process_names)
    for owner, nbytes in pieces:
        folder.add(owner, nbytes)
    held = sum(folder.folded.values())
    return Retained(folder.folded, at, held, moment, replay.unmatched, pieces)


def held_pieces(rec: Recording, sel: Selection,
                spaces: List[AddressSpace]) -> List[Tuple[Owner, int]]:
    """(who allocated, bytes) still held in `spaces`, of the selected kinds and window."""
    lo, _ = time_window(rec, sel)
    kinds = set(kinds_for(sel.kind))
    return [(owner, nbytes) for space in spaces for owner, nbytes in space.held()
            if owner[3] in kinds and (lo is None or owner[1] >= lo)]


def held_chart(rec: Recording, result: Retained, process_names: bool = True) -> Chart:
    """The retained bytes in the order they were allocated (a flame chart of what is
    held), adjacent identical stacks merged."""
    folder = Folder(rec, process_names)
    origin = run_start_ns(rec)
    runs: Chart = []
    for owner, nbytes in sorted(result.pieces, key=lambda piece: piece[0][1]):
        key = folder.key(owner[0], owner[1], owner[2])
        append_run(runs, key, nbytes, (owner[1] - origin) / 1e9)
    return runs
