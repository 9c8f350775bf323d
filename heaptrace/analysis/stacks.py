"""Per-stack sums: choose events from a recording and fold them into root-first stacks.

A folded profile is a mapping {root-first tuple of frame names: bytes}. It is the boundary
between analysis and rendering (see docs/folded.md): the flame graph, the folded text and
the differential view all start from one.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from heaptrace.errors import UsageError
from heaptrace.events import GROWTH_KINDS, KINDS, SYSCALL_KINDS, Event, Frame, growth
from heaptrace.recording import RecordedProcess, Recording

Stack = Tuple[str, ...]
Folded = Dict[Stack, int]
# Who allocated some bytes: (pid, ts_ns, stack_id, kind). Retained bytes keep it.
Owner = Tuple[int, int, Optional[int], str]



class ChartRun(NamedTuple):
    """Consecutive events with one stack, in time order: what a flame chart draws (a
    sequence of runs, where a folded profile is a sum per stack)."""

    stack: Stack
    value: int  # bytes (or calls)
    first_s: Optional[float] = None  # seconds into the run of its first and last event
    last_s: Optional[float] = None


Chart = List[ChartRun]

EVENT_CHOICES = ("growth", *KINDS, "all")
NO_STACK = "[no stack]"
UNKNOWN_FRAME = "[unknown]"


@dataclass(frozen=True)
class Selection:
    """Which events a view covers. Times are seconds into the run (meta "start_ns")."""

    kind: str = "growth"
    pid: Optional[int] = None
    start_s: Optional[float] = None
    end_s: Optional[float] = None
    process_names: bool = True


def kinds_for(kind: str) -> Tuple[str, ...]:
    """The kinds an --event choice stands for ("all": every memory syscall; `resident`,
    pages rather than calls, only by its name)."""
    if kind == "growth":
        return GROWTH_KINDS
    if kind == "all":
        return SYSCALL_KINDS
    if kind in KINDS:
        return (kind,)
    raise UsageError(f"unknown event kind {kind!r} (choose from {', '.join(EVENT_CHOICES)})")


def counted_bytes(event: Event, kind: str = "all") -> int:
    """Bytes an event adds to a flame graph of an --event choice: its size when positive
    (shrinks, brk going down, mremap to a smaller size, and failed calls have no positive
    width to draw); for "growth", committed growth only (events.growth: reserved, file and
    shared mappings are not growth)."""
    if kind == "growth":
        return growth(event)
    return event.size if event.size > 0 else 0


def run_start_ns(rec: Recording) -> int:
    """Origin of --from/--to: the run's start, else the first event (imported files)."""
    start = rec.meta().start_ns
    if start is not None:
        return start
    first = rec.first_event_ns()
    return first if first is not None else 0


def time_window(rec: Recording, sel: Selection) -> Tuple[Optional[int], Optional[int]]:
    """--from/--to as absolute ts_ns bounds (None = open)."""
    if sel.start_s is None and sel.end_s is None:
        return None, None
    if sel.start_s is not None and sel.end_s is not None and sel.start_s > sel.end_s:
        raise UsageError(f"--from {sel.start_s} is after --to {sel.end_s}")
    origin = run_start_ns(rec)
    lo = None if sel.start_s is None else origin + int(sel.start_s * 1e9)
    hi = None if sel.end_s is None else origin + int(sel.end_s * 1e9)
    return lo, hi


def in_window(ts_ns: int, lo: Optional[int], hi: Optional[int]) -> bool:
    return (lo is None or ts_ns >= lo) and (hi is None or ts_ns <= hi)


def select_events(rec: Recording, sel: Selection) -> Iterator[Event]:
    """Events of the selected kinds, process and time window, in time order ("growth": not
    the mappings that are reserved, file or shared, as in Recording.calls_by_stack)."""
    lo, hi = time_window(rec, sel)
    for event in rec.events(kinds_for(sel.kind), sel.pid):
        if in_window(event.ts_ns, lo, hi) and not (
                sel.kind == "growth" and event.size > 0 and not growth(event)):
            yield event


def frame_names(frames: Sequence[Frame]) -> Stack:
    """Root-first names of a leaf-first stack; a frame without a name is "[unknown]"."""
    if not frames:
        return (NO_STACK,)
    return tuple(f.name or UNKNOWN_FRAME for f in reversed(frames))


class ProcessNames:
    """The comm of a pid at a given time: a pid that execs gets a new processes row."""

    def __init__(self, rows: Iterable[RecordedProcess]) -> None:
        self._by_pid: Dict[int, Tuple[List[int], List[str]]] = {}
        for row in rows:
            starts, names = self._by_pid.setdefault(row.pid, ([], []))
            if row.start_ns is None and starts:
                continue  # an image whose start is unknown cannot be placed in time
            starts.append(row.start_ns or 0)
            names.append(row.comm or f"[pid {row.pid}]")

    def image(self, pid: int, ts_ns: int) -> int:
        """Which image of the pid (0, 1, ... one per exec) ran at ts_ns."""
        starts, _ = self._by_pid.get(pid, ((), ()))
        return max(bisect_right(starts, ts_ns) - 1, 0)

    def name(self, pid: int, ts_ns: int) -> str:
        starts, names = self._by_pid.get(pid, ((), ()))
        if not names:
            return f"[pid {pid}]"
        return names[max(bisect_right(starts, ts_ns) - 1, 0)]

    def exec_times(self) -> Dict[int, List[int]]:
        """Per pid, the start of every image after the first: the moments it called exec."""
        return {pid: starts[1:] for pid, (starts, _) in self._by_pid.items() if len(starts) > 1}


