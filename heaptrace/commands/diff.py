"""`heaptrace diff`: differential flame graph of two recordings or folded files."""

from __future__ import annotations

import sys
from typing import Any

import click

from heaptrace.analysis.profiles import load_profile
from heaptrace.analysis.stacks import differential
from heaptrace.commands.graph_options import LOOK, SELECTION, apply, draw, moment, selection
from heaptrace.render.folded import write_diff


@click.command()
@click.argument("before")
@click.argument("after")
@apply(SELECTION)
@click.option("--negate", is_flag=True,
              help="Widths from BEFORE (flamegraph.pl's --negate) instead of the larger side.")
@click.option("--folded", is_flag=True, help="Print `stack BEFORE AFTER` lines instead.")
@apply(LOOK)
def diff(before: str, after: str, kind: str, retained: bool, at: str, pid: int,
         start_s: float, end_s: float, process_names: bool, negate: bool, folded: bool,
         **look_opts: Any) -> None:
    """Compare two recordings (or folded files): red where bytes grew, blue where they
    shrank. Each stack is as wide as the larger of its BEFORE and AFTER bytes, so what went
    away shows too, in blue at its BEFORE width (--negate: BEFORE's widths).

    \b
      heaptrace diff before.db after.db > diff.svg
      heaptrace diff --retained before.db after.db > held-diff.svg
      heaptrace diff --folded before.folded after.folded | flamegraph.pl > diff.svg
    """
    sel = selection(kind, pid, start_s, end_s, process_names)
    old, new = (load_profile(p, sel, moment(retained, at)) for p in (before, after))
    pairs = differential(old.folded, new.folded)
    if folded:
        write_diff(pairs, sys.stdout)
        return
    text = f"before: {old.description}; after: {new.description}"
    draw(pairs, text, moment(retained, at), negate=negate, **look_opts)
