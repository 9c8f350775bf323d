"""The interactive flame graph SVG, in two steps: `build()` lays out typed frame rectangles
from a folded profile, `render()` fills the template in render/assets/ with them.

Frames hold byte counts (`start`, `value`); pixels are computed only when rendering, and the
page script (assets/flamegraph.js) redraws from the same counts when zooming, so zoomed
widths are exact. Frames narrower than --minwidth are merged into one grey box per parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from itertools import accumulate
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, TextIO, Tuple, Union

from heaptrace.errors import UsageError
from heaptrace.render.palettes import (
    BACKGROUNDS,
    DEFAULT_BACKGROUND,
    MERGED_FILL,
    SEARCH_FILL,
    diff_color,
    frame_color,
)
from heaptrace.units import human

Stack = Tuple[str, ...]
XPAD = 10  # left and right margin
FRAMEPAD = 1  # vertical gap between frames
ROOT = "all"


@dataclass
class FlameOptions:
    """The look of the graph; names and defaults follow flamegraph.pl's options."""

    title: Optional[str] = None
    subtitle: str = ""
    countname: str = "bytes"
    colors: str = "mem"
    width: int = 1200
    height: int = 16  # of one frame, as flamegraph.pl's --height
    minwidth: str = "0.1"  # pixels, or a percentage of the width ("0.5%")
    fontsize: float = 12.0
    fontwidth: float = 0.59  # average character width / font size, to fit labels
    inverted: bool = False
    reverse: bool = False
    hash: bool = False
    negate: bool = False  # differential: widths from BEFORE instead of AFTER
    nametype: str = "Function:"


@dataclass(frozen=True)
class FrameRect:
    """One box: `value` bytes starting `start` bytes from the left, `depth` levels from the
    root. `delta` (after - before) is set in differential graphs; `merged` > 0 when the box
    stands for that many frames too narrow to draw."""

    name: str
    depth: int
    start: int
    value: int
    delta: Optional[int] = None
    merged: int = 0


@dataclass
class FlameGraph:
    options: FlameOptions
    frames: List[FrameRect] = field(default_factory=list)
    total: int = 0
    depth: int = 0  # deepest frame
    merged: int = 0  # frames too narrow to draw, merged or dropped
    max_delta: int = 0
    message: str = ""  # shown instead of frames when there is nothing to draw

    @property
    def differential(self) -> bool:
        return bool(self.frames) and self.frames[0].delta is not None


def min_count(opts: FlameOptions, total: int) -> float:
    """--minwidth (pixels or "N%" of the drawing width) converted to bytes."""
    text = str(opts.minwidth).strip()
    try:
        amount = float(text.rstrip("%"))
    except ValueError:
        raise UsageError(f"--minwidth takes pixels or a percentage, not {text!r}") from None
    pixels = (opts.width - 2 * XPAD) * amount / 100 if text.endswith("%") else amount
    return total * pixels / max(opts.width - 2 * XPAD, 1)


class _Layout:
    """Lays out sorted stacks without building a tree: the stacks under one frame are a
    contiguous run of the sorted list, so a frame's bytes are a difference of prefix sums,
    and runs too narrow to draw are never looked into (that is what keeps 100k stacks fast).
    Siblings come in name order, as flamegraph.pl sorts them."""

    def __init__(self, graph: FlameGraph, items: List[Tuple[Stack, int, int]],
                 sign: Optional[int]) -> None:
        items.sort(key=lambda item: item[0])
        self.graph = graph
        self.stacks = [stack for stack, _, _ in items]
        self.values = list(accumulate((v for _, v, _ in items), initial=0))
        self.others = list(accumulate((o for _, _, o in items), initial=0))
        self.sign = sign  # None: not differential; else delta = sign * (value - other)
        self.threshold = 0.0

    def span(self, lo: int, hi: int) -> Tuple[int, Optional[int]]:
        """Bytes of stacks lo..hi, and their change in a differential graph."""
        value = self.values[hi] - self.values[lo]
        if self.sign is None:
            return value, None
        return value, self.sign * (value - (self.others[hi] - self.others[lo]))

    def run(self, opts: FlameOptions) -> None:
        value, delta = self.span(0, len(self.stacks))
        self.graph.total = value
        self.threshold = min_count(opts, value)
        self.graph.frames.append(FrameRect(ROOT, 0, 0, value, delta))
        todo = [(0, len(self.stacks), 0, 0)]
        while todo:
            todo.extend(self.children(*todo.pop()))

    def groups(self, lo: int, hi: int, index: int) -> Iterator[Tuple[str, int, int]]:
        """(name, lo, hi) of each child: stacks lo..hi share their frame at `index`.
        Stacks that end at the parent sort first and are skipped."""
        stacks = self.stacks
        while lo < hi and len(stacks[lo]) <= index:
            lo += 1
        while lo < hi:
            name, end = stacks[lo][index], lo + 1
            while end < hi and stacks[end][index] == name:
                end += 1
            yield name, lo, end
            lo = end

    def children(self, lo: int, hi: int, depth: int, start: int) -> List[Tuple[int, ...]]:
        drawn, narrow, narrow_lo_hi = [], 0, []
        for name, a, b in self.groups(lo, hi, depth):
            value, delta = self.span(a, b)
            if value >= self.threshold and value > 0:
                self.add(FrameRect(name, depth + 1, start, value, delta))
                drawn.append((a, b, depth + 1, start))
                start += value
            elif value > 0:
                narrow += 1
                narrow_lo_hi.append((a, b))
        self.merge(narrow, narrow_lo_hi, depth + 1, start)
        return drawn

    def merge(self, count: int, runs: List[Tuple[int, int]], depth: int, start: int) -> None:
        """One grey box for the children too narrow to draw, if together they are wide
        enough; either way they are counted for the subtitle."""
        self.graph.merged += count
        spans = [self.span(a, b) for a, b in runs]
        value = sum(v for v, _ in spans)
        if count and value >= self.threshold:
            delta = None if self.sign is None else sum(d for _, d in spans)
            name = f"[{count} narrow frames]"
            self.add(FrameRect(name, depth, start, value, delta, merged=count))

    def add(self, frame: FrameRect) -> None:
        self.graph.frames.append(frame)
        self.graph.depth = max(self.graph.depth, frame.depth)
        if frame.delta is not None:
            self.graph.max_delta = max(self.graph.max_delta, abs(frame.delta))


