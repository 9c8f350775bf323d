"""The events summed per group (process, stack, kind, class, growth or not, failed, grew):
what the report's tables and rankings are made of, without reading the events again.

The lifetimes pass (analysis/lifetimes.py) stores them in the recording (event_sums, a few
rows per stack); a recording without them (an older heaptrace's) has them computed in one
pass over its events (Recording.event_sums). Each answer below is the one the matching query
over the events gives (Recording.taken_by_stack, mapped_by_class, sums_by_bucket by pid,
resident_sums by pid, bytes_by_stack, last_event_ns): the same rows, in the same order.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from heaptrace.events import GROWTH_KINDS, SYSCALL_KINDS
from heaptrace.recording import Recording
from heaptrace.recording.schema import DB_ERRORS

VERSION = 1  # of what event_sums holds: rows stored by another version are not read


class Sum(NamedTuple):
    """One group (recording/schema.py event_sums)."""

    pid: int
    stack_id: Optional[int]
    kind: str
    mem_class: int  # an mmap's class, a resident event's RSS class, else the probe's
    committed: int  # 1: a positive size is committed growth
    failed: int  # 1: ret < 0
    grew: int  # 1: size > 0
    events: int
    calls: int
    size: int
    bytes: int  # of |size|
    first_ns: int
    last_ns: int


def _stack_order(sid: Optional[int]) -> Tuple[bool, int]:
    """GROUP BY stack_id's order: no stack first."""
    return (sid is not None, sid or 0)


class EventSums:
    def __init__(self, rows: Sequence[Sequence]) -> None:
        self.rows = [Sum(*row) for row in rows]

    @classmethod
    def of(cls, rec: Recording) -> EventSums:
        """The recording's stored sums when they are of this version and of all its events,
        checked; else computed from the events now."""
        return stored_sums(rec) or cls(rec.event_sums())

    def _of(self, pid: Optional[int]) -> List[Sum]:
        return [r for r in self.rows if pid is None or r.pid == pid]

    def taken_by_stack(self, kinds: Sequence[str], pid: Optional[int] = None,
                       committed: bool = False) -> List[Tuple[Optional[int], int, int]]:
        """(stack_id, calls that took bytes, bytes taken): Recording.taken_by_stack."""
        out: Dict[Optional[int], List[int]] = {}
        for r in self._of(pid):
            if r.kind in kinds and (r.committed or not committed):
                sums = out.setdefault(r.stack_id, [0, 0])
                if r.grew:
                    sums[0] += r.calls
                    sums[1] += r.size
        return [(sid, out[sid][0], out[sid][1]) for sid in sorted(out, key=_stack_order)]

    def mapped_by_class(self, pid: Optional[int] = None) -> List[Tuple[int, int, int]]:
        """(pid, MemClass code, bytes) mmaps mapped and mremaps grew: Recording.mapped_by_class."""
        out: Dict[Tuple[int, int], int] = {}
        for r in self._of(pid):
            if r.kind in ("mmap", "mremap") and r.grew and not r.failed:
                key = (r.pid, r.mem_class)
                out[key] = out.get(key, 0) + r.size
        return [(p, c, n) for (p, c), n in sorted(out.items())]

    def calls_by_pid(self, pid: Optional[int] = None) -> List[Tuple[int, int, int]]:
        """(pid, calls, committed growth) of the memory calls: Recording.sums_by_bucket by pid."""
        out: Dict[int, List[int]] = {}
        for r in self._of(pid):
            if r.kind in SYSCALL_KINDS:
                sums = out.setdefault(r.pid, [0, 0])
                sums[0] += r.calls
                if r.kind in GROWTH_KINDS and r.grew and r.committed:
                    sums[1] += r.size
        return [(p, calls, taken) for p, (calls, taken) in sorted(out.items())]

    def resident_by_pid(self, pid: Optional[int] = None) -> List[Tuple[int, int, int, int]]:
        """(pid, RSS class, bytes, bytes of the positive sizes) of resident events:
        Recording.resident_sums by pid."""
        out: Dict[Tuple[int, int], List[int]] = {}
        for r in self._of(pid):
            if r.kind == "resident":
                sums = out.setdefault((r.pid, r.mem_class), [0, 0])
                sums[0] += r.size
                if r.grew:
                    sums[1] += r.size
        return [(p, c, n, positive) for (p, c), (n, positive) in sorted(out.items())]

    def bytes_by_stack(self, kinds: Sequence[str]) -> Dict[Optional[int], Tuple[int, int]]:
        """stack_id -> (events, sum of |size|) of some kinds: Recording.bytes_by_stack."""
        out: Dict[Optional[int], Tuple[int, int]] = {}
        for r in self.rows:
            if r.kind in kinds:
                n, total = out.get(r.stack_id, (0, 0))
                out[r.stack_id] = (n + r.events, total + r.bytes)
        return {sid: out[sid] for sid in sorted(out, key=_stack_order)}

    def last_event_ns(self, pid: Optional[int] = None) -> Optional[int]:
        """When the last event (of `pid`) was: Recording.last_event_ns."""
        return max((r.last_ns for r in self._of(pid)), default=None)


def stored_rows(rec: Recording) -> Optional[List[tuple]]:
    """The recording's event_sums rows, checked, if they are of this version and were
    summed over all of its events; None otherwise."""
    db = rec.connection()
    try:
        info = [tuple(row) for row in db.execute("SELECT version, events FROM event_sums_info")]
    except DB_ERRORS:
        return None  # not there: an older heaptrace's recording
    if info != [(VERSION, rec.event_count())]:
        return None
    rec.check_derived(("event_sums", "event_sums_info"))
    return rec.derived_rows("event_sums")


def stored_sums(rec: Recording) -> Optional[EventSums]:
    """The recording's stored sums (stored_rows), or None."""
    rows = stored_rows(rec)
    return EventSums(rows) if rows is not None else None
