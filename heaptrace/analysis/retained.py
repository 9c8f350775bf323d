"""Retained bytes: what was still held, and which stacks allocated it.

"At exit" reports what every image still held when it ended (or when the window closed):
memory a program never gave back; for a process attached with -p that is what it held when
tracing ended. "At peak" reports what the live images held at the moment their sum was
highest. Both are queries over the recording's lifetimes (analysis/lifetimes.py), which the
held replay (analysis/replay.py) computes once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from heaptrace.analysis.lifetimes import Lifetimes
from heaptrace.analysis.stacks import (
    Chart,
    Folded,
    Folder,
    Owner,
    Selection,
    append_run,
    kinds_for,
    run_start_ns,
    time_window,
)
from heaptrace.errors import UsageError
from heaptrace.events import RELEASE_KINDS, SPEC
from heaptrace.recording import Recording


@dataclass
class Retained:
    """Bytes held at a moment, folded by allocating stack."""

    folded: Folded
    at: str  # "exit" or "peak"
    held: int  # sum of `folded`
    moment_ns: Optional[int]  # when the peak was (None for exit)
    unmatched: int  # bytes released that matched no traced allocation
    pieces: List[Tuple[Owner, int]] = field(default_factory=list)  # what made `folded`
    given_by_pid: Dict[int, int] = field(default_factory=dict)  # Lifetimes.given_by_pid
    when: str = "at exit"  # how views say the moment: held_when()


def held_when(rec: Recording, at: str) -> str:
    """How to say the moment of `at`: a process attached with -p did not exit, its held
    bytes are those at the end of tracing."""
    if at == "peak":
        return "at peak"
    return "at the end of tracing" if rec.meta().attached else "at exit"


END_OF_TIME = (1 << 63) - 1


def retained(rec: Recording, sel: Selection, at: str = "exit") -> Retained:
    """Bytes held at exit (or at peak) by the stacks that allocated them, from the
    recording's lifetimes (analysis/lifetimes.py). Only allocations of the selected kinds
    made inside the time window are shown."""
    if sel.kind in RELEASE_KINDS or (sel.kind in SPEC and not SPEC[sel.kind].is_syscall):
        raise UsageError("--retained shows allocations: "
                         "use --event growth, brk, mmap, mremap or mprotect")
    if at not in ("exit", "peak"):
        raise UsageError(f"--at must be exit or peak, not {at!r}")
    lo, hi = time_window(rec, sel)
    kinds = kinds_for(sel.kind)
    with Lifetimes(rec) as lifetimes:
        moment = None
        if at == "peak":
            peak = lifetimes.peak(sel.pid, lo, hi)
            moment = peak[0] if peak is not None else None
        when = moment if moment is not None else (hi if at == "peak" else None)
        if at == "peak" and when is None:
            when = END_OF_TIME  # nothing in the window: what the live images held at the end
        pieces = lifetimes.held(kinds, sel.pid, lo, hi, when)
        unmatched = lifetimes.released(sel.pid, when if at == "peak" else hi)
        given = lifetimes.given_by_pid(sel.pid)
    folder = Folder(rec, sel.process_names)
    for owner, nbytes in pieces:
        folder.add(owner, nbytes)
    held = sum(folder.folded.values())
    return Retained(folder.folded, at, held, moment, unmatched, pieces, given,
                    held_when(rec, at))


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
