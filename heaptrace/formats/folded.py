"""Reading folded ("collapsed") stacks, as flamegraph.pl reads them. Format: docs/folded.md.

Shared by `flame`/`diff` on folded input and the folded importer; render/folded.py writes them.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Tuple

from heaptrace.errors import ImportFormatError

Stack = Tuple[str, ...]

_LINE = re.compile(r"^(.*?)\s+(\d+(?:\.\d*)?)(?:\s+(\d+(?:\.\d*)?))?\s*$")


def parse_folded(lines: Iterable[str], path: str = "<folded>") -> Dict[Stack, int]:
    """Read single-count folded lines (blank lines skipped); duplicate stacks add up.
    Fractional counts (some collapsers write them) are rounded."""
    folded: Dict[Stack, int] = {}
    for stack, count in parse_folded_lines(lines, path):
        folded[stack] = folded.get(stack, 0) + count
    return folded


def parse_folded_lines(lines: Iterable[str], path: str = "<folded>") -> List[Tuple[Stack, int]]:
    """(stack, count) of each single-count line, in file order (a flame chart's order)."""
    out = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None or match.group(3) is not None or not match.group(1):
            raise ImportFormatError(path, number, "expected `frame;frame;... COUNT`")
        out.append((tuple(match.group(1).split(";")), round(float(match.group(2)))))
    return out