class Folder:
    """Accumulates bytes per root-first stack, naming each (pid, stack) once. A recording
    without processes (an imported aggregation or perf script) gets no process root frame:
    it has no names to give, and its stacks then fold as FlameGraph's collapsers fold them."""

    def __init__(self, rec: Recording, process_names: bool = True) -> None:
        self._stacks = {sid: frame_names(frames) for sid, frames in rec.stacks().items()}
        rows = rec.processes() if process_names else []
        self._procs = ProcessNames(rows) if rows else None
        self._keys: Dict[Tuple[str, Optional[int]], Stack] = {}  # one tuple per stack, shared
        self.folded: Folded = {}

    def key(self, pid: int, ts_ns: int, stack_id: Optional[int]) -> Stack:
        names = self._stacks.get(stack_id, (NO_STACK,)) if stack_id is not None else (NO_STACK,)
        if self._procs is None:
            return names
        process = self._procs.name(pid, ts_ns)
        key = self._keys.get((process, stack_id))
        if key is None:
            key = self._keys[(process, stack_id)] = (process,) + names
        return key

    def add(self, owner: Owner, nbytes: int) -> None:
        if nbytes <= 0:
            return
        key = self.key(owner[0], owner[1], owner[2])
        self.folded[key] = self.folded.get(key, 0) + nbytes


class Tally(NamedTuple):
    """The selected events of one process image, stack and kind."""

    first_ns: int  # the first of them: when the stack ran, which names the process
    calls: int
    nbytes: int  # sum of counted_bytes()


TallyKey = Tuple[int, int, Optional[int], str]  # pid, image (ProcessNames.image), stack_id, kind


def tally(rec: Recording, sel: Selection) -> Dict[TallyKey, Tally]:
    """Calls and bytes of the selected events per process image, stack and kind. Summed in
    SQLite; a group whose events span an exec (two images) is summed event by event."""
    procs = ProcessNames(rec.processes())
    lo, hi = time_window(rec, sel)
    sums: Dict[TallyKey, Tally] = {}
    spanning = set()
    for pid, stack_id, kind, first, last, calls, nbytes in rec.calls_by_stack(
            kinds_for(sel.kind), sel.pid, lo, hi, committed=sel.kind == "growth"):
        image = procs.image(pid, first)
        if image == procs.image(pid, last):
            sums[(pid, image, stack_id, kind)] = Tally(first, calls, nbytes)
        else:
            spanning.add((pid, stack_id, kind))
    if spanning:
        for e in select_events(rec, sel):
            if (e.pid, e.stack_id, e.kind) in spanning:
                key = (e.pid, procs.image(e.pid, e.ts_ns), e.stack_id, e.kind)
                old = sums.get(key, Tally(e.ts_ns, 0, 0))
                sums[key] = Tally(old.first_ns, old.calls + e.calls,
                                  old.nbytes + counted_bytes(e, sel.kind))
    return sums


def fold(rec: Recording, sel: Selection) -> Folded:
    """Bytes of the selected events per root-first stack (see tally())."""
    folder = Folder(rec, sel.process_names)
    for (pid, _image, stack_id, kind), sums in tally(rec, sel).items():
        folder.add((pid, sums.first_ns, stack_id, kind), sums.nbytes)
    return folder.folded


def append_run(chart: Chart, stack: Stack, count: int, when: Optional[float] = None) -> None:
    """Add bytes at the end of a chart, merged into the last run if it has the same stack
    (flamegraph.pl's flame chart merges adjacent identical stacks the same way)."""
    if count <= 0:
        return
    if chart and chart[-1].stack == stack:
        last = chart[-1]
        chart[-1] = last._replace(value=last.value + count, last_s=when)
    else:
        chart.append(ChartRun(stack, count, when, when))


def chart(rec: Recording, sel: Selection) -> Chart:
    """Bytes of the selected events in time order, adjacent identical stacks merged."""
    folder = Folder(rec, sel.process_names)
    origin = run_start_ns(rec)
    runs: Chart = []
    for e in select_events(rec, sel):
        key = folder.key(e.pid, e.ts_ns, e.stack_id)
        append_run(runs, key, counted_bytes(e, sel.kind), (e.ts_ns - origin) / 1e9)
    return runs


def fold_chart(runs: Iterable[ChartRun]) -> Folded:
    """The folded profile of a chart: bytes per stack, whenever they came."""
    folded: Folded = {}
    for run in runs:
        folded[run.stack] = folded.get(run.stack, 0) + run.value
    return folded


def differential(
    before: Mapping[Stack, int], after: Mapping[Stack, int]
) -> Dict[Stack, Tuple[int, int]]:
    """{stack: (before, after)} over the union of both profiles, as difffolded.pl pairs them."""
    return {s: (before.get(s, 0), after.get(s, 0)) for s in set(before) | set(after)}
