"""`heaptrace run`: record a command's memory syscalls."""

from __future__ import annotations

import sys
from typing import Optional, Tuple

import click

from heaptrace.capture.procinfo import attach_target
from heaptrace.capture.runner import RunOptions, attach_process, record
from heaptrace.commands.params import POSITIVE_SECONDS
from heaptrace.errors import UsageError
from heaptrace.events import KINDS
from heaptrace.render.summary import render_summary
from heaptrace.render.terminal import printable


def _kinds(value: str) -> Tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise click.BadParameter(f"expected a comma list of {', '.join(KINDS)}")
    return kinds


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="heaptrace.db",
              show_default=True,
              help="Recording file (a previous recording there is replaced once CMD runs).")
@click.option("--force", is_flag=True,
              help="Replace OUTPUT even if it is not a heaptrace recording (never a link, a "
                   "directory or a device).")
@click.option("--events", "events", default=",".join(KINDS), show_default=True,
              help="Kinds of calls to trace.")
@click.option("--unwind", type=click.Choice(["dwarf", "fp"]), default="dwarf", show_default=True,
              help="dwarf: DWARF CFI rules, walked in the probe once learned from stack "
                   "copies; fp: frame pointers.")
@click.option("--stack-bytes", default=16384, show_default=True,
              help="Bytes of user stack copied when a call path is first seen (dwarf).")
@click.option("--buffer-mib", default=64, show_default=True, help="Per-event ring buffer size.")
@click.option("-p", "--pid", type=int, help="Trace this running process instead of running CMD.")
@click.option("--duration", type=POSITIVE_SECONDS,
              help="With --pid: stop after this many seconds.")
@click.option("--ebpf", "show_ebpf", is_flag=True,
              help="Print the BPF program with these settings and exit.")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def run(output: str, force: bool, events: str, unwind: str, stack_bytes: int, buffer_mib: int,
        pid: Optional[int], duration: Optional[float], show_ebpf: bool,
        cmd: Tuple[str, ...]) -> Optional[int]:
    """Run CMD (or watch the running process PID) and record its memory calls (brk, mmap,
    munmap, mremap, madvise, mprotect), its exact RSS and what became resident, in it and
    everything it starts.

    \b
      sudo heaptrace run -- pkgin -y install gcc47
      sudo heaptrace run -o sqlite.db -- sqlite3 db 'PRAGMA cache_size=...'
      sudo heaptrace run -p 1234 --duration 600     a server, for ten minutes
    Exits with CMD's exit code (128+N if signal N killed it); with --pid, Ctrl-C ends tracing
    and leaves the process running.
    """
    options = RunOptions(output=output, force=force, kinds=_kinds(events), unwind=unwind,
                         stack_bytes=stack_bytes, ringbuf_mib=buffer_mib)
    if show_ebpf:
        click.echo(options.probe_text())
        return 0
    if bool(cmd) == (pid is not None):
        raise UsageError("give either a command to run (after --) or --pid PID")
    if duration is not None and pid is None:
        raise UsageError("--duration applies to --pid: a command is traced until it exits")
    if cmd and not cmd[0]:
        raise UsageError("the command to run is an empty string")
    target = attach_target(pid) if pid is not None else None
    click.echo(f"heaptrace: tracing {', '.join(options.kinds)} in "
               f"{f'PID {pid}' if target else printable(cmd[0])} and its children"
               f"{'... Ctrl-C to end' if target else ''}", err=True)
    result = attach_process(target, options, duration) if target else record(cmd, options)
    render_summary(result.totals, output, result.counters.get("lost", 0), result.events,
                   sys.stderr, result.stacks, result.peak_rss, result.peak_rss_classes,
                   result.counters, result.notes)
    return result.exit_code
