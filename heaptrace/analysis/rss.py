"""RSS and resident growth from a recording: the exact series per process and summed, peaks,
and the bytes that became resident by process and class.

The recording holds, per address space, the kernel's own counters at every record the probe
sent (when RSS moved by a step, when heaptrace read them, at start and end) plus each space's
exact peak. A process's RSS at a moment is the sum of its live spaces (one per image: an exec
replaces it); the summed RSS of a run is the sum over processes. Each point of those series is
exact at its time; the run's peak (meta peak_rss) is the probe's own, exact whatever the points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from heaptrace.events import RSS_CLASS, RSS_CLASSES, Event, Rss
from heaptrace.recording import RecordedRss, Recording

CLASS_NAME = {v: k for k, v in RSS_CLASS.items()}
Point = Tuple[int, Rss]  # (ts_ns, RSS)


@dataclass(frozen=True)
class Peak:
    """A peak RSS: `total` exact; `rss` its split by class (read at the same moment: under
    concurrent page faults it may differ from `total` by the pages of that instant)."""

    total: int
    rss: Rss
    ts_ns: Optional[int] = None


class Spaces:
    """The live address spaces of each process, as the rows say them, in time order."""

    def __init__(self) -> None:
        self.by_pid: Dict[int, Dict[Optional[int], Rss]] = {}

    def apply(self, row: RecordedRss) -> None:
        spaces = self.by_pid.setdefault(row.pid, {})
        if row.space is not None:
            spaces.pop(None, None)  # the RSS read at attach, until the probe names the space
        if row.why == "end":
            spaces.pop(row.space, None)
        else:
            spaces[row.space] = row.rss

    def of(self, pid: int) -> Rss:
        return sum(self.by_pid.get(pid, {}).values(), Rss())

    def total(self) -> Rss:
        return sum((self.of(pid) for pid in self.by_pid), Rss())


def summed(rows: Iterable[RecordedRss]) -> Iterator[Point]:
    """The summed RSS of every process in `rows` after each row."""
    spaces = Spaces()
    for row in rows:
        spaces.apply(row)
        yield row.ts_ns, spaces.total()


def process_peaks(rows: Iterable[RecordedRss]) -> Dict[int, Peak]:
    """Each process's largest RSS (over its images) and when."""
    spaces = Spaces()
    peaks: Dict[int, Peak] = {}
    for row in rows:
        spaces.apply(row)
        now = spaces.of(row.pid)
        if row.pid not in peaks or now.total > peaks[row.pid].total:
            peaks[row.pid] = Peak(now.total, now, row.ts_ns)
    return peaks


def run_peak(rec: Recording, rows: List[RecordedRss], pid: Optional[int]) -> Optional[Peak]:
    """The peak of the summed RSS: the probe's exact one (meta) for the whole run, the
    process's own for one pid; None when the recording has no RSS."""
    meta = rec.meta()
    peak, classes = meta.peak_rss, meta.peak_rss_classes  # no classes: sampled (older runs)
    if pid is None and peak is not None and classes:
        split = Rss(**{k: classes.get(k, 0) for k in ("anon", "file", "shmem", "swap")})
        return Peak(peak, split, meta.peak_rss_ns)
    if pid is not None:
        return process_peaks(rows).get(pid)
    points = list(summed(rows))
    if not points:
        return None
    ts, best = max(points, key=lambda p: p[1].total)
    return Peak(best.total, best, ts)


def resident_rss(events: Iterable[Event]) -> Rss:
    """Bytes made resident by `resident` events, by class."""
    by = {name: 0 for name in RSS_CLASSES}
    for e in events:
        name = CLASS_NAME.get(e.flags)
        if e.kind == "resident" and name is not None:
            by[name] += e.size
    return Rss(**by)


def resident_by_process(rec: Recording, pid: Optional[int] = None) -> Dict[int, Rss]:
    """Bytes each process made resident, by class."""
    events: Dict[int, List[Event]] = {}
    for e in rec.events(["resident"], pid):
        events.setdefault(e.pid, []).append(e)
    return {p: resident_rss(es) for p, es in events.items()}
