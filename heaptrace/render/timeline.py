"""Memory over time, three ways: a text table, JSON, and an SVG line chart (held bytes, RSS
and its anon part as lines; taken, given back and made resident as bars) filled into
render/assets/timeline.svg."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from typing import Dict, Iterable, List, Optional, TextIO, Tuple

from heaptrace.analysis.timeline import Bucket, Timeline, nice_interval
from heaptrace.events import Rss
from heaptrace.render.stackcolumn import shortest_fit
from heaptrace.render.svg import asset, escape, fill_template
from heaptrace.render.terminal import one_line, printable
from heaptrace.units import UNITS, human

EMPTY = "no memory calls and no RSS in this recording"
TEXT_WIDTH = 100  # the text table's lines
HEADER = ("time (s)", "taken", "given back", "held", "RSS", "resident", "calls")
COLUMN = 11  # width of each number column


def decimals(interval_s: float) -> int:
    """Digits after the point that show every bucket boundary exactly (0.25 -> 2)."""
    d = 0
    while d < 9 and abs(round(interval_s, d) - interval_s) > 1e-9:
        d += 1
    return d


def span(b: Bucket, digits: int) -> str:
    return f"{b.start_s:.{digits}f}-{b.end_s:.{digits}f}"


def rss_text(rss: Optional[int]) -> str:
    return "-" if rss is None else human(rss)


def split_text(rss: Rss) -> str:
    return f"anon {human(rss.anon)}, file {human(rss.file)}, shmem {human(rss.shmem)}"


def rss_lines(tl: Timeline) -> List[str]:
    """"peak RSS 398.3 MiB at 6.5 s: anon ..., file ..., shmem ..." and what became resident."""
    if tl.peak_rss is None or tl.peak_rss_split is None:
        return ["RSS not recorded"]
    at = f" at {tl.peak_rss_s:.1f} s" if tl.peak_rss_s is not None else ""
    return [f"peak RSS {human(tl.peak_rss)}{at}: {split_text(tl.peak_rss_split)}",
            f"made resident {human(tl.resident)}: {split_text(tl.resident_split)}"]


def where(tl: Timeline) -> str:
    """What was recorded: the command, the pid, the bucket width."""
    pid = [f"pid {tl.pid}"] if tl.pid is not None else []
    parts = [one_line(tl.command, 80) or "recording", *pid]
    return f"{', '.join(parts)}; {tl.interval_s:g} s per bucket"


def summary(tl: Timeline) -> List[str]:
    calls = f"{tl.calls:,} call" + ("" if tl.calls == 1 else "s")
    return [f"taken {human(tl.taken)}, given back {human(tl.given)} in {calls}",
            f"held {'at the end of tracing' if tl.attached else 'at exit'} "
            f"{human(tl.held_at_exit)} (what flame --retained shows)",
            *rss_lines(tl)]


def growth_lines(tl: Timeline, width: int = TEXT_WIDTH) -> List[str]:
    """"most growth at 12.5-13.0 s: 48.0 MiB from main;download_package;..." and the next
    stacks that grew the held bytes in that bucket; C++ names as short as `width` needs."""
    if tl.growth_bucket is None:
        return ["held bytes never grew"]
    at = span(tl.buckets[tl.growth_bucket], decimals(tl.interval_s))
    line = f"most growth at {at} s (held +{human(tl.growth)})"
    if not tl.growers:
        return [line]
    first, *rest = tl.growers
    head = f"{line}: {human(first.nbytes)} from "
    lines = [head + shortest_fit(first.parts or [first.stack], width - len(head))]
    for g in rest:
        also = f"  also {human(g.nbytes)} from "
        lines.append(also + shortest_fit(g.parts or [g.stack], width - len(also)))
    return lines


def table_rows(tl: Timeline) -> Iterable[str]:
    digits = decimals(tl.interval_s)
    width = max(len(HEADER[0]), *(len(span(b, digits)) for b in tl.buckets))
    yield HEADER[0].rjust(width) + "".join(h.rjust(COLUMN) for h in HEADER[1:])
    for b in tl.buckets:
        cells = (human(b.taken), human(b.given), human(b.held), rss_text(b.rss),
                 human(b.resident), f"{b.calls:,}")
        yield span(b, digits).rjust(width) + "".join(c.rjust(COLUMN) for c in cells)


def render_text(tl: Timeline, out: TextIO) -> None:
    out.write(f"heaptrace timeline: {where(tl)}\n")
    if tl.empty:
        out.write(f"{EMPTY}\n")
        return
    for line in (*table_rows(tl), "", *summary(tl), *growth_lines(tl)):
        out.write(printable(line) + "\n")


def render_json(tl: Timeline, out: TextIO) -> None:
    data = asdict(tl)
    data["empty"] = tl.empty
    json.dump(data, out, indent=2)
    out.write("\n")


# --- SVG -------------------------------------------------------------------------------

WIDTH, HEIGHT = 1200, 520
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 95, 60  # the plot area's margins
KEY_Y = 68  # the legend's row, under the title lines
TITLE_PX, NOTE_PX = 17, 12  # font sizes of the title and of the lines under it (timeline.css)
CHAR_EM = 0.62  # Verdana's widest common average character width, in ems



def nice_bytes(top: int, ticks: int = 5) -> int:
    """A tick step for the byte axis: 1, 2, 2.5 or 5 x 10^k of a binary unit."""
    unit = 1024 ** min(max(int(math.log(max(top, 1), 1024)), 0), len(UNITS) - 1)
    return max(int(nice_interval(top / unit, ticks) * unit), 1)


class Plot:
    """Pixels from seconds and bytes."""

    def __init__(self, tl: Timeline, width: int, height: int) -> None:
        self.tl, self.width, self.height = tl, width, height
        self.x0, self.x1 = LEFT, width - RIGHT
        self.y0, self.y1 = height - BOTTOM, TOP  # y0 is the zero line
        self.seconds = tl.buckets[-1].end_s or 1.0
        values = [v for b in tl.buckets
                  for v in (b.taken, b.given, b.held, b.rss or 0, b.resident)]
        self.step = nice_bytes(max(values, default=0) or 1)
        self.top = self.step * max(math.ceil(max(values, default=0) / self.step), 1)

    def x(self, seconds: float) -> float:
        return self.x0 + (self.x1 - self.x0) * seconds / self.seconds

    def y(self, nbytes: int) -> float:
        return self.y0 - (self.y0 - self.y1) * nbytes / self.top


def axes(p: Plot) -> Iterable[str]:
    """Gridlines with byte labels, second labels under the x axis, axis titles."""
    for tick in range(0, p.top + 1, p.step):
        y = p.y(tick)
        yield (f'<line class="grid" x1="{p.x0}" y1="{y:.1f}" x2="{p.x1}" y2="{y:.1f}"/>'
               f'<text class="ylabel" x="{p.x0 - 6}" y="{y + 4:.1f}">{human(tick)}</text>\n')
    step = nice_interval(p.seconds, 10)
    for i in range(int(p.seconds / step + 1e-9) + 1):
        x = p.x(i * step)
        yield (f'<line class="tick" x1="{x:.1f}" y1="{p.y0}" x2="{x:.1f}" y2="{p.y0 + 5}"/>'
               f'<text class="xlabel" x="{x:.1f}" y="{p.y0 + 20}">{round(i * step, 9):g}</text>\n')
    yield (f'<line class="axis" x1="{p.x0}" y1="{p.y0}" x2="{p.x1}" y2="{p.y0}"/>'
           f'<text class="xtitle" x="{(p.x0 + p.x1) / 2:g}" y="{p.y0 + 42}">'
           "seconds into the run</text>\n")


def bars(p: Plot) -> Iterable[str]:
    """Taken, given back and made resident: a third of each bucket each, from the zero line."""
    for b in p.tl.buckets:
        third = (p.x(b.end_s) - p.x(b.start_s)) / 3
        for i, (cls, value) in enumerate((("taken", b.taken), ("given", b.given),
                                          ("resident", b.resident))):
            if value:
                x, y = p.x(b.start_s) + i * third, p.y(value)
                yield (f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{third:.1f}"'
                       f' height="{p.y0 - y:.1f}"/>\n')


def held_points(p: Plot) -> List[Tuple[float, float]]:
    """Held bytes at the end of each bucket, starting from nothing at 0 s."""
    return [(p.x(0), p.y(0))] + [(p.x(b.end_s), p.y(b.held)) for b in p.tl.buckets]


def rss_points(p: Plot, anon: bool = False) -> List[Tuple[float, float]]:
    """The largest RSS of each bucket (or its anon part), at the bucket's middle."""
    return [(p.x((b.start_s + b.end_s) / 2), p.y(b.rss_split.anon if anon else b.rss))
            for b in p.tl.buckets if b.rss is not None and b.rss_split is not None]


