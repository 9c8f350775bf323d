"""`heaptrace symbolize`: name the raw stack addresses of a recording again."""

from __future__ import annotations

import click

from heaptrace.elf import DEBUG_ROOT
from heaptrace.procmaps import ProcMaps
from heaptrace.recording import DEFAULT_PATH, Recording, RecordingWriter
from heaptrace.symbols import Symbolizer, is_symbolized, symbolize_stacks


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
    with Recording(file) as rec:
        raw, maps = rec.raw_stacks(), ProcMaps.from_rows(rec.mappings())
    frames = symbolize_stacks(raw, Symbolizer(maps, debug_root=debug_dir))
    writer = RecordingWriter.open_existing(file)
    with writer:
        for stack_id, stack in frames.items():
            writer.set_stack_frames(stack_id, stack)
    total = sum(len(f) for f in frames.values())
    unnamed = sum(not is_symbolized(x) for f in frames.values() for x in f)
    click.echo(f"Symbolized {len(frames)} stacks in {file}: {total} frames, "
               f"{unnamed} without a symbol")
