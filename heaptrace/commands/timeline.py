"""`heaptrace timeline`: bytes taken, given back and held, and RSS, over time."""

from __future__ import annotations

import sys
from typing import Optional

import click

from heaptrace.analysis.timeline import timeline as build_timeline
from heaptrace.commands.params import PID, Finite
from heaptrace.errors import UsageError
from heaptrace.recording import DEFAULT_PATH, Recording
from heaptrace.render.timeline import render_json, render_svg, render_text


@click.command()
@click.argument("file", default=DEFAULT_PATH, required=False)
@click.option("--interval", "interval_s", type=Finite(1e-9, unit=" seconds"),
              metavar="S",
              help="Seconds per bucket (default: about 40 buckets over the run).")
@click.option("--pid", type=PID, help="Only this process.")
@click.option("--svg", "as_svg", is_flag=True, help="An SVG line chart instead of the table.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def timeline(file: str, interval_s: Optional[float], pid: Optional[int], as_svg: bool,
             as_json: bool) -> None:
    """Print memory over time: per bucket, bytes taken and given back, bytes held (as
    `flame --retained` counts them), the largest RSS sample, and calls.

    \b
      heaptrace timeline                       a table for ./heaptrace.db
      heaptrace timeline --svg > timeline.svg  held bytes and RSS as lines
      heaptrace timeline run.db --interval 60 --pid 42
      heaptrace timeline --json | jq '.buckets[].held'
    """
    if as_svg and as_json:
        raise UsageError("choose one of --svg and --json")
    with Recording(file) as rec:
        result = build_timeline(rec, interval_s, pid)
    render = render_json if as_json else render_svg if as_svg else render_text
    render(result, sys.stdout)
