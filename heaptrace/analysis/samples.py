"""What the profile exports (pprof, speedscope) carry: one sample per process image and stack,
with the bytes and calls of each selected kind (or the bytes still held at exit or at peak),
the stack's frames, and for each frame's address the executable mapping (path, build-id) it
was in when the stack ran.

The selection is flame's (analysis/stacks.py, analysis/retained.py): the first value of every
sample is the width `heaptrace flame` gives that stack, so the exports and the flame graph
add up to the same bytes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from heaptrace.analysis.profiles import describe, describe_held, is_recording
from heaptrace.analysis.retained import Retained, retained
from heaptrace.analysis.stacks import (
    NO_STACK,
    UNKNOWN_FRAME,
    ProcessNames,
    Selection,
    kinds_for,
    tally,
)
from heaptrace.errors import RecordingError
from heaptrace.events import Frame
from heaptrace.recording import Recording
from heaptrace.stacks.lines import Source, SourceLines
from heaptrace.stacks.procmaps import ProcMaps
from heaptrace.stacks.symbols import is_symbolized


@dataclass(frozen=True)
class ValueType:
    """What one value of a sample counts, as pprof names it: e.g. mmap_bytes in bytes."""

    type: str
    unit: str  # "bytes" or "count"


@dataclass(frozen=True)
class Place:
    """An executable mapping a frame's address was in."""

    start: int
    end: int
    offset: int  # file offset of `start`
    path: str  # the mapped file, or [vdso], or "" for anonymous (JIT) code
    build_id: Optional[str]


@dataclass(frozen=True)
class Located:
    """A frame, where its address was, whether it has a symbol (else its name is
    `module+0xVADDR`), and its source file and line when the binary's DWARF says."""

    frame: Frame
    place: Optional[Place]
    symbolized: bool
    source: Optional[Source] = None


@dataclass(frozen=True)
class Process:
    pid: int
    name: str  # comm of the image (a pid that execs is two processes)


@dataclass(frozen=True)
class Sample:
    process: Process
    frames: Tuple[Located, ...]  # leaf first, never empty ([no stack] when none was taken)
    values: Tuple[int, ...]  # one per ValueType
    first_ns: int  # when the stack first ran (or first allocated what is held)


@dataclass
class Samples:
    types: List[ValueType]  # the first is what `heaptrace flame` draws: the default view
    samples: List[Sample]  # in time order
    description: str  # what is shown, e.g. "growth (brk+mmap+mremap): 74.3 MiB in 57 stacks"
    process_names: bool  # process names as root frames (flame's --process-names)
    started_ns: Optional[int] = None  # wall clock of the run's start, when known
    duration_ns: Optional[int] = None


Key = Tuple[int, int, Optional[int]]  # pid, image, stack_id


def load_samples(path: str, sel: Selection, at: Optional[str] = None,
                 lines: bool = True) -> Samples:
    """The selected events of the recording at `path` (or with `at`, the bytes they still
    held at "exit" or "peak") as samples per process image and stack; `lines`: look up the
    frames' source lines too."""
    if os.path.isfile(path) and not is_recording(path):
        raise RecordingError(f"{path} is not a recording (exports read recordings; folded "
                             f"stacks become one with: heaptrace import folded {path} -o FILE)")
    with Recording(path) as rec:
        if at is None:
            types, rows = taken(rec, sel)
            description = describe(rec, sel, [v[0] for _, v in rows.values()])
        else:
            types, rows, result = held(rec, sel, at)
            description = describe_held(rec, sel, result, [v[0] for _, v in rows.values()])
        samples = Resolver(rec, SourceLines() if lines else None).samples(rows)
        meta = rec.meta()
    started, duration = meta.started_at, meta.duration_s
    return Samples(types, samples, description, sel.process_names, _ns(started), _ns(duration))


def _ns(seconds: Optional[float]) -> Optional[int]:
    """Seconds as nanoseconds, None where a recording's value does not fit 64 bits."""
    ns = seconds * 1e9 if seconds is not None else math.inf
    return int(ns) if abs(ns) < 2**63 else None


Rows = Dict[Key, Tuple[int, List[int]]]  # first_ns, values


