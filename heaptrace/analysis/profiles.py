"""One folded profile from a recording or a folded file, with a line saying what it shows.

This is what `heaptrace flame` and `heaptrace diff` draw: the growth (or one kind) per stack,
or with `at` set, the bytes retained at exit or at peak.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Collection, List, Optional

from heaptrace.analysis.retained import Retained, held_chart, retained
from heaptrace.analysis.stacks import (
    Chart,
    Folded,
    Selection,
    append_run,
    chart,
    fold,
    fold_chart,
    run_start_ns,
)
from heaptrace.errors import RecordingError, UsageError
from heaptrace.formats.folded import parse_folded_lines
from heaptrace.formats.textinput import input_lines
from heaptrace.recording import Recording
from heaptrace.units import human

SQLITE_MAGIC = b"SQLite format 3\x00"
KIND_LABELS = {"growth": "committed growth (brk+mmap+mremap+mprotect)",
               "all": "every call (brk+mmap+munmap+mremap+madvise+mprotect)"}


@dataclass
class Profile:
    folded: Folded
    description: str  # for the subtitle: what was selected, how much
    chart: Optional[Chart] = None  # the same bytes in time order, when asked for
    held_when: Optional[str] = None  # held bytes: "at exit", "at peak", "at the end of tracing"




def is_recording(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror}") from None


def load_profile(path: str, sel: Selection, at: Optional[str] = None,
                 in_time_order: bool = False) -> Profile:
    """A recording (selection applied) or a folded file (read as is). `in_time_order`
    also gives the chart: events (or for `at`, the held bytes) in the order they came."""
    if os.path.isfile(path) and not is_recording(path):
        if at is not None or sel != Selection(process_names=sel.process_names):
            raise UsageError(f"{path} is a folded file: --event, --retained, --at, --pid, "
                             "--from and --to apply to recordings only")
        return folded_file(path)
    with Recording(path) as rec:
        if at is None:
            runs = chart(rec, sel) if in_time_order else None
            folded = fold_chart(runs) if runs is not None else fold(rec, sel)
            return Profile(folded, describe(rec, sel, folded.values()), runs)
        result = retained(rec, sel, at)
        runs = held_chart(rec, result, sel.process_names) if in_time_order else None
        return Profile(result.folded, describe_held(rec, sel, result, result.folded.values()),
                       runs, result.when)


def folded_file(path: str) -> Profile:
    """A folded file: its sum per stack, and its lines in file order as the chart."""
    lines = parse_folded_lines(input_lines(path), path)
    runs: Chart = []
    for stack, count in lines:
        append_run(runs, stack, count)
    folded = fold_chart(runs)
    return Profile(folded, f"{human(sum(folded.values()))} in {len(folded):,} stacks", runs)


def describe_held(rec: Recording, sel: Selection, result: Retained,
                  counts: Collection[int]) -> str:
    """describe() for retained bytes, with when the peak was and what matched nothing."""
    parts = [describe(rec, sel, counts, f"held {result.when}")]
    if result.moment_ns is not None:
        parts.append(f"peak {(result.moment_ns - run_start_ns(rec)) / 1e9:.3f} s into the run")
    if result.unmatched:
        parts.append(f"{human(result.unmatched)} released that no traced call allocated")
    return "; ".join(parts)


def describe(rec: Recording, sel: Selection, counts: Collection[int], what: str = "") -> str:
    """E.g. "growth (brk+mmap+mremap) of pid 42: 12.3 MiB in 57 stacks", from the count
    of each stack."""
    words: List[str] = [what or KIND_LABELS.get(sel.kind, sel.kind)]
    if what and sel.kind != "growth":
        words.append(f"({sel.kind})")
    if sel.pid is not None:
        words.append(f"of pid {sel.pid}")
    if sel.start_s is not None or sel.end_s is not None:
        words.append(f"from {sel.start_s or 0:g} s to {_end(sel)}")
    text = f"{' '.join(words)}: {human(sum(counts))} in {len(counts):,} stacks"
    lost = rec.meta().lost_events
    return text + (f"; {lost:,} events lost, some stacks missing" if lost else "")


def _end(sel: Selection) -> str:
    return "the end" if sel.end_s is None else f"{sel.end_s:g} s"
