"""`heaptrace report`: the one-screen answer to "what happened" in a terminal."""

from __future__ import annotations

import sys
from typing import Optional

import click

from heaptrace.analysis.report import DEFAULT_TOP, build_report
from heaptrace.commands.params import PID
from heaptrace.recording import DEFAULT_PATH, Recording
from heaptrace.render.report import render_json, render_text


@click.command()
@click.argument("file", default=DEFAULT_PATH, required=False)
@click.option("--top", type=int, default=DEFAULT_TOP, show_default=True, metavar="N",
              help="How many stacks each ranking shows.")
@click.option("--pid", type=PID, help="Only this process.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (full stacks).")
def report(file: str, top: int, pid: Optional[int], as_json: bool) -> None:
    """Print what a recording says in one screen: the run, exact totals, each process,
    the stacks that took the most and those still holding the most at exit, stack
    quality, and what to run next.

    \b
      heaptrace report                    ./heaptrace.db
      heaptrace report run.db --top 10 --pid 42
      heaptrace report --json | jq '.growth.rows[0].stack'
    """
    with Recording(file) as rec:
        result = build_report(rec, top, pid)
    (render_json if as_json else render_text)(result, sys.stdout)
