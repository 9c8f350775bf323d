"""RSS and resident growth from a recording: the exact series per process and summed, peaks,
and the bytes that became resident by process and class.

The recording holds, per address space, the kernel's own counters at every record the probe
sent (when RSS moved by a step, when heaptrace read them, at start and end) plus each space's
exact peak. A process's RSS at a moment is the sum of its live spaces (one per image: an exec
replaces it); the summed RSS of a run is the sum over processes. Each point of those series is
exact at its time; the run's peak (meta peak_rss) is the probe's own, exact whatever the points.

The series are computed in SQLite (one query per view, window functions over the rss table),
so a view's memory is its buckets and processes, never the rows. A row's value counts from
the row on until the next row of its space replaces it (an "end" row empties the space); the
row read at attach, before the probe named the space (space NULL), counts until the pid's next
row of any space. tests/helpers/rss_reference.py replays the rows one by one the same way: the
property tests hold the queries to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from heaptrace.events import RSS_CLASS, RSS_CLASSES, Rss
from heaptrace.recording import Recording

CLASS_NAME = {v: k for k, v in RSS_CLASS.items()}
Point = Tuple[int, Rss]  # (ts_ns, RSS)


@dataclass(frozen=True)
class Peak:
    """A peak RSS: `total` exact; `rss` its split by class (read at the same moment: under
    concurrent page faults it may differ from `total` by the pages of that instant)."""

    total: int
    rss: Rss
    ts_ns: Optional[int] = None


CLASSES = ("anon", "file", "shmem", "swap")
_TOTAL = "(anon + file + shmem)"  # Rss.total


def _deltas(pid: Optional[int]) -> Tuple[str, List[object]]:
    """CTEs r, n, d: every row in time order (seq), and d(pos, pid, ts, classes...), the
    changes of the sums: at each row its value (0 for an "end" row), and minus that value at
    the row that ends it. Each row has an entry at its own position."""
    where = "WHERE pid = ?" if pid is not None else ""
    args: List[object] = [pid] if pid is not None else []
    cols = ", ".join(CLASSES)
    own = ", ".join(f"CASE WHEN why IS 'end' THEN 0 ELSE {c} END" for c in CLASSES)
    minus = ", ".join(f"-{c}" for c in CLASSES)
    sql = (
        f"r AS (SELECT ROW_NUMBER() OVER (ORDER BY ts_ns, rowid) AS seq, ts_ns, pid, space, "
        f"why, {cols} FROM rss {where}),"
        f" n AS (SELECT seq, ts_ns, pid, why, {cols},"
        "  CASE WHEN space IS NULL THEN LEAD(seq) OVER (PARTITION BY pid ORDER BY seq)"
        "  ELSE LEAD(seq) OVER (PARTITION BY pid, space ORDER BY seq) END AS nxt FROM r),"
        f" d(pos, pid, ts, {cols}) AS (SELECT seq, pid, ts_ns, {own} FROM n"
        f"  UNION ALL SELECT nxt, pid, NULL, {minus} FROM n"
        "  WHERE why IS NOT 'end' AND nxt IS NOT NULL)")
    return sql, args


def _series(pid: Optional[int], per_process: bool) -> Tuple[str, List[object]]:
    """CTEs ending in c(pos, pid, ts, classes...): after each row, the summed RSS of every
    process (per_process: of the row's own process, pid set only then)."""
    deltas, args = _deltas(pid)
    group = "pid, pos" if per_process else "pos"
    part = "PARTITION BY pid " if per_process else ""
    sums = ", ".join(f"SUM({c}) AS {c}" for c in CLASSES)
    running = ", ".join(f"SUM({c}) OVER w AS {c}" for c in CLASSES)
    sql = (f"WITH {deltas},"
           f" p AS (SELECT pos, {'pid' if per_process else 'NULL AS pid'}, MAX(ts) AS ts, {sums}"
           f"  FROM d GROUP BY {group}),"
           f" c AS (SELECT pos, pid, ts, {running} FROM p"
           f"  WINDOW w AS ({part}ORDER BY pos ROWS UNBOUNDED PRECEDING))")
    return sql, args


def _rss(row: Sequence[int]) -> Rss:
    return Rss(*row)


def process_peaks(rec: Recording, pid: Optional[int] = None) -> Dict[int, Peak]:
    """Each process's (or `pid`'s) largest RSS, over its images, and the first time it had it."""
    series, args = _series(pid, per_process=True)
    rows = rec.rss_query(
        f"{series} SELECT pid, ts, {', '.join(CLASSES)} FROM (SELECT *, ROW_NUMBER() OVER"
        f" (PARTITION BY pid ORDER BY {_TOTAL} DESC, pos) AS k FROM c) WHERE k = 1", args)
    peaks = {}
    for row_pid, ts, *sizes in rows:
        rss = _rss(sizes)
        peaks[row_pid] = Peak(rss.total, rss, ts)
    return peaks


def run_peak(rec: Recording, pid: Optional[int]) -> Optional[Peak]:
    """The peak of the summed RSS: the probe's exact one (meta) for the whole run, the
    process's own for one pid; None when the recording has no RSS."""
    meta = rec.meta()
    peak, classes = meta.peak_rss, meta.peak_rss_classes  # no classes: sampled (older runs)
    if pid is None and peak is not None and classes:
        split = Rss(**{k: classes.get(k, 0) for k in CLASSES})
        return Peak(peak, split, meta.peak_rss_ns)
    if pid is not None:
        return process_peaks(rec, pid).get(pid)
    series, args = _series(None, per_process=False)
    rows = rec.rss_query(f"{series} SELECT ts, {', '.join(CLASSES)} FROM c"
                         f" ORDER BY {_TOTAL} DESC, pos LIMIT 1", args)
    if not rows:
        return None
    rss = _rss(rows[0][1:])
    return Peak(rss.total, rss, rows[0][0])


def rss_by_bucket(rec: Recording, bucket_sql: str,
                  pid: Optional[int]) -> Dict[int, Tuple[Rss, Rss]]:
    """{bucket: (the largest summed RSS after a row in it, the first such; the summed RSS
    after its last row)} of the buckets that have rows; `bucket_sql` maps a column named
    {ts} to a bucket index."""
    series, args = _series(pid, per_process=False)
    cols = ", ".join(CLASSES)
    rows = rec.rss_query(
        f"{series}, bk AS (SELECT {bucket_sql.format(ts='ts')} AS b, pos, {cols} FROM c),"
        f" k AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY b ORDER BY {_TOTAL} DESC, pos)"
        "  AS top, ROW_NUMBER() OVER (PARTITION BY b ORDER BY pos DESC) AS last FROM bk)"
        f" SELECT b, top = 1, last = 1, {cols} FROM k WHERE top = 1 OR last = 1", args)
    out: Dict[int, List[Rss]] = {}
    for b, top, last, *sizes in rows:
        pair = out.setdefault(b, [Rss(), Rss()])
        if top:
            pair[0] = _rss(sizes)
        if last:
            pair[1] = _rss(sizes)
    return {b: (pair[0], pair[1]) for b, pair in out.items()}


def resident_by_process(rec: Recording, pid: Optional[int] = None,
                        sums: Optional[List[Tuple[int, int, int, int]]] = None
                        ) -> Dict[int, Rss]:
    """Bytes each process made resident, by class (summed in SQLite, or `sums`: those rows,
    EventSums.resident_by_pid)."""
    by: Dict[int, Dict[str, int]] = {}
    for row_pid, code, nbytes, _positive in sums if sums is not None else \
            rec.resident_sums("pid", pid):
        counts = by.setdefault(row_pid, {name: 0 for name in RSS_CLASSES})
        name = CLASS_NAME.get(code)
        if name is not None:
            counts[name] += nbytes
    return {p: Rss(**counts) for p, counts in by.items()}
