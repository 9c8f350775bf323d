"""`heaptrace histogram`: DTrace quantize() tables and totals, or JSON."""

from __future__ import annotations

import json
from typing import Dict, List, Optional, TextIO

from heaptrace.analysis.quantize import rows
from heaptrace.events import SPEC, KindTotals
from heaptrace.recording import RunMeta
from heaptrace.render.terminal import printable

BAR_WIDTH = 40
CLASS_LABELS = {"mmap": "Bytes mapped {}", "mremap": "Bytes grown {}"}


def quantize_table(title: str, buckets: Dict[int, int]) -> List[str]:
    """Lines of one quantize() aggregation exactly as DTrace prints it (trailing blanks cut)."""
    table = rows(buckets)
    total = sum(c for _, c in table)
    lines = [f"  {title}", f"{'value':>16} {'------------- Distribution -------------':>41} count"]
    for value, count in table:
        depth = int(count * BAR_WIDTH / total + 0.5) if total else 0
        bar = "@" * depth + " " * (BAR_WIDTH - depth)
        lines.append(f"{value:>16} |{bar} {count}")
    return lines


def total_line(label: str, value: int) -> str:
    """A printa() line of a sum() or count() aggregation keyed by a string."""
    return f"  {label:<50} {value:>16}"


def kind_lines(kind: str, t: KindTotals, meta: Optional[RunMeta] = None) -> List[str]:
    """One kind's table and totals. An imported recording's meta may give the table's title
    (titles), totals its source could not know (unknown_totals) and other printa() lines
    (other_totals), so the histogram prints what the source printed."""
    meta = meta or RunMeta()
    spec = SPEC.get(kind)
    title = meta.titles.get(kind) or (spec.title if spec else f"{kind}() sizes")
    unknown = meta.unknown_totals.get(kind, [])
    lines = quantize_table(title, t.buckets) if t.buckets else []
    if lines:
        lines.append("")
    if "bytes" not in unknown:
        lines.append(total_line(spec.bytes_label if spec else "Total bytes allocated", t.bytes))
    if "calls" not in unknown:
        lines.append(total_line(f"Total number of {kind}() calls", t.calls))
    if t.failed:
        lines.append(total_line(f"Failed {kind}() calls", t.failed))
    if t.released:
        label = ("Total bytes released (committed made PROT_NONE)" if kind == "mprotect"
                 else "Total bytes released by shrinking")
        lines.append(total_line(label, t.released))
    if kind in CLASS_LABELS and t.bytes:
        lines.extend(total_line(CLASS_LABELS[kind].format(cls), nbytes)
                     for cls, nbytes in t.classes.items())
    others = meta.other_totals.get(kind, [])
    lines.extend(total_line(label, value) for label, value in others)
    return lines


def render_text(
    totals: Dict[str, KindTotals], out: TextIO, meta: Optional[RunMeta] = None,
) -> None:
    """Every kind's table and totals, separated by blank lines as DTrace separates them."""
    meta = meta or RunMeta()
    for kind, t in totals.items():
        lines = kind_lines(kind, t, meta)  # titles and labels may come from an imported file
        out.write("\n" + "\n".join(printable(line.rstrip()) for line in lines) + "\n")
    if meta.lost_events:
        out.write(f"\n  {meta.lost_events} events lost from the per-event stream "
                  "(totals above are exact; some stacks are missing)\n")
    if meta.complete is False and meta.incomplete_reason:
        out.write(f"\n  recording incomplete: {printable(meta.incomplete_reason)}; "
                  f"{meta.events_unwritten:,} events received were not written\n")
    elif meta.complete is False:
        out.write("\n  recording cut short (heaptrace did not finish): totals as of its last "
                  "checkpoint; run `heaptrace symbolize` for names\n")
    if meta.unfinished:
        out.write(f"\n  recording unfinished: {printable(meta.unfinished)}\n")


def to_json(totals: Dict[str, KindTotals], meta: Optional[RunMeta] = None) -> dict:
    unknown = meta.unknown_totals if meta is not None else {}
    events = {
        kind: {
            "calls": None if "calls" in unknown.get(kind, []) else t.calls,
            "bytes": None if "bytes" in unknown.get(kind, []) else t.bytes,
            "failed": t.failed,
            "released": t.released,
            "buckets": [{"value": v, "count": c} for v, c in rows(t.buckets)],
            **t.classes,
        }
        for kind, t in totals.items()
    }
    doc: dict = {"events": events}
    if meta is not None:
        doc["recording"] = meta.to_json()
    return doc


def render_json(totals: Dict[str, KindTotals], out: TextIO,
                meta: Optional[RunMeta] = None) -> None:
    json.dump(to_json(totals, meta), out, indent=2)
    out.write("\n")
