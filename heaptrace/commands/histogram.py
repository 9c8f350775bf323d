"""`heaptrace histogram`: quantized sizes, totals and call counts per kind."""

from __future__ import annotations

import sys
from typing import Optional

import click

from heaptrace.errors import UsageError
from heaptrace.events import KINDS
from heaptrace.recording import DEFAULT_PATH, Recording
from heaptrace.render.histogram import render_json, render_text


@click.command()
@click.argument("file", default=DEFAULT_PATH, required=False)
@click.option("--event", "kind", type=click.Choice(KINDS), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def histogram(file: str, kind: Optional[str], as_json: bool) -> None:
    """Print DTrace-style quantize() tables of sizes with totals and calls per kind.

    \b
      heaptrace histogram                 the recording in ./heaptrace.db
      heaptrace histogram run.db --event brk
      heaptrace histogram --json | jq .events.mmap.bytes
    """
    with Recording(file) as rec:
        totals = rec.totals()
        meta = rec.meta()
    if kind is not None:
        if kind not in totals:
            raise UsageError(f"no {kind!r} events in {file} (it has: {', '.join(totals)})")
        totals = {kind: totals[kind]}
    if as_json:
        render_json(totals, sys.stdout, meta)
    else:
        render_text(totals, sys.stdout, meta)