def taken(rec: Recording, sel: Selection) -> Tuple[List[ValueType], Rows]:
    """Bytes and calls of each selected kind; with several kinds, their bytes summed first."""
    kinds = kinds_for(sel.kind)
    total = len(kinds) > 1
    types = [ValueType(sel.kind, "bytes")] if total else []
    for kind in kinds:
        types += [ValueType(f"{kind}_bytes", "bytes"), ValueType(f"{kind}_calls", "count")]
    rows: Rows = {}
    for (pid, image, stack_id, kind), sums in tally(rec, sel).items():
        first, values = rows.setdefault((pid, image, stack_id), (sums.first_ns, [0] * len(types)))
        at = int(total) + 2 * kinds.index(kind)
        values[at] += sums.nbytes
        values[at + 1] += sums.calls
        if total:
            values[0] += sums.nbytes
        rows[(pid, image, stack_id)] = (min(first, sums.first_ns), values)
    return types, rows


def held(rec: Recording, sel: Selection,
         at: str) -> Tuple[List[ValueType], Rows, Retained]:
    """Bytes still held at `at`, per kind when several, and how many calls allocated them."""
    result = retained(rec, sel, at)
    kinds = kinds_for(sel.kind)
    total = len(kinds) > 1
    types = [ValueType("held", "bytes")]
    if total:
        types += [ValueType(f"{kind}_held", "bytes") for kind in kinds]
    types.append(ValueType("held_calls", "count"))
    procs = ProcessNames(rec.processes())
    rows: Rows = {}
    calls: Dict[Key, set] = {}
    for owner, nbytes in result.pieces:
        pid, ts, stack_id, kind = owner
        key = (pid, procs.image(pid, ts), stack_id)
        first, values = rows.setdefault(key, (ts, [0] * len(types)))
        values[0] += nbytes
        if total:
            values[1 + kinds.index(kind)] += nbytes
        calls.setdefault(key, set()).add(owner)
        rows[key] = (min(first, ts), values)
    for key, owners in calls.items():
        rows[key][1][-1] = len(owners)
    return types, rows, result


class Resolver:
    """Names processes and frames, finds the mapping of each frame's address, and its
    source line in that mapping's file."""

    def __init__(self, rec: Recording, lines: Optional[SourceLines]) -> None:
        self._stacks = rec.stacks()
        self._procs = ProcessNames(rec.processes())
        self._maps = ProcMaps.from_rows(rec.mappings())
        self._places: Dict[Tuple[int, int, int], Optional[Place]] = {}
        self._lines = lines
        self._sources: Dict[Tuple[Place, int, bool], Optional[Source]] = {}

    def samples(self, rows: Rows) -> List[Sample]:
        """One sample per process and located stack: rows whose stacks locate alike (the
        same addresses recorded under two unwinding generations, or two images of one pid
        with one name) are summed, as pprof's readers would merge them."""
        found: Dict[Tuple[Process, Tuple[Located, ...]], Sample] = {}
        for (pid, image, stack_id), (first, values) in rows.items():
            if not any(values):
                continue
            process = Process(pid, self._procs.name(pid, first))
            frames = self._stacks.get(stack_id, ()) if stack_id is not None else ()
            located = tuple(self.locate(pid, image, first, f, i > 0)
                            for i, f in enumerate(frames))
            located = located or (Located(Frame(NO_STACK), None, True),)
            same = found.get((process, located))
            if same is not None:
                values = [a + b for a, b in zip(same.values, values)]
                first = min(first, same.first_ns)
            found[(process, located)] = Sample(process, located, tuple(values), first)
        return sorted(found.values(), key=lambda s: (s.first_ns, s.process.pid))

    def locate(self, pid: int, image: int, ts_ns: int, frame: Frame,
               is_return: bool) -> Located:
        """`is_return`: the address is a caller's return address, not the leaf's pc."""
        if not frame.name:
            frame = Frame(UNKNOWN_FRAME, frame.module, frame.addr)
        if frame.addr is None:
            return Located(frame, None, is_symbolized(frame))
        key = (pid, image, frame.addr)
        if key not in self._places:
            m = self._maps.find(pid, frame.addr, ts_ns)
            self._places[key] = None if m is None else Place(
                m.start, m.end, m.offset, m.path, m.build_id)
        place = self._places[key]
        return Located(frame, place, is_symbolized(frame),
                       None if place is None else self.source(place, frame.addr, is_return))

    def source(self, place: Place, addr: int, is_return: bool) -> Optional[Source]:
        if self._lines is None:
            return None
        key = (place, addr, is_return)
        if key not in self._sources:
            self._sources[key] = self._lines.source(
                place.path, place.build_id, addr - place.start + place.offset, is_return)
        return self._sources[key]
