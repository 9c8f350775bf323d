"""`heaptrace flame`: memory flame graph SVG (or folded stacks) of a recording."""

from __future__ import annotations

import sys
from typing import Any

import click

from heaptrace.analysis.profiles import load_profile
from heaptrace.commands.graph_options import LOOK, SELECTION, apply, draw, moment, selection
from heaptrace.recording import DEFAULT_PATH
from heaptrace.render.flamedata import FlameInput
from heaptrace.render.folded import write_chart, write_folded


@click.command()
@click.argument("file", default=DEFAULT_PATH, required=False)
@apply(SELECTION)
@click.option("--folded", is_flag=True, help="Print folded stacks (a;b;c BYTES) instead.")
@click.option("--flamechart", is_flag=True,
              help="Flame chart: left to right in time order, not merged by name.")
@apply(LOOK)
def flame(file: str, kind: str, retained: bool, at: str, pid: int, start_s: float,
          end_s: float, process_names: bool, folded: bool, flamechart: bool,
          **look_opts: Any) -> None:
    """Write a memory flame graph of FILE (default heaptrace.db) to stdout.

    \b
      heaptrace flame > growth.svg                 who asked the kernel for memory
      heaptrace flame --retained > held.svg        what was never given back
      heaptrace flame --at peak > peak.svg         what was held at the peak
      heaptrace flame --event brk --pid 42 --from 1.5 --to 3 > brk.svg
      heaptrace flame --flamechart > chart.svg     the same bytes in time order
      heaptrace flame --folded > out.folded        for flamegraph.pl, speedscope, inferno
    """
    sel = selection(kind, pid, start_s, end_s, process_names)
    profile = load_profile(file, sel, moment(retained, at), in_time_order=flamechart)
    shown: FlameInput = profile.folded
    if flamechart:
        assert profile.chart is not None  # load_profile gives it with in_time_order
        shown = profile.chart
        if folded:
            write_chart(profile.chart, sys.stdout)
            return
    if folded:
        write_folded(profile.folded, sys.stdout)
    else:
        draw(shown, profile.description, moment(retained, at), flamechart=flamechart,
             held_when=profile.held_when, **look_opts)
