"""The held views computed the plain way, for tests: replay the events up to the moment and
look at what the address spaces hold (what analysis/retained.py did before the lifetimes were
stored, analysis/lifetimes.py). The stored lifetimes' queries must give the same answers."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from heaptrace.analysis.replay import Replay, page_size, steps
from heaptrace.analysis.stacks import Owner, Selection, kinds_for, time_window
from heaptrace.recording import Recording


def find_peak(rec: Recording, sel: Selection) -> Tuple[int, Optional[int]]:
    """(steps up to the peak, its ts_ns): the first moment inside the window at which the
    live images held the most, more than nothing (after every step of that nanosecond; the
    window's start is a moment too, holding what was held before it)."""
    lo, _ = time_window(rec, sel)
    replay = Replay(page_size(rec))
    best, best_count, when, count, at_lo = 0, 0, None, 0, lo is None
    timed = list(steps(rec, sel))
    for count, (ts, step) in enumerate(timed, 1):
        if not at_lo and ts >= lo:  # the window's start
            at_lo = True
            if replay.total > best:
                best, best_count, when = replay.total, count - 1, lo
        replay.step(step)
        last_of_ts = count == len(timed) or timed[count][0] != ts
        if last_of_ts and replay.total > best and (lo is None or ts >= lo):
            best, best_count, when = replay.total, count, ts
    if not at_lo and replay.total > best:
        best, best_count, when = replay.total, count, lo
    return (best_count, when) if when is not None else (count, None)


def held(rec: Recording, sel: Selection, at: str) -> Tuple[Dict[Owner, int], int,
                                                              Dict[int, int]]:
    """({owner: bytes held}, bytes released that no traced call took, {pid: given back})."""
    lo, _ = time_window(rec, sel)
    limit = find_peak(rec, sel)[0] if at == "peak" else None
    replay, given = Replay(page_size(rec)), {}  # type: Replay, Dict[int, int]
    for count, (_, step) in enumerate(steps(rec, sel), 1):
        if limit is not None and count > limit:
            break
        replay.step(step)
        if replay.given:
            pid = step if isinstance(step, int) else step.pid
            given[pid] = given.get(pid, 0) + replay.given
    spaces = list(replay.spaces.values()) + (replay.ended if at == "exit" else [])
    kinds = set(kinds_for(sel.kind))
    out: Dict[Owner, int] = {}
    for space in spaces:
        for owner, nbytes in space.held():
            if owner[3] in kinds and (lo is None or owner[1] >= lo):
                out[owner] = out.get(owner, 0) + nbytes
    return out, replay.unmatched, given


def pieces(rec: Recording, sel: Selection, at: str) -> List[Tuple[Owner, int]]:
    return sorted(held(rec, sel, at)[0].items())


def buckets(rec: Recording, axis, pid: Optional[int]) -> List[tuple]:
    """(taken, given, held, calls) per bucket of `axis` (analysis/timeline.Axis), replayed."""
    from heaptrace.events import growth

    out = [[0, 0, 0, 0] for _ in range(axis.count)]
    replay, current = Replay(page_size(rec)), 0
    for ts, step in steps(rec, Selection(kind="all", pid=pid)):
        i = axis.index(ts)
        for j in range(current, i):
            out[j][2] = replay.total
        current = i
        replay.step(step)
        if not isinstance(step, int):
            out[i][0] += growth(step)
            out[i][1] += replay.given
            out[i][3] += step.calls
    for j in range(current, axis.count):
        out[j][2] = replay.total
    return [tuple(b) for b in out]
