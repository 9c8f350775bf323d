"""The flame graph's first step: typed frame rectangles, colours and background laid out
from a folded profile (or, for a flame chart, from stacks in time order). Rendering them
into the SVG template is render/flamegraph.py's job.

Frames hold byte counts (`start`, `value`); pixels are computed only when rendering, and the
page script (assets/flamegraph.js) redraws from the same counts when zooming, so zoomed
widths are exact. Frames narrower than --minwidth are merged into grey boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from heaptrace.analysis.stacks import ChartRun
from heaptrace.errors import UsageError
from heaptrace.render.palettes import background, frame_color

Stack = Tuple[str, ...]
FlameInput = Union[Mapping[Stack, Union[int, Tuple[int, int]]], Sequence[ChartRun]]
Runs = List[Tuple[int, int]]  # [lo, hi) index ranges of the layout's stack list
Item = Tuple[Stack, int, int, int]  # stack, width, before and after bytes (0, 0: one profile)
Todo = Tuple[int, int, int, int]  # (lo, hi, depth, start) of a frame whose children are next
XPAD = 10  # left and right margin, in pixels
ROOT = "all"
VIEWS = ("growth", "exit", "peak")


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
    negate: bool = False  # differential: widths from BEFORE instead of the larger side
    nametype: str = "Function:"  # what the names are, before them in the mouse-over line
    fonttype: str = "Verdana"
    bgcolors: str = ""  # yellow, blue, green, grey or #rrggbb; "" = the palette's default
    flamechart: bool = False  # x is time order, not stacks merged in name order
    view: str = "growth"  # what the counts are: growth, or bytes held at "exit" / "peak"
    held_when: Optional[str] = None  # the held view's moment in words (Profile.held_when)
    random_seed: Optional[int] = None  # set: colours drawn at random from this seed
    palette_map: Optional[Dict[str, str]] = None  # colours pinned by name (--cp)
    notes: str = ""  # kept in the SVG's <desc>


@dataclass(frozen=True)
class FrameRect:
    """One box: `value` bytes starting `start` bytes from the left, `depth` levels from the
    root. `delta` (after - before) and `before` are set in differential graphs; `merged` > 0
    when the box stands for that many frames too narrow to draw; `when` (first, last seconds
    into the run) in flame charts of recordings."""

    name: str
    depth: int
    start: int
    value: int
    delta: Optional[int] = None
    merged: int = 0
    when: Optional[Tuple[float, float]] = None
    before: Optional[int] = None


@dataclass
class FlameGraph:
    options: FlameOptions
    frames: List[FrameRect] = field(default_factory=list)
    total: int = 0
    depth: int = 0  # deepest frame
    merged: int = 0  # frames too narrow to draw, merged or dropped
    max_delta: int = 0
    message: str = ""  # shown instead of frames when there is nothing to draw
    differential: bool = False
    colors: Dict[str, str] = field(default_factory=dict)  # fill by frame name
    background: Tuple[str, str] = ("#eeeeee", "#eeeeb0")  # gradient top, bottom


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

    def __init__(self, graph: FlameGraph, items: List[Item], differential: bool) -> None:
        self.graph = graph
        self.stacks = [item[0] for item in items]
        self.values = list(accumulate((item[1] for item in items), initial=0))
        self.befores = list(accumulate((item[2] for item in items), initial=0))
        self.afters = list(accumulate((item[3] for item in items), initial=0))
        self.differential = differential
        self.threshold = 0.0

    def sums(self, runs: Runs) -> Tuple[int, int, int]:
        """Width, before and after bytes of the stacks of `runs`."""
        return (sum(self.values[b] - self.values[a] for a, b in runs),
                sum(self.befores[b] - self.befores[a] for a, b in runs),
                sum(self.afters[b] - self.afters[a] for a, b in runs))

    def rect(self, name: str, depth: int, start: int, runs: Runs, merged: int = 0) -> FrameRect:
        """The box for the stacks of `runs`."""
        value, before, after = self.sums(runs)
        if not self.differential:
            return FrameRect(name, depth, start, value, merged=merged)
        return FrameRect(name, depth, start, value, after - before, merged, before=before)

    def run(self, opts: FlameOptions) -> None:
        root = self.rect(ROOT, 0, 0, [(0, len(self.stacks))])
        self.graph.total = root.value
        self.threshold = min_count(opts, root.value)
        self.graph.frames.append(root)
        todo: List[Todo] = [(0, len(self.stacks), 0, 0)]
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

    def children(self, lo: int, hi: int, depth: int, start: int) -> List[Todo]:
        drawn: List[Todo] = []
        narrow: Runs = []
        for name, a, b in self.groups(lo, hi, depth):
            value = self.values[b] - self.values[a]
            if value >= self.threshold and value > 0:
                self.add(self.rect(name, depth + 1, start, [(a, b)]))
                drawn.append((a, b, depth + 1, start))
                start += value
            elif value > 0:
                narrow.append((a, b))
        self.merge(narrow, depth + 1, start)
        return drawn

    def merge(self, runs: Runs, depth: int, start: int) -> None:
        """One grey box for frames too narrow to draw, if together they are wide enough;
        either way they are counted for the subtitle."""
        self.graph.merged += len(runs)
        if runs:
            box = self.rect(f"[{len(runs)} narrow frames]", depth, start, runs, len(runs))
            if box.value >= self.threshold:
                self.add(box)

    def add(self, frame: FrameRect) -> None:
        self.graph.frames.append(frame)
        self.graph.depth = max(self.graph.depth, frame.depth)
        if frame.delta is not None:
            self.graph.max_delta = max(self.graph.max_delta, abs(frame.delta))


class _ChartLayout(_Layout):
    """A flame chart: the stacks stay in time order and a frame spans consecutive stacks
    that share it (flamegraph.pl's flow() merges the same way), so x is the bytes that came
    before it. Narrow frames next to each other become one grey box where they are."""

    def __init__(self, graph: FlameGraph, runs: Sequence[ChartRun]) -> None:
        super().__init__(graph, [(r.stack, r.value, 0, 0) for r in runs], False)
        self.times = [(r.first_s, r.last_s) for r in runs]

    def rect(self, name: str, depth: int, start: int, runs: Runs, merged: int = 0) -> FrameRect:
        box = super().rect(name, depth, start, runs, merged)
        if runs[0][0] >= runs[-1][1]:
            return box  # the root of an empty chart
        first, last = self.times[runs[0][0]][0], self.times[runs[-1][1] - 1][1]
        if first is None or last is None:
            return box
        return FrameRect(box.name, depth, start, box.value, merged=merged, when=(first, last))

    def groups(self, lo: int, hi: int, index: int) -> Iterator[Tuple[str, int, int]]:
        """Like _Layout.groups, but a stack ending at the parent may come anywhere: it
        ends the group before it."""
        stacks = self.stacks
        while lo < hi:
            if len(stacks[lo]) <= index:
                lo += 1
                continue
            name, end = stacks[lo][index], lo + 1
            while end < hi and len(stacks[end]) > index and stacks[end][index] == name:
                end += 1
            yield name, lo, end
            lo = end

    def children(self, lo: int, hi: int, depth: int, start: int) -> List[Todo]:
        drawn: List[Todo] = []
        narrow: Runs = []
        for name, a, b in self.groups(lo, hi, depth):
            wide = self.values[b] - self.values[a] >= self.threshold
            if narrow and (wide or narrow[-1][1] != a):
                self.merge(narrow, depth + 1, self.x(lo, start, narrow[0][0]))
                narrow = []
            if wide:
                self.add(self.rect(name, depth + 1, self.x(lo, start, a), [(a, b)]))
                drawn.append((a, b, depth + 1, self.x(lo, start, a)))
            else:
                narrow.append((a, b))
        if narrow:
            self.merge(narrow, depth + 1, self.x(lo, start, narrow[0][0]))
        return drawn

    def x(self, lo: int, start: int, index: int) -> int:
        """Byte offset of stack `index` in a parent starting at `start` with stack `lo`."""
        return start + self.values[index] - self.values[lo]


def chart_runs(profile: FlameInput, reverse: bool) -> List[ChartRun]:
    """The runs a flame chart draws: a sequence as it is, a folded profile in its order."""
    if isinstance(profile, Mapping):
        runs = []
        for stack, count in profile.items():
            if isinstance(count, tuple):
                raise UsageError("a flame chart shows one profile in time order, not a difference")
            runs.append(ChartRun(stack, count))
        profile = runs
    return [r._replace(stack=r.stack[::-1]) if reverse else r for r in profile if r.value > 0]


def sorted_items(profile: FlameInput, opts: FlameOptions) -> Tuple[List[Item], bool]:
    """(stack, width, before, after bytes) sorted by stack, and whether the profile is
    differential ({stack: (before, after)}). A differential stack is as wide as the larger
    of its two sides, so what grew and what went away both show (a stack gone from AFTER
    keeps its BEFORE width); with `negate`, as wide as BEFORE (flamegraph.pl's --negate)."""
    if not isinstance(profile, Mapping):
        profile = {r.stack: r.value for r in profile}
    items: List[Item] = []
    for stack, count in profile.items():
        ordered = stack[::-1] if opts.reverse else stack
        if isinstance(count, tuple):
            before, after = max(count[0], 0), max(count[1], 0)
            width = before if opts.negate else max(before, after)
            items.append((ordered, width, before, after))
        elif count > 0:
            items.append((ordered, count, 0, 0))
    items = [item for item in items if item[1] > 0 or item[2] > 0 or item[3] > 0]
    items.sort(key=lambda item: item[0])
    return items, any(isinstance(c, tuple) for c in profile.values())


def build(profile: FlameInput, opts: FlameOptions) -> FlameGraph:
    """Frame rectangles for a folded profile ({stack: bytes}), a differential one
    ({stack: (before, after)}: widths the larger side, or before with `opts.negate`), or with
    `opts.flamechart` a sequence of ChartRun in time order (a profile: in its own order)."""
    if opts.view not in VIEWS:
        raise UsageError(f"unknown view {opts.view!r} (choose from {', '.join(VIEWS)})")
    graph = FlameGraph(opts)
    if opts.flamechart:
        _ChartLayout(graph, chart_runs(profile, opts.reverse)).run(opts)
    else:
        items, graph.differential = sorted_items(profile, opts)
        _Layout(graph, items, graph.differential).run(opts)
    if graph.total <= 0:
        graph.frames = []
        graph.message = "No stacks to show: the selection holds no bytes"
    graph.background = background(opts.bgcolors, "diff" if graph.differential else opts.colors)
    graph.colors = frame_colors(graph)
    return graph


def frame_colors(graph: FlameGraph) -> Dict[str, str]:
    """The fill of every drawn frame, by name: pinned by the palette map when it has the
    name, else from the palette. Merged boxes and differential frames are coloured by what
    they are, at rendering."""
    opts = graph.options
    colors: Dict[str, str] = {}
    if graph.differential:
        return colors
    pinned = opts.palette_map or {}
    for f in graph.frames:
        if not f.merged and f.name not in colors:
            colors[f.name] = pinned.get(f.name) or frame_color(
                f.name, opts.colors, opts.hash, opts.random_seed)
    return colors
