"""`heaptrace doctor`: can this machine trace? (work in progress)"""

from __future__ import annotations

import click


@click.command()
def doctor() -> None:
    """Check BPF support, privileges, bcc, kernel headers and tracefs."""
