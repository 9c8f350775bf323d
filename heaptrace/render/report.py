"""`heaptrace report`: the one-screen text report (under 100 columns), or JSON.

Sections with nothing to show say so in one line: an imported recording has totals but no
processes, times or addresses; an empty one has nothing at all.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Iterable, List, Optional, TextIO

from heaptrace.analysis.report import KindRow, ProcessRow, Ranking, Report, RunInfo, StackRow
from heaptrace.events import GROWTH_KINDS, Rss
from heaptrace.render.stackcolumn import stack_column
from heaptrace.render.terminal import one_line, printable, printable_lines
from heaptrace.units import human

WIDTH = 100
STACK_WIDTH = WIDTH - 32  # what is left for the compact stack after bytes, share and calls
NAME_WIDTH = 16




def number(value: Optional[int]) -> str:
    return "?" if value is None else f"{value:,}"


def run_lines(run: RunInfo) -> List[str]:
    where = f" pid {run.pid} of" if run.pid is not None else ""
    head = f"heaptrace report:{where} {one_line(run.command, 70) or printable(run.path)}"
    facts = [f"source {run.source or 'unknown'}"]
    if run.imported:
        facts.append("imported (totals and stacks, no addresses to match frees to)")
    elif run.imported_from:
        facts.append(f"imported from {one_line(run.imported_from, 40)}")
    if run.kernel:
        facts.append(f"kernel {run.kernel}")
    if run.duration_s is not None:
        facts.append(f"{run.duration_s:.2f} s")
    if run.exit_code is not None:
        facts.append(f"exit code {run.exit_code}")
    return [head, "  " + ", ".join(facts), *state_lines(run)]


def state_lines(run: RunInfo) -> List[str]:
    lines = []
    if run.complete is False and run.incomplete_reason:
        lines.append(f"  INCOMPLETE: {one_line(run.incomplete_reason, 90)}")
        if run.unwritten_events:
            lines.append(f"  {run.unwritten_events:,} events received were not written; the "
                         "run was not recorded after that")
    elif run.complete is False:
        lines.append("  CUT SHORT: heaptrace did not finish; this is what was committed")
    if run.lost_events:
        lines.append(f"  {run.lost_events:,} events lost from the per-event stream: stacks "
                     "below miss them, the totals are exact")
    elif run.complete:
        lines.append("  complete, no events lost")
    if run.unfinished:
        lines.append(f"  UNFINISHED: {one_line(run.unfinished, 120)}")
    return lines


def totals_lines(report: Report) -> List[str]:
    rows = [r for r in report.totals if r.calls is None or r.calls or r.bytes]
    if not rows:
        return ["  no memory calls recorded"]
    lines = [f"  {'kind':<8} {'calls':>10} {'failed':>7} {'bytes':>16} {'released':>14}"]
    lines += [kind_line(r) for r in rows]
    partial = [r.kind for r in rows if r.kind in GROWTH_KINDS and r.bytes is None]
    taken = f"at least {human(report.growth_total)}" if partial else human(report.growth_total)
    unknown = f"; {', '.join(partial)} bytes unknown" if partial else ""
    lines.append(f"  taken {taken} (committed growth{unknown})")
    if report.peak_rss is not None and report.peak_rss_split is not None:
        lines.append(f"  peak RSS {human(report.peak_rss)} ({split_text(report.peak_rss_split)}),"
                     " exact from the kernel's counters")
    return lines


def split_text(rss: Rss) -> str:
    return f"anon {human(rss.anon)}, file {human(rss.file)}, shmem {human(rss.shmem)}"


def kind_line(r: KindRow) -> str:
    return (f"  {r.kind:<8} {number(r.calls):>10} {r.failed:>7,} {number(r.bytes):>16} "
            f"{r.released:>14,}")


def held_when(run: RunInfo) -> str:
    return "at the end of tracing" if run.attached else "at exit"


def process_lines(report: Report) -> List[str]:
    if not report.processes:
        return ["  no processes in this recording"]
    head = f"  {'pid':>8}  {'name':<{NAME_WIDTH}} {'calls':>9} {'taken':>10} {'given back':>10}"
    held = "held at end" if report.run.attached else "held at exit"
    lines = [head + f" {held:>12} {'reserved':>10} {'file/shared':>11}"]
    for p in report.processes:
        lines.append(process_line(p))
        if p.peak_rss is not None and p.peak_rss_split is not None:
            lines.append(f"  {'':>8}  peak RSS {human(p.peak_rss)} ({split_text(p.peak_rss_split)})"
                         f", made resident {human(p.resident)}")
    return lines + ["  taken, given back, held: committed memory; reserved, file, shared: "
                    "mapped apart, never growth"]


def process_line(p: ProcessRow) -> str:
    name = one_line(" > ".join(p.names) or p.name, NAME_WIDTH)
    mapped = p.apart.get("file", 0) + p.apart.get("shared", 0)
    apart = f"{human(p.apart.get('reserved', 0)):>10} {human(mapped):>11}"
    return (f"  {p.pid:>8}  {name:<{NAME_WIDTH}} {p.calls:>9,} {human(p.taken):>10} "
            f"{human(p.given):>10} {'?' if p.held is None else human(p.held):>12} {apart}")


def ranking_lines(ranking: Ranking, empty: str) -> List[str]:
    if not ranking.known:
        return ["  not known: an imported recording has no addresses to match frees to"]
    if not ranking.rows:
        return [f"  {empty}"]
    lines = [f"  {'bytes':>10} {'share':>6} {'calls':>7}  stack (leaf-most own frames > "
             "allocator > syscall)"]
    columns = stack_column(ranking.rows, STACK_WIDTH)
    for row, column in zip(ranking.rows, columns):
        lines += stack_lines(row, column)
    if ranking.other_stacks:
        lines.append(f"  {human(ranking.other_bytes):>10} {ranking.other_share:>6.1%} "
                     f"{'':>7}  {ranking.other_stacks:,} other stacks")
    return lines


def stack_lines(row: StackRow, column: List[str]) -> List[str]:
    """The row's numbers and its stack; a stack too long for one line goes on below."""
    calls = "?" if row.calls is None else f"{row.calls:,}"
    first, *rest = column
    indent = " " * len(f"  {'':>10} {'':>6} {'':>7}  ")
    return ([f"  {human(row.bytes):>10} {row.share:>6.1%} {calls:>7}  {first}"]
            + [indent + line for line in rest])


