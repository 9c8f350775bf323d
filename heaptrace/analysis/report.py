"""The one-screen answer: what ran, what it took and gave back, which stacks took the most
and which still held the most at exit, and how good the stacks are.

Plain data only (render/report.py prints it). Every number comes from an existing analysis:
exact totals from the recording, growth per stack keyed as `fold` keys it, held bytes from
the retained replay (`flame --retained`), taken/given back as the timeline counts them, and
stack quality from coverage.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from heaptrace.analysis.compact import compact_indices, compact_stack
from heaptrace.analysis.coverage import coverage
from heaptrace.analysis.eventsums import EventSums
from heaptrace.analysis.retained import retained
from heaptrace.analysis.rss import Peak, process_peaks, resident_by_process, run_peak
from heaptrace.analysis.stacks import (
    Folder,
    Owner,
    Selection,
    kinds_for,
)
from heaptrace.analysis.timeline import Bucket
from heaptrace.errors import UsageError
from heaptrace.events import Frame, MemClass, Rss, committed_growth
from heaptrace.recording import Recording, RunMeta

DEFAULT_TOP = 5


@dataclass
class RunInfo:
    """What was recorded, as meta tells it (None where the source did not say)."""

    path: str
    command: str = ""
    source: str = ""
    kernel: Optional[str] = None
    duration_s: Optional[float] = None
    exit_code: Optional[int] = None
    complete: Optional[bool] = None  # False: cut short (heaptrace did not finish) or failed
    incomplete_reason: Optional[str] = None  # why a run failed, when it could say
    lost_events: int = 0
    unwritten_events: int = 0  # received but not written (the run failed)
    imported: bool = False  # from data without addresses: nothing to match frees to
    imported_from: str = ""  # the file an import read
    pid: Optional[int] = None  # --pid: the report covers this process only
    attached: bool = False  # -p: processes did not exit, held is at the end of tracing
    unfinished: Optional[str] = None  # what finishing the file did not get to (a signal)


@dataclass
class KindRow:
    """One line of the exact totals table; None where an import could not know it."""

    kind: str
    calls: Optional[int]
    failed: int
    bytes: Optional[int]
    released: int


@dataclass
class ProcessRow:
    pid: int
    name: str  # the last image's name; `names` has every exec's
    names: List[str]
    calls: int = 0
    taken: int = 0
    given: int = 0
    held: Optional[int] = 0  # still held when it ended (None: the recording cannot tell)
    # mapped, not growth (ARCHITECTURE.md): reserved, file and shared bytes mmap'ed or grown
    apart: Dict[str, int] = field(default_factory=dict)
    peak_rss: Optional[int] = None  # exact, from the kernel's counters (None: not recorded)
    peak_rss_split: Optional[Rss] = None
    resident: int = 0  # bytes that became resident in it (first touch)
    resident_split: Rss = field(default_factory=Rss)


@dataclass
class StackRow:
    compact: str  # main > download_package > buffer_append > realloc > mremap (full names)
    stack: List[str]  # every frame, root first
    shown: List[int]  # the frames the compact form names: indices into `stack`
    bytes: int
    share: float  # of the ranking's total
    calls: Optional[int]  # None: the source did not count calls


@dataclass
class Ranking:
    """The top stacks of one measure, and the rest summed so shares add up to 1."""

    total: int = 0
    rows: List[StackRow] = field(default_factory=list)
    other_bytes: int = 0
    other_share: float = 0.0
    other_stacks: int = 0
    known: bool = True  # False: this recording cannot tell (imports have no addresses)


@dataclass
class Quality:
    whole_share: float
    unsymbolized_share: float
    events: int
    events_with_stack: int


@dataclass
class Report:
    run: RunInfo
    totals: List[KindRow]
    growth_total: int  # exact, from the totals table
    processes: List[ProcessRow]
    growth: Ranking
    held: Ranking
    quality: Optional[Quality]  # None: no per-call events
    peak_rss: Optional[int]  # exact: the summed RSS of the traced processes (or of --pid)
    events: int  # per-call events in the recording
    next_commands: List[str] = field(default_factory=list)
    peak_rss_split: Optional[Rss] = None
    resident: Ranking = field(default_factory=Ranking)  # stacks by bytes made resident


# --- rankings ----------------------------------------------------------------------------

class Tally:
    """Bytes and calls per stack, keyed by root-first names as `fold` keys them."""

    def __init__(self, rec: Recording) -> None:
        self._folder = Folder(rec, process_names=False)
        self._frames = rec.stacks()
        self.bytes: Dict[Tuple[str, ...], int] = {}
        self.calls: Dict[Tuple[str, ...], int] = {}
        self.sample: Dict[Tuple[str, ...], Sequence[Frame]] = {}

    def add(self, stack_id: Optional[int], nbytes: int, calls: int) -> None:
        if nbytes <= 0:
            return
        key = self._folder.key(0, 0, stack_id)
        self.bytes[key] = self.bytes.get(key, 0) + nbytes
        self.calls[key] = self.calls.get(key, 0) + calls
        self.sample.setdefault(key, self._frames.get(stack_id, ()) if stack_id is not None else ())

    def ranking(self, top: int, count_calls: bool = True) -> Ranking:
        total = sum(self.bytes.values())
        order = sorted(self.bytes, key=lambda k: (-self.bytes[k], k))
        rows = [self._row(k, total, count_calls) for k in order[:top]]
        rest = sum(self.bytes[k] for k in order[top:])
        return Ranking(total, rows, rest, share(rest, total), max(len(order) - top, 0))

    def _row(self, key: Tuple[str, ...], total: int, count_calls: bool) -> StackRow:
        calls = self.calls[key] if count_calls and self.calls[key] > 0 else None
        frames = self.sample[key]
        shown = [len(key) - 1 - i for i in compact_indices(frames)] if frames else [0]
        return StackRow(compact_stack(frames), list(key), shown, self.bytes[key],
                        share(self.bytes[key], total), calls)


def share(part: int, total: int) -> float:
    return part / total if total else 0.0


def growth_ranking(rec: Recording, sums: EventSums, sel: Selection, top: int) -> Ranking:
    """Stacks by bytes taken (brk, mmap and mremap growth), as `heaptrace flame` sums them;
    or by bytes made resident (--event resident)."""
    tally = Tally(rec)
    for stack_id, calls, nbytes in sums.taken_by_stack(kinds_for(sel.kind), sel.pid,
                                                       committed=sel.kind == "growth"):
        tally.add(stack_id, nbytes, calls)
    return tally.ranking(top)


def held_ranking(rec: Recording, pieces: Iterable[Tuple[Owner, int]], top: int,
                 timed: bool) -> Ranking:
    """Stacks by bytes still held at exit; calls are the allocations still (partly) held,
    which only a recording with times can tell apart."""
    tally, seen = Tally(rec), set()
    for owner, nbytes in pieces:
        tally.add(owner[2], nbytes, 0 if owner in seen else 1)
        seen.add(owner)
    return tally.ranking(top, count_calls=timed)


# --- the rest ----------------------------------------------------------------------------

def run_info(meta: RunMeta, path: str, pid: Optional[int]) -> RunInfo:
    return RunInfo(
        path=path, command=meta.command_line, source=meta.source, kernel=meta.kernel,
        duration_s=meta.duration_s, exit_code=meta.exit_code, complete=meta.complete,
        incomplete_reason=meta.incomplete_reason, lost_events=meta.lost_events,
        unwritten_events=meta.events_unwritten, imported=meta.imported and not meta.addresses,
        imported_from=meta.imported_from or "", pid=pid,
        attached=meta.attached, unfinished=meta.unfinished)


def kind_rows(rec: Recording, meta: RunMeta) -> List[KindRow]:
    unknown = meta.unknown_totals
    rows = []
    for kind, t in rec.totals().items():
        missing = unknown.get(kind, [])
        rows.append(KindRow(kind, None if "calls" in missing else t.calls, t.failed,
                            None if "bytes" in missing else t.bytes, t.released))
    return rows


def process_rows(rec: Recording, sums: EventSums, pid: Optional[int],
                 pieces: Iterable[Tuple[Owner, int]], given: Dict[int, int]
                 ) -> List[ProcessRow]:
    """One row per traced pid: calls, taken and given back (as the timeline counts them)
    and what the retained replay says it gave back and still held when it ended."""
    names: Dict[int, List[str]] = {}
    for proc in rec.processes():
        if proc.comm and proc.comm not in names.setdefault(proc.pid, []):
            names[proc.pid].append(proc.comm)
    counts: Dict[int, Bucket] = {}
    for row_pid, calls, taken in sums.calls_by_pid(pid):
        counts[row_pid] = Bucket(0, 0, taken=taken, calls=calls)
    apart: Dict[int, Dict[str, int]] = {}
    for row_pid, code, nbytes in sums.mapped_by_class(pid):
        cls = MemClass.from_code(code)
        if cls is not None and cls is not MemClass.COMMITTED:
            by_class = apart.setdefault(row_pid, {})
            by_class[cls.label] = by_class.get(cls.label, 0) + nbytes
    for row_pid, nbytes in given.items():
        counts.setdefault(row_pid, Bucket(0, 0)).given += nbytes
    held: Dict[int, int] = {}
    for owner, nbytes in pieces:
        held[owner[0]] = held.get(owner[0], 0) + nbytes
    pids = [p for p in {*names, *counts} if (pid is None or p == pid) and (p or p in names)]
    return [process_row(p, names.get(p, []), counts.get(p, Bucket(0, 0)), held.get(p, 0),
                        apart.get(p, {})) for p in sorted(pids)]


def process_row(pid: int, names: List[str], counts: Bucket, held: int,
                apart: Dict[str, int]) -> ProcessRow:
    label = names[-1] if names else f"[pid {pid}]"
    return ProcessRow(pid, label, names, counts.calls, counts.taken, counts.given, held,
                      {c.label: apart.get(c.label, 0) for c in MemClass
                       if c is not MemClass.COMMITTED})


def add_resident(rows: List[ProcessRow], peaks: Dict[int, Peak],
                 resident: Dict[int, Rss]) -> None:
    """Each process's exact peak RSS and the bytes that became resident in it."""
    for row in rows:
        peak = peaks.get(row.pid)
        if peak is not None:
            row.peak_rss, row.peak_rss_split = peak.total, peak.rss
        row.resident_split = resident.get(row.pid, Rss())
        row.resident = row.resident_split.total


