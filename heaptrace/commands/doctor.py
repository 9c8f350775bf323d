"""`heaptrace doctor`: can this machine trace, and if not, what to do."""

from __future__ import annotations

import click

from heaptrace.backends.checks import run_checks


@click.command()
def doctor() -> int:
    """Check kernel BPF support, privileges, bcc, kernel headers and tracefs.

    Each line says ok or what to do. Exits non-zero when tracing cannot work.
    """
    checks = run_checks()
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark} {check.name:<20} {check.detail}")
    return 0 if all(c.ok for c in checks) else 1
