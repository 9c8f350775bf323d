"""Options shared by `heaptrace flame` and `heaptrace diff`: what to select, how it looks."""

from __future__ import annotations

from typing import Callable, Optional

import click

from heaptrace.analysis.stacks import EVENT_CHOICES, Selection
from heaptrace.render.flamegraph import FlameOptions
from heaptrace.render.palettes import PALETTES

SELECTION = [
    click.option("--event", "kind", type=click.Choice(EVENT_CHOICES), default="growth",
                 show_default=True, help="growth = brk+mmap+mremap bytes; all = every kind."),
    click.option("--retained", is_flag=True,
                 help="Bytes still held (at exit, or --at peak), by allocating stack."),
    click.option("--at", type=click.Choice(["exit", "peak"]), default=None,
                 help="With --retained: the moment to look at (implies --retained)."),
    click.option("--pid", type=int, help="Only this process."),
    click.option("--from", "start_s", type=float, metavar="S", help="Seconds into the run."),
    click.option("--to", "end_s", type=float, metavar="S", help="Seconds into the run."),
    click.option("--process-names/--no-process-names", default=True, show_default=True,
                 help="Process names as root frames."),
]

LOOK = [
    click.option("--title", help="Title text."),
    click.option("--subtitle", default="", help="Second line (default: what is shown)."),
    click.option("--countname", default="bytes", show_default=True, help="Unit of the counts."),
    click.option("--colors", type=click.Choice(PALETTES), default="mem", show_default=True),
    click.option("--width", type=click.IntRange(100), default=1200, show_default=True,
                 help="Image width in pixels."),
    click.option("--height", type=click.IntRange(4), default=16, show_default=True,
                 help="Frame height in pixels."),
    click.option("--minwidth", default="0.1", show_default=True,
                 help="Merge frames narrower than this (pixels, or N% of the width)."),
    click.option("--fontsize", type=click.FloatRange(1), default=12.0, show_default=True),
    click.option("--inverted", is_flag=True, help="Icicle graph: roots at the top."),
    click.option("--reverse", is_flag=True, help="Reverse stacks: leaves become roots."),
    click.option("--hash", "use_hash", is_flag=True, help="Colour by name hash."),
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


def look(description: str, title: Optional[str], subtitle: str, countname: str, colors: str,
         width: int, height: int, minwidth: str, fontsize: float, inverted: bool,
         reverse: bool, use_hash: bool, negate: bool = False) -> FlameOptions:
    return FlameOptions(title, subtitle or description, countname, colors, width, height,
                        minwidth, fontsize, inverted=inverted, reverse=reverse, hash=use_hash,
                        negate=negate)
