"""What the importer tests compare: the data files of tests/data, and a recording folded
as stackcollapse.pl folds the same stacks."""

from __future__ import annotations

import os
from typing import Dict, List

from heaptrace.recording import Recording
from tests.helpers import DATA


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
