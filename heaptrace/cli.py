"""The command line: a click group whose commands each live in heaptrace/commands/."""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional

import click

from heaptrace import __version__
from heaptrace.commands import LazyGroup
from heaptrace.errors import HeaptraceError
from heaptrace.render.terminal import printable


class _OutputClosed(Exception):
    """The reader of stdout went away (`heaptrace histogram | head -1`): not an error."""


class _Group(LazyGroup):
    def invoke(self, ctx: click.Context) -> object:
        # click turns EPIPE into exit code 1 before main() could see it: catch it first.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _OutputClosed() from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="heaptrace")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Trace how a process takes memory from the kernel (brk, mmap, mremap) and gives it
    back (munmap), attributed to the user stacks that asked for it.

    \b
      sudo heaptrace run -- pkgin -y install gcc47    record (writes heaptrace.db)
      heaptrace histogram                             quantized sizes, totals, calls
      heaptrace flame > out.svg                       memory flame graph
    """
    ctx.ensure_object(dict)["debug"] = debug


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit code."""
    args = sys.argv[1:] if argv is None else argv
    options: Dict[str, bool] = {}  # the group's own options once parsed (not CMD's --debug)
    try:
        rc = cli.main(args=args, prog_name="heaptrace", standalone_mode=False, obj=options)
    except HeaptraceError as exc:
        if options.get("debug"):
            raise
        click.echo(f"heaptrace: error: {printable(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("heaptrace: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"heaptrace: error: {printable(_click_message(exc))}", err=True)
        sys.exit(exc.exit_code)
    except (BrokenPipeError, _OutputClosed):
        # Nothing more reaches the reader; point stdout at /dev/null so that the final
        # flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    sys.exit(rc if isinstance(rc, int) else 0)


def _click_message(exc: click.ClickException) -> str:
    """click's usage errors as one line, with where to read more."""
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see {ctx.command_path} --help)"
    return message
