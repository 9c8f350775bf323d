"""Compact stacks fitted to a text column, never losing the program's own frames.

Each row's names are shortened only as far as needed to fit one line (C++ parameter lists and
return types first, then template arguments, then enclosing scopes: analysis/names.py). Rows
of different stacks never print the same: where two would, each gets the frame where its
stack parts from the other, and less shortening if that is what tells them apart. A row that
still does not fit wraps at a frame boundary; frames are never dropped.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

from heaptrace.analysis.compact import function_name
from heaptrace.analysis.names import LEVELS, shorten
from heaptrace.analysis.report import StackRow

SEPARATOR = " > "
ELLIPSIS = "…"
CONTINUED = "> "  # starts a line that goes on from the one above


class _Row:
    """One row being fitted: which frames it shows and how short their names are."""

    def __init__(self, row: StackRow, width: int) -> None:
        self.stack = row.stack
        self.names = [function_name(name) for name in row.stack]
        self.shown: List[int] = sorted(set(row.shown))
        fitting = [level for level in LEVELS if len(self.text(level)) <= width]
        self.level = fitting[0] if fitting else LEVELS[-1]

    def text(self, level: int) -> str:
        return SEPARATOR.join(shorten(self.names[i], level) for i in self.shown)

    def parts(self) -> List[str]:
        return [shorten(self.names[i], self.level) for i in self.shown]


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def _tell_apart(group: List[_Row]) -> bool:
    """Make the rows of `group` (equal texts, different stacks) differ; False when nothing
    more can be done."""
    changed = False
    for row in group:
        others = [o for o in group if o is not row]
        split = max(_common_prefix(row.stack, o.stack) for o in others)
        if split < len(row.stack) and split not in row.shown:
            row.shown = sorted({*row.shown, split})
            changed = True
    if not changed:
        for row in group:
            if row.level > LEVELS[0]:
                row.level -= 1
                changed = True
    return changed


def _resolve(rows: List[_Row]) -> None:
    for _ in range(4 * len(rows) * len(LEVELS)):
        groups: Dict[str, List[_Row]] = {}
        for row in rows:
            groups.setdefault(row.text(row.level), []).append(row)
        clashes = [g for g in groups.values()
                   if len(g) > 1 and len({tuple(r.stack) for r in g}) > 1]
        if not clashes or not any([_tell_apart(g) for g in clashes]):
            return


def wrap(parts: Sequence[str], width: int) -> List[str]:
    """`a > b > c` in lines of at most `width`, broken between frames (a line that goes on
    from the one above starts with "> "); a name longer than a line keeps its end (the
    function), after "…"."""
    lines: List[str] = []
    for part in parts:
        lead = "" if not lines else CONTINUED
        room = width - len(lead)
        if len(part) > room:
            part = ELLIPSIS + part[len(part) - room + 1:]
        if lines and len(lines[-1]) + len(SEPARATOR) + len(part) <= width:
            lines[-1] += SEPARATOR + part
        else:
            lines.append(lead + part)
    return lines or [""]


def stack_column(rows: Sequence[StackRow], width: int) -> List[List[str]]:
    """The lines of each row's stack column, in the rows' order."""
    fitted = [_Row(row, width) for row in rows]
    _resolve(fitted)
    return [wrap(row.parts(), width) for row in fitted]


def shortest_fit(parts: Sequence[str], width: int, separator: str = ";") -> str:
    """`parts` joined, at the least shortening that fits `width` (the most if none does)."""
    texts = [separator.join(shorten(function_name(p), level) for p in parts) for level in LEVELS]
    return next((t for t in texts if len(t) <= width), texts[-1])