def quality(rec: Recording, sums: EventSums) -> Optional[Quality]:
    cov = coverage(rec, sums)
    if not cov.events_total:
        return None
    return Quality(cov.whole_share, cov.unsymbolized_share, cov.events_total,
                   cov.events_with_stack)


def next_commands(report: Report) -> List[str]:
    """What to run next, given what this recording has."""
    path = shlex.quote(report.run.path)
    pid = f" --pid {report.run.pid}" if report.run.pid is not None else ""
    hints = [f"heaptrace histogram {path}"]
    if report.growth.rows:
        hints.append(f"heaptrace flame {path}{pid} > flame.svg")
    if report.held.known and report.held.total:
        hints.append(f"heaptrace flame --retained {path}{pid} > held.svg")
    if report.resident.rows:
        hints.append(f"heaptrace flame --event resident {path}{pid} > resident.svg")
    if report.processes and not report.run.imported:
        hints.append(f"heaptrace timeline {path}{pid}")
    if report.run.pid is None and len(report.processes) > 1:
        biggest = max(report.processes, key=lambda p: (p.taken, -p.pid))
        hints.append(f"heaptrace report {path} --pid {biggest.pid}")
    unsymbolized = report.quality is not None and report.quality.unsymbolized_share > 0
    if unsymbolized or report.run.complete is False:
        hints.append(f"heaptrace symbolize {path}")
    return hints


