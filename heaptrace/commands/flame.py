"""`heaptrace flame`: memory flame graph SVG (or folded stacks) of a recording."""

from __future__ import annotations

import sys

import click

from heaptrace.analysis.profiles import load_profile
from heaptrace.commands.graph_options import LOOK, SELECTION, apply, look, moment, selection
from heaptrace.recording import DEFAULT_PATH
from heaptrace.render.flamegraph import build, render
from heaptrace.render.folded import write_folded


@click.command()
@click.argument("file", default=DEFAULT_PATH, required=False)
@apply(SELECTION)
@click.option("--folded", is_flag=True, help="Print folded stacks (a;b;c BYTES) instead.")
@apply(LOOK)
def flame(file: str, kind: str, retained: bool, at: str, pid: int, start_s: float,
          end_s: float, process_names: bool, folded: bool, **look_opts: object) -> None:
    """Write a memory flame graph of FILE (default heaptrace.db) to stdout.

    \b
      heaptrace flame > growth.svg                 who asked the kernel for memory
      heaptrace flame --retained > held.svg        what was never given back
      heaptrace flame --at peak > peak.svg         what was held at the peak
      heaptrace flame --event brk --pid 42 --from 1.5 --to 3 > brk.svg
      heaptrace flame --folded > out.folded        for flamegraph.pl, speedscope, inferno
    """
    sel = selection(kind, pid, start_s, end_s, process_names)
    profile = load_profile(file, sel, moment(retained, at))
    if folded:
        write_folded(profile.folded, sys.stdout)
        return
    render(build(profile.folded, look(profile.description, **look_opts)), sys.stdout)
