"""Options shared by `heaptrace flame` and `heaptrace diff`: what to select, how it looks."""

from __future__ import annotations

import random
import sys
from typing import Any, Callable, Optional

import click

from heaptrace.analysis.stacks import EVENT_CHOICES, Selection
from heaptrace.commands.params import PID, SECONDS_INTO_RUN, Finite, minwidth
from heaptrace.errors import UsageError
from heaptrace.render.flamegraph import FlameInput, FlameOptions, build, render
from heaptrace.render.palettes import (
    BACKGROUND_CHOICES,
    PALETTES,
    background,
    read_palette_map,
    write_palette_map,
)

SELECTION = [
    click.option("--event", "kind", type=click.Choice(EVENT_CHOICES), default="growth",
                 show_default=True, help="growth = brk+mmap+mremap bytes; all = every kind."),
    click.option("--retained", is_flag=True,
                 help="Bytes still held (at exit, or --at peak), by allocating stack."),
    click.option("--at", type=click.Choice(["exit", "peak"]), default=None,
                 help="With --retained: the moment to look at (implies --retained)."),
    click.option("--pid", type=PID, help="Only this process."),
    click.option("--from", "start_s", type=SECONDS_INTO_RUN, metavar="S",
                 help="Seconds into the run."),
    click.option("--to", "end_s", type=SECONDS_INTO_RUN, metavar="S",
                 help="Seconds into the run."),
    click.option("--process-names/--no-process-names", default=True, show_default=True,
                 help="Process names as root frames."),
]

LOOK = [
    click.option("--title", help="Title text."),
    click.option("--subtitle", default="", help="Second line (default: what is shown)."),
    click.option("--countname", default="bytes", show_default=True, help="Unit of the counts."),
    click.option("--colors", type=click.Choice(PALETTES), default="mem", show_default=True),
    click.option("--width", type=click.IntRange(100, 1_000_000), default=1200,
                 show_default=True, help="Image width in pixels."),
    click.option("--height", type=click.IntRange(4, 10_000), default=16, show_default=True,
                 help="Frame height in pixels."),
    click.option("--minwidth", default="0.1", show_default=True, callback=minwidth,
                 help="Merge frames narrower than this (pixels, or N% of the width)."),
    click.option("--fontsize", type=Finite(1, 1000), default=12.0, show_default=True),
    click.option("--inverted", is_flag=True, help="Icicle graph: roots at the top."),
    click.option("--reverse", is_flag=True, help="Reverse stacks: leaves become roots."),
    click.option("--hash", "use_hash", is_flag=True, help="Colour by name hash."),
    click.option("--random", "random_colors", is_flag=True,
                 help="Random colours (one per name; another look each time)."),
    click.option("--cp", is_flag=True,
                 help="Consistent palette: reuse and update the colours in palette.map."),
    click.option("--palette-map", metavar="FILE", default=None,
                 help="The palette map file for --cp (implies --cp)  [default: palette.map]"),
    click.option("--bgcolors", default="", callback=lambda ctx, param, value: _bgcolors(value),
                 help=f"Background: {', '.join(BACKGROUND_CHOICES)} or #rrggbb"
                      " (default: the palette's)."),
    click.option("--fonttype", default="Verdana", show_default=True, help="Font family."),
    click.option("--nametype", default="Function:", show_default=True,
                 help="Label before the name in the mouse-over line."),
    click.option("--notes", default="", help="Text kept in the SVG (its <desc>)."),
]


def apply(options: list) -> Callable:
    """Decorate a command with a list of click options, in order."""
    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def selection(kind: str, pid: Optional[int], start_s: Optional[float],
              end_s: Optional[float], process_names: bool) -> Selection:
    return Selection(kind, pid, start_s, end_s, process_names)


def moment(retained: bool, at: Optional[str]) -> Optional[str]:
    """None for the growth view, else "exit" or "peak"."""
    return at or ("exit" if retained else None)


def _bgcolors(value: str) -> str:
    """Check --bgcolors before any recording is read."""
    try:
        background(value, "mem")
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def look(description: str, view: Optional[str], subtitle: str, use_hash: bool,
         random_colors: bool, palette_map: Optional[dict] = None,
         **fields: Any) -> FlameOptions:
    """FlameOptions from the LOOK options (and flamechart, negate); `view` is moment()."""
    seed = random.SystemRandom().getrandbits(32) if random_colors else None
    return FlameOptions(subtitle=subtitle or description, hash=use_hash, view=view or "growth",
                        random_seed=seed, palette_map=palette_map, **fields)


def draw(profile: FlameInput, description: str, view: Optional[str], cp: bool,
         palette_map: Optional[str], **look_opts: Any) -> None:
    """Build and render the SVG to stdout; with --cp, colours come from the palette map
    file first, and the colours of new names are added to it afterwards."""
    path = palette_map or ("palette.map" if cp else None)
    pinned = read_palette_map(path) if path else None
    graph = build(profile, look(description, view, palette_map=pinned, **look_opts))
    render(graph, sys.stdout)
    if path and pinned is not None and any(name not in pinned for name in graph.colors):
        write_palette_map(path, {**graph.colors, **pinned})
