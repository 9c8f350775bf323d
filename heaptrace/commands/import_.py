"""`heaptrace import`: DTrace, perf or folded output a user already has, as a recording."""

from __future__ import annotations

from typing import Optional

import click

from heaptrace.analysis.lifetimes import store_in as store_lifetimes
from heaptrace.events import KINDS
from heaptrace.importers import FORMATS, import_file
from heaptrace.importers.common import COUNTS
from heaptrace.render.terminal import printable


@click.command(name="import")
@click.argument("fmt", metavar="dtrace|perf|folded", type=click.Choice(FORMATS))
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The recording to write.")
@click.option("--event", "kind", type=click.Choice(KINDS),
              help="The syscall the data counts, where it does not say itself.")
@click.option("--counts", type=click.Choice(COUNTS), default="bytes", show_default=True,
              help="What stack values count (dtrace stacks, folded): bytes or calls.")
@click.option("--column", type=click.IntRange(1, 2), default=2, show_default=True,
              help="Folded files with two counts per line: which one to import.")
@click.option("--force", is_flag=True, help="Overwrite the output file.")
def import_(fmt: str, input_path: str, output: str, kind: Optional[str], counts: str,
            column: int, force: bool) -> None:
    """Turn DTrace aggregations, `perf script` output or folded stacks into a recording,
    for `histogram`, `flame` and `diff`.

    \b
      heaptrace import dtrace brkquantize.out -o pkgin.db     quantize() tables, totals
      heaptrace import dtrace brkbytes.out -o pkgin.db --event brk    ustack() sums
      perf script > out.perf; heaptrace import perf out.perf -o run.db
      heaptrace import dtrace out.events -o run.db     heaptrace-events.d output
      heaptrace import folded out.folded -o run.db --event mmap
    """
    for note in import_file(fmt, input_path, output, kind, counts, column, force):
        click.echo(f"heaptrace: note: {printable(note)}", err=True)
    store_lifetimes(output)  # what became of every byte taken, for the held views
    click.echo(f"Wrote {printable(output)}", err=True)