def polyline(cls: str, points: List[Tuple[float, float]]) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>' for x, y in points)
    return f'<polyline class="{cls}" points="{coords}"/>{dots}\n'


def bucket_info(b: Bucket, digits: int) -> str:
    calls = f"{b.calls:,} call" + ("" if b.calls == 1 else "s")
    rss = f" ({split_text(b.rss_split)})" if b.rss_split is not None else ""
    return (f"{span(b, digits)} s: taken {human(b.taken)}, given back {human(b.given)}, "
            f"held {human(b.held)}, RSS {rss_text(b.rss)}{rss}, made resident "
            f"{human(b.resident)}, {calls}")


def hover(p: Plot) -> Iterable[str]:
    """A see-through column over each bucket whose title tells its numbers."""
    digits = decimals(p.tl.interval_s)
    for b in p.tl.buckets:
        x, w = p.x(b.start_s), p.x(b.end_s) - p.x(b.start_s)
        yield (f'<rect class="hover" x="{x:.1f}" y="{p.y1}" width="{w:.1f}"'
               f' height="{p.y0 - p.y1}"><title>{escape(bucket_info(b, digits))}</title></rect>\n')


def chart(tl: Timeline, width: int, height: int) -> str:
    if tl.empty:
        return f'<text class="message" x="{width / 2:g}" y="{height / 2:g}">{EMPTY}</text>\n'
    p = Plot(tl, width, height)
    parts = [*axes(p), *bars(p), polyline("held", held_points(p))]
    if rss_points(p):
        parts.append(polyline("rss", rss_points(p)))
        parts.append(polyline("anon", rss_points(p, anon=True)))
    return "".join(parts + list(hover(p)))


