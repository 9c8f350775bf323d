"""Helpers for the importer tests: fold a recording as a flame graph would, run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List

from click.testing import CliRunner

from heaptrace.cli import cli
from heaptrace.recording import Recording

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")


def data(*parts: str) -> str:
    return os.path.join(DATA, *parts)


def fold(path: str, weight: str = "size") -> List[str]:
    """Folded lines of a recording: Frame.name root first joined by ';', values summed per
    stack (event `size` or `calls`), sorted as stackcollapse.pl sorts (Perl's cmp)."""
    with Recording(path) as rec:
        stacks = rec.stacks()
        sums: Dict[str, int] = {}
        for e in rec.events():
            key = ";".join(f.name for f in reversed(stacks[e.stack_id]))
            sums[key] = sums.get(key, 0) + getattr(e, weight)
    return [f"{k} {sums[k]}" for k in sorted(sums, key=lambda s: s.encode())]


def run_cli(*args: str) -> str:
    """Run a heaptrace command; returns stdout, fails the test on any error."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def run_main(*args: str) -> subprocess.CompletedProcess:
    """Run heaptrace as a user does (one-line errors, exit codes); output as text."""
    return subprocess.run([sys.executable, "-m", "heaptrace", *args], capture_output=True,
                          text=True, check=False)


def read(path: str) -> List[str]:
    with open(path) as f:
        return f.read().split("\n")


def without_edges(lines: List[str]) -> List[str]:
    """Lines right-stripped, leading and trailing empty lines dropped."""
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines
