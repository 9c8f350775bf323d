"""`heaptrace run`: record a command's memory syscalls (work in progress)."""

from __future__ import annotations

import click


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def run(cmd: tuple) -> None:
    """Run CMD and record its memory syscalls."""
    raise click.ClickException("not yet implemented")