def legend() -> str:
    """Colour keys in one row over the plot, each as wide as its label (about 7 px a
    character at the 12 px font)."""
    items = (("held", "held by live images"), ("rss", "RSS"), ("anon", "RSS anon"),
             ("taken", "taken"), ("given", "given back"), ("resident", "made resident"))
    left, out = LEFT, []
    for cls, label in items:
        out.append(f'<rect class="{cls} key" x="{left}" y="{KEY_Y}" width="14" height="10"/>'
                   f'<text class="legend" x="{left + 18}" y="{KEY_Y + 9}">{label}</text>')
        left += 18 + 7 * len(label) + 24
    return "".join(out) + "\n"


def fitted(text: str, width: int, font_px: float) -> Tuple[str, str]:
    """(what fits in `width` pixels at `font_px`, cut with "…"; the whole text for the
    element's <title>), both escaped."""
    chars = max(int((width - 2 * RIGHT) / (font_px * CHAR_EM)), 4)
    shown = text if len(text) <= chars else text[: chars - 1] + "…"
    return escape(shown), escape(text)


def template_values(tl: Timeline, width: int, height: int) -> Dict[str, str]:
    chars = int((width - 2 * RIGHT) / (NOTE_PX * CHAR_EM))
    note = "" if tl.empty else growth_lines(tl, chars)[0]
    title = fitted(f"Memory over time: {where(tl)}", width, TITLE_PX)
    subtitle = fitted("" if tl.empty else "; ".join(summary(tl)), width, NOTE_PX)
    notes = fitted(note, width, NOTE_PX)[0], escape(  # full names in the title
        "" if tl.empty else growth_lines(tl, sys.maxsize)[0])
    return {
        "width": str(width), "height": str(height), "center": f"{width / 2:g}",
        "title": title[0], "title_full": title[1], "subtitle": subtitle[0],
        "subtitle_full": subtitle[1], "note": notes[0], "note_full": notes[1],
        "desc": escape("\n".join(growth_lines(tl, sys.maxsize)) if not tl.empty else EMPTY),
        "css": asset("timeline.css"), "legend": "" if tl.empty else legend(),
        "chart": chart(tl, width, height),
    }


def render_svg(tl: Timeline, out: TextIO, width: int = WIDTH, height: int = HEIGHT) -> None:
    """Write the SVG; {{tokens}} are replaced in one pass, so nothing inserted is scanned."""
    values = template_values(tl, width, height)
    fill_template("timeline.svg", values, out)