def check_pid(rec: Recording, sums: EventSums, pid: Optional[int]) -> None:
    if pid is None or sums.last_event_ns(pid) is not None:
        return
    pids = sorted({proc.pid for proc in rec.processes()})
    if pid not in pids:
        have = ", ".join(map(str, pids)) or "none"
        raise UsageError(f"no process {pid} in {rec.path} (its processes: {have})")


def build_report(rec: Recording, top: int = DEFAULT_TOP, pid: Optional[int] = None) -> Report:
    """Everything `heaptrace report` shows, for the whole recording or one pid."""
    if top < 1:
        raise UsageError(f"--top must be 1 or more, not {top}")
    sums = EventSums.of(rec)  # the events summed once: no view below reads them again
    check_pid(rec, sums, pid)
    meta = rec.meta()
    info = run_info(meta, rec.path, pid)
    sel = Selection(kind="growth", pid=pid, process_names=False)
    kept = retained(rec, sel)
    totals = kind_rows(rec, meta)
    held = held_ranking(rec, kept.pieces, top, timed=not info.imported)
    held.known = not info.imported
    peak = run_peak(rec, pid)
    processes = process_rows(rec, sums, pid, kept.pieces, kept.given_by_pid)
    add_resident(processes, process_peaks(rec, pid),
                 resident_by_process(rec, pid, sums.resident_by_pid(pid)))
    if info.imported:  # as the held ranking says: no addresses to match frees to
        for row in processes:
            row.held = None
    report = Report(
        info, totals, committed_growth(rec.totals()),
        processes, growth_ranking(rec, sums, sel, top), held,
        quality(rec, sums), peak.total if peak else None, rec.event_count(),
        peak_rss_split=peak.rss if peak else None,
        resident=growth_ranking(rec, sums,
                                Selection(kind="resident", pid=pid, process_names=False),
                                top))
    report.next_commands = next_commands(report)
    return report