def quality_lines(report: Report) -> List[str]:
    q = report.quality
    if q is None:
        return ["  no per-call events, so no stacks"]
    return [f"  {q.whole_share:.1%} of bytes with whole stacks, {q.unsymbolized_share:.1%} of "
            "frames without a symbol", f"  {q.events_with_stack:,} of {q.events:,} events "
            "have a stack (whole recording)"]


def sections(report: Report) -> Iterable[List[str]]:
    yield run_lines(report.run)
    yield ["Totals (exact, every traced process)", *totals_lines(report)]
    yield ["Processes", *process_lines(report)]
    g, h = report.growth, report.held
    yield [f"Top stacks by bytes taken ({human(g.total)} in all, from the per-call events)",
           *ranking_lines(g, "no per-call events with bytes taken")]
    held = f" ({human(h.total)} in all)" if h.known else ""
    when = held_when(report.run)
    yield [f"Top stacks by bytes still held {when}{held}",
           *ranking_lines(h, f"nothing was still held {when}")]
    r = report.resident
    if r.rows:
        yield [f"Top stacks by bytes made resident ({human(r.total)} in all: first touch; "
               "calls = pages)", *ranking_lines(r, "")]
    yield ["Stack quality", *quality_lines(report)]
    yield ["Next", *(f"  {printable(cmd)}" for cmd in report.next_commands)]


def render_text(report: Report, out: TextIO) -> None:
    text = "\n\n".join("\n".join(lines) for lines in sections(report))
    out.write(printable_lines(text) + "\n")


def render_json(report: Report, out: TextIO) -> None:
    json.dump(asdict(report), out, indent=2)
    out.write("\n")
