"""The flame graph's second step: `render()` fills the SVG template in render/assets/ with
the frames, colours and text that `build()` (render/flamedata.py) laid out. Pixels are
computed here, from the byte counts of the frames.
"""

from __future__ import annotations

from typing import Dict, Iterable, TextIO

from heaptrace.render.flamedata import (  # noqa: F401  (build is imported from here too)
    XPAD,
    FlameGraph,
    FlameInput,
    FlameOptions,
    FrameRect,
    build,
)
from heaptrace.render.palettes import MERGED_FILL, SEARCH_FILL, diff_color
from heaptrace.render.svg import asset, escape, fill_template
from heaptrace.units import human

FRAMEPAD = 1  # vertical gap between frames



def amount(count: int, countname: str) -> str:
    text = f"{count:,} {countname}"
    return f"{text}, {human(count)}" if countname == "bytes" else text


def frame_info(frame: FrameRect, graph: FlameGraph) -> str:
    """The tooltip and mouse-over line: `name (1,234,567 bytes, 1.2 MiB, 12.34%)`; in a
    differential graph also before, after and the change, in a flame chart when (in
    seconds into the run). Never contains " (" after the name: the page script cuts the
    name at the last " (" to search it."""
    opts, total = graph.options, graph.total
    info = f"{amount(frame.value, opts.countname)}, {100 * frame.value / total:.2f}%"
    if frame.delta is not None and frame.before is not None:
        after = frame.before + frame.delta
        info += (f"; before {frame.before:,}, after {after:,} {opts.countname}: "
                 f"{frame.delta:+,} {opts.countname}, {100 * frame.delta / total:+.2f}%")
    if frame.when is not None:
        first, last = frame.when
        info += f", at {first:.3f} s" if first == last else f", {first:.3f}-{last:.3f} s"
    return f"{frame.name} ({info})"


def fit_label(name: str, width_px: float, opts: FlameOptions) -> str:
    """As much of the name as fits, cut with ".."; nothing under three characters."""
    chars = int((width_px - 3) / (opts.fontsize * opts.fontwidth))
    if chars < 3:
        return ""
    return name if len(name) <= chars else name[: chars - 2] + ".."


class _Geometry:
    """Pixels from counts: x from the byte offset, y from the depth."""

    def __init__(self, graph: FlameGraph) -> None:
        opts = graph.options
        self.opts = opts
        self.scale = (opts.width - 2 * XPAD) / graph.total if graph.total else 0.0
        self.top = opts.fontsize * 3 + (opts.fontsize * 2 if self.subtitle(graph) else 0)
        self.bottom = opts.fontsize * 2 + 10
        rows = graph.depth + 1 if graph.frames else 3
        self.height = int(rows * opts.height + self.top + self.bottom)

    @staticmethod
    def subtitle(graph: FlameGraph) -> str:
        note, minwidth = "", str(graph.options.minwidth)
        if graph.merged:
            unit = "" if minwidth.endswith("%") else " px"
            note = f"{graph.merged:,} frames narrower than {minwidth}{unit} merged into grey boxes"
        return "; ".join(t for t in (graph.options.subtitle, note) if t)

    def y(self, depth: int) -> float:
        if self.opts.inverted:
            return self.top + depth * self.opts.height + FRAMEPAD
        return self.height - self.bottom - (depth + 1) * self.opts.height + FRAMEPAD


def _fill(frame: FrameRect, graph: FlameGraph) -> str:
    if frame.merged:
        return MERGED_FILL
    if frame.delta is not None:
        return diff_color(frame.delta, graph.max_delta)
    return graph.colors[frame.name]


def frame_elements(graph: FlameGraph, geo: _Geometry) -> Iterable[str]:
    """One <g> per frame: tooltip, box, label. data-x/-w/-d are the byte offset, bytes and
    depth the page script zooms with."""
    opts = graph.options
    text_dy = (opts.height - FRAMEPAD) / 2 + opts.fontsize / 3
    for f in graph.frames:
        x, w, y = XPAD + f.start * geo.scale, f.value * geo.scale, geo.y(f.depth)
        yield (f'<g data-x="{f.start}" data-w="{f.value}" data-d="{f.depth}">'
               f"<title>{escape(frame_info(f, graph))}</title>"
               f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{opts.height - FRAMEPAD}"'
               f' fill="{_fill(f, graph)}"/>'
               f'<text x="{x + 3:.2f}" y="{y + text_dy:.1f}">'
               f"{escape(fit_label(f.name, w, opts))}</text></g>\n")


HELD_TITLES = {"exit": "Bytes held at exit", "peak": "Bytes held at peak"}


def default_title(graph: FlameGraph) -> str:
    """What is shown: growth or bytes held, a graph or a chart, one profile or a change."""
    opts = graph.options
    held = HELD_TITLES.get(opts.view)
    if held and opts.held_when:
        held = f"Bytes held {opts.held_when}"
    if graph.differential:
        what = f"{held}, before vs after" if held else "Differential Memory Flame Graph"
        return f"{what}: red grew, blue shrank" + (" (widths: before)" if opts.negate else "")
    if held:
        return held + (", in allocation order" if opts.flamechart else "")
    if opts.flamechart:
        return "Memory Flame Chart"
    return "Memory Icicle Graph" if opts.inverted else "Memory Flame Graph"



def template_values(graph: FlameGraph, geo: _Geometry) -> Dict[str, str]:
    opts = graph.options
    bg_top, bg_bottom = graph.background
    return {
        "width": str(opts.width), "height": str(geo.height), "xpad": str(XPAD),
        "fontsize": f"{opts.fontsize:g}", "titlesize": f"{opts.fontsize + 5:g}",
        "fontwidth": f"{opts.fontwidth:g}", "inverted": "1" if opts.inverted else "0",
        "searchcolor": SEARCH_FILL,
        "nametype": escape(opts.nametype), "bgtop": bg_top, "bgbottom": bg_bottom,
        "center": f"{opts.width / 2:g}", "title_y": f"{opts.fontsize * 2:g}",
        "subtitle_y": f"{opts.fontsize * 4:g}",
        "details_y": f"{geo.height - opts.fontsize / 2 - 5:g}",
        "right_x": str(opts.width - XPAD), "search_x": f"{opts.width - XPAD - 2 * opts.fontsize:g}",
        "message_y": f"{geo.height / 2:g}",
        "title": escape(opts.title or default_title(graph)),
        "subtitle": escape(geo.subtitle(graph)), "message": escape(graph.message),
        "fonttype": escape(f"{opts.fonttype}, sans-serif"), "notes": escape(opts.notes),
        "css": asset("flamegraph.css"), "js": asset("flamegraph.js"),
    }


def render(graph: FlameGraph, out: TextIO) -> None:
    """Write the SVG. The template's {{tokens}} are replaced in one pass, so nothing
    inserted (script, style, names) is ever scanned for tokens itself."""
    geo = _Geometry(graph)
    values = template_values(graph, geo)
    values["frames"] = "".join(frame_elements(graph, geo))
    fill_template("flamegraph.svg", values, out)
