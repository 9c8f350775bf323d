"""`heaptrace run`: record a command's memory syscalls."""

from __future__ import annotations

import sys
from typing import Optional, Tuple

import click

from heaptrace.capture import RunOptions, record
from heaptrace.events import KINDS
from heaptrace.render.summary import render_summary


def _kinds(value: str) -> Tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise click.BadParameter(f"expected a comma list of {', '.join(KINDS)}")
    return kinds


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-o", "--output", default="heaptrace.db", show_default=True, help="Recording file.")
@click.option("--events", "events", default=",".join(KINDS), show_default=True,
              help="Kinds of calls to trace.")
@click.option("--unwind", type=click.Choice(["dwarf", "fp"]), default="dwarf", show_default=True,
              help="dwarf: copy the user stack and unwind with CFI; fp: frame pointers.")
@click.option("--stack-bytes", default=16384, show_default=True,
              help="Bytes of user stack copied per event for --unwind dwarf.")
@click.option("--buffer-mib", default=64, show_default=True, help="Per-event ring buffer size.")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def run(output: str, events: str, unwind: str, stack_bytes: int, buffer_mib: int,
        cmd: Tuple[str, ...]) -> Optional[int]:
    """Run CMD, trace brk/mmap/munmap/mremap in it and everything it starts, write a recording.

    \b
      sudo heaptrace run -- pkgin -y install gcc47
      sudo heaptrace run -o sqlite.db -- sqlite3 db 'PRAGMA cache_size=...'
    Exits with CMD's exit code (128+N if signal N killed it).
    """
    options = RunOptions(output=output, kinds=_kinds(events), unwind=unwind,
                         stack_bytes=stack_bytes, ringbuf_mib=buffer_mib)
    click.echo(f"heaptrace: tracing {', '.join(options.kinds)} in {cmd[0]} and its children",
               err=True)
    result = record(cmd, options)
    render_summary(result.totals, output, result.counters.get("lost", 0), result.events,
                   sys.stderr, result.stacks)
    return result.exit_code
