"""The RSS series computed the plain way, for tests: every rss row read into Python and the
address spaces replayed one row at a time (what analysis/rss.py and the timeline did before
the series became SQL queries). The queries must give the same answers."""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from heaptrace.analysis.rss import CLASS_NAME, Peak, Point
from heaptrace.analysis.timeline import Axis, Bucket
from heaptrace.events import RSS_CLASSES, Rss
from heaptrace.recording import RecordedRss, Recording


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


def largest(rows: List[RecordedRss]) -> Optional[Peak]:
    """The largest summed RSS after a row, the first time (run_peak without the probe's)."""
    points = list(summed(rows))
    if not points:
        return None
    ts, best = max(points, key=lambda p: p[1].total)
    return Peak(best.total, best, ts)


def bucket_rss(rows: List[RecordedRss], axis: Axis) -> List[Optional[Rss]]:
    """Each bucket's largest summed RSS: the value it starts with or a point in it (without
    the probe's exact peak, which timeline() adds on top)."""
    points = list(summed(rows))
    current: Optional[Rss] = None
    out: List[Optional[Rss]] = []
    i = 0
    for index in range(axis.count):
        best = current
        while i < len(points) and axis.index(points[i][0]) <= index:
            current = points[i][1]
            best = current if best is None or current.total > best.total else best
            i += 1
        out.append(best)
    return out


def resident_by_process(rec: Recording, pid: Optional[int] = None) -> Dict[int, Rss]:
    """Bytes each process made resident, by class, event by event."""
    by: Dict[int, Dict[str, int]] = {}
    for e in rec.events(["resident"], pid):
        counts = by.setdefault(e.pid, {name: 0 for name in RSS_CLASSES})
        name = CLASS_NAME.get(e.flags)
        if name is not None:
            counts[name] += e.size
    return {p: Rss(**counts) for p, counts in by.items()}


def bucket_resident(rec: Recording, axis: Axis, pid: Optional[int]) -> List[Tuple[int, Rss]]:
    """(bytes, by class) made resident in each bucket, event by event (positive sizes)."""
    buckets = [Bucket(0, 0) for _ in range(axis.count)]
    for e in rec.events(["resident"], pid):
        b = buckets[axis.index(e.ts_ns)]
        name = CLASS_NAME.get(e.flags)
        if name is None or e.size <= 0:
            continue
        b.resident += e.size
        b.resident_split = b.resident_split + Rss(**{name: e.size})
    return [(b.resident, b.resident_split) for b in buckets]
