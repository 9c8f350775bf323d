"""The short report `heaptrace run` prints on stderr when the target has finished."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, TextIO

from heaptrace.analysis.coverage import StackCoverage
from heaptrace.events import KindTotals, Rss, committed_growth, mapped_apart
from heaptrace.render.terminal import printable
from heaptrace.units import human


def render_summary(
    totals: Dict[str, KindTotals], path: str, lost: int, events: int, out: TextIO,
    stacks: Optional[StackCoverage] = None, peak_rss: Optional[int] = None,
    peak_split: Optional[Rss] = None, counters: Optional[Dict[str, int]] = None,
    notes: Sequence[str] = (),
) -> None:
    out.write("heaptrace: what the traced processes took from the kernel and gave back\n")
    out.write(f"  {'kind':<8} {'calls':>10} {'failed':>7} {'bytes':>16}  {'released':>12}\n")
    for kind, t in totals.items():
        if t.calls:
            out.write(f"  {kind:<8} {t.calls:>10,} {t.failed:>7,} {t.bytes:>16,}  "
                      f"{t.released:>12,}\n")
    growth = committed_growth(totals)
    out.write(f"  growth {human(growth)} ({growth:,} bytes) committed: brk + committed mmaps + "
              f"anonymous mremap growth + mprotect commits, in {events:,} events\n")
    apart = mapped_apart(totals)
    if any(apart.values()):
        out.write("  mapped apart (not growth): " + ", ".join(
            f"{label} {human(n)}" for label, n in apart.items()) + "\n")
    if peak_rss and peak_split is not None:
        out.write(f"  peak RSS {human(peak_rss)}, exact (anon {human(peak_split.anon)}, file "
                  f"{human(peak_split.file)}, shmem {human(peak_split.shmem)})\n")
    resident = totals.get("resident")
    if resident is not None and resident.bytes:
        out.write(f"  made resident {human(resident.bytes)} (first touch: heaptrace flame "
                  "--event resident)\n")
    if stacks is not None and stacks.events_total:
        out.write(f"  stacks: {stacks.whole_share:.1%} of bytes with whole stacks, "
                  f"{stacks.unsymbolized_share:.1%} of frames without a symbol\n")
        if stacks.stacks_cut:
            out.write(f"  {stacks.stacks_cut:,} stacks cut short: the flame graph shows them "
                      "under a [truncated] frame\n")
    for note in notes:
        out.write(f"  note: {note}\n")
    if lost:
        out.write(f"  warning: {lost:,} events lost from the per-event stream (their stacks are "
                  "missing; the totals above are exact)\n")
    unstacked, unfollowed = (counters or {}).get("resident_lost", 0), \
        (counters or {}).get("spaces_full", 0)
    if unstacked:
        out.write(f"  warning: {unstacked:,} resident increments found the per-stack sums full "
                  "(their bytes are in the totals above, in no stack)\n")
    if unfollowed:
        out.write(f"  warning: {unfollowed:,} RSS changes of address spaces not followed (the "
                  "table of spaces was full): peak RSS and resident may be short\n")
    path = printable(path)
    out.write(f"Wrote {path}\n")
    out.write(f"  next: heaptrace report {path}   heaptrace flame {path} > flame.svg\n")
