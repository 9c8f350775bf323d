"""`heaptrace symbolize`: name the raw stack addresses of a recording again."""

from __future__ import annotations

import click

from heaptrace.capture.finish import symbolize_recording
from heaptrace.recording import DEFAULT_PATH
from heaptrace.render.terminal import printable
from heaptrace.stacks.elf import DEBUG_ROOT


@click.command()
@click.argument("file", default=DEFAULT_PATH, required=False)
@click.option("--debug-dir", default=DEBUG_ROOT, show_default=True,
              help="Where separate debug files live (.build-id/xx/rest.debug).")
def symbolize(file: str, debug_dir: str) -> None:
    """Resolve the recorded stack addresses to names again, with the mappings and build-ids
    stored in the recording: after installing debug packages, say.

    \b
      heaptrace symbolize                 the recording in ./heaptrace.db
      apt install libfoo1-dbgsym && heaptrace symbolize run.db
    """
    stacks, frames, unnamed = symbolize_recording(file, debug_dir)
    click.echo(f"Symbolized {stacks} stacks in {printable(file)}: {frames} frames, "
               f"{unnamed} without a symbol")