def build(
    profile: Mapping[Stack, Union[int, Tuple[int, int]]], opts: FlameOptions
) -> FlameGraph:
    """Frame rectangles for a folded profile ({stack: bytes}) or a differential one
    ({stack: (before, after)}: widths from after, or before with `opts.negate`)."""
    items = []
    for stack, count in profile.items():
        ordered = stack[::-1] if opts.reverse else stack
        if isinstance(count, tuple):
            before, after = count
            items.append((ordered, before, after) if opts.negate else (ordered, after, before))
        else:
            items.append((ordered, count, 0))
    items = [(s, max(v, 0), max(o, 0)) for s, v, o in items if v > 0 or o > 0]
    graph = FlameGraph(opts)
    is_diff = any(isinstance(c, tuple) for c in profile.values())
    _Layout(graph, items, (-1 if opts.negate else 1) if is_diff else None).run(opts)
    if graph.total <= 0:
        graph.frames = []
        graph.message = "No stacks to show: the selection holds no bytes"
    return graph


# --- rendering ---------------------------------------------------------------------------

_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_TOKEN = re.compile(r"\{\{(\w+)\}\}")


def escape(text: str) -> str:
    """Text safe inside XML elements and attributes; characters XML cannot carry at all
    become U+FFFD."""
    return _BAD_XML.sub("\ufffd", text).translate(_ESCAPES)


def amount(count: int, countname: str) -> str:
    text = f"{count:,} {countname}"
    return f"{text}, {human(count)}" if countname == "bytes" else text


def frame_info(frame: FrameRect, graph: FlameGraph) -> str:
    """The tooltip and mouse-over line: `name (1,234,567 bytes, 1.2 MiB, 12.34%)`; in a
    differential graph also the other count and the change. Never contains " (" after the
    name: the page script cuts the name at the last " (" to search it."""
    opts, total = graph.options, graph.total
    info = f"{amount(frame.value, opts.countname)}, {100 * frame.value / total:.2f}%"
    if frame.delta is not None:
        was = "now" if opts.negate else "was"
        other = frame.value + frame.delta if opts.negate else frame.value - frame.delta
        info += (f"; {was} {other:,} {opts.countname}: {frame.delta:+,} {opts.countname},"
                 f" {100 * frame.delta / total:+.2f}%")
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


def _fill(frame: FrameRect, graph: FlameGraph, cache: Dict[str, str]) -> str:
    if frame.merged:
        return MERGED_FILL
    if frame.delta is not None:
        return diff_color(frame.delta, graph.max_delta)
    color = cache.get(frame.name)
    if color is None:
        color = cache[frame.name] = frame_color(frame.name, graph.options.colors,
                                                graph.options.hash)
    return color


def frame_elements(graph: FlameGraph, geo: _Geometry) -> Iterable[str]:
    """One <g> per frame: tooltip, box, label. data-x/-w/-d are the byte offset, bytes and
    depth the page script zooms with."""
    opts, cache = graph.options, {}
    text_dy = (opts.height - FRAMEPAD) / 2 + opts.fontsize / 3
    for f in graph.frames:
        x, w, y = XPAD + f.start * geo.scale, f.value * geo.scale, geo.y(f.depth)
        yield (f'<g data-x="{f.start}" data-w="{f.value}" data-d="{f.depth}">'
               f"<title>{escape(frame_info(f, graph))}</title>"
               f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{opts.height - FRAMEPAD}"'
               f' fill="{_fill(f, graph, cache)}"/>'
               f'<text x="{x + 3:.2f}" y="{y + text_dy:.1f}">'
               f"{escape(fit_label(f.name, w, opts))}</text></g>\n")


def default_title(graph: FlameGraph) -> str:
    if graph.differential:
        return "Differential Memory Flame Graph"
    return "Memory Icicle Graph" if graph.options.inverted else "Memory Flame Graph"


def _asset(name: str) -> str:
    return resources.files("heaptrace.render").joinpath("assets", name).read_text("utf-8")


def template_values(graph: FlameGraph, geo: _Geometry) -> Dict[str, str]:
    opts = graph.options
    palette = "diff" if graph.differential else opts.colors
    bg_top, bg_bottom = BACKGROUNDS.get(palette, DEFAULT_BACKGROUND)
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
        "css": _asset("flamegraph.css"), "js": _asset("flamegraph.js"),
    }


def render(graph: FlameGraph, out: TextIO) -> None:
    """Write the SVG. The template's {{tokens}} are replaced in one pass, so nothing
    inserted (script, style, names) is ever scanned for tokens itself."""
    geo = _Geometry(graph)
    values = template_values(graph, geo)
    values["frames"] = "".join(frame_elements(graph, geo))
    out.write(_TOKEN.sub(lambda m: values[m.group(1)], _asset("flamegraph.svg")))
