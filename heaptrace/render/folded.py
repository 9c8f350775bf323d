"""Folded ("collapsed") stacks: writing them (formats/folded.py reads them). Format: docs/folded.md.

One line per unique stack, frames root first joined by ";", a space, a non-negative integer:
    pkgin;main;pkg_install;xmalloc 1052672
Differential lines carry two counts, before and after, as FlameGraph's difffolded.pl prints:
    pkgin;main;pkg_install;xmalloc 1052672 4096
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Sequence, TextIO, Tuple

from heaptrace.formats.folded import Stack

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # incl. Unicode line breaks


def clean_frame(name: str) -> str:
    """A frame name made safe for one folded line: no ";", no line breaks or other control
    characters, not empty, not ending in blank + number."""
    name = _CONTROL.sub(" ", name.replace(";", ":")).strip()
    if not name:
        return "[unknown]"
    return _joined_trailing_number(name)


def _joined_trailing_number(name: str) -> str:
    """flamegraph.pl reads the last number on a line as the count and, if the rest also ends
    in a number, takes that for the "before" column of a differential line: a frame that
    ends in blank + number would be misread, so the blanks before it become one "_".
    Blanks and digits in Unicode's sense, so that no reader splits the line differently;
    string methods, not a regular expression that would rescan long runs of blanks."""
    start = len(name)
    while start > 0 and not name[start - 1].isspace():
        start -= 1
    whole, _, fraction = name[start:].partition(".")
    if start == 0 or not whole.isdecimal() or not (fraction == "" or fraction.isdecimal()):
        return name
    return name[:start].rstrip() + "_" + name[start:]


def stack_text(stack: Stack) -> str:
    return ";".join(clean_frame(f) for f in stack)


def folded_lines(folded: Mapping[Stack, int]) -> Iterable[str]:
    """Sorted `a;b;c N` lines; stacks with no bytes are left out."""
    merged: Dict[str, int] = {}
    for stack, count in folded.items():
        if count > 0:
            text = stack_text(stack)
            merged[text] = merged.get(text, 0) + int(count)
    return (f"{text} {count}" for text, count in sorted(merged.items()))


def diff_lines(pairs: Mapping[Stack, Tuple[int, int]]) -> Iterable[str]:
    """Sorted `a;b;c BEFORE AFTER` lines, as difffolded.pl writes them."""
    merged: Dict[str, Tuple[int, int]] = {}
    for stack, (before, after) in pairs.items():
        if before > 0 or after > 0:
            text = stack_text(stack)
            b, a = merged.get(text, (0, 0))
            merged[text] = (b + max(before, 0), a + max(after, 0))
    return (f"{text} {b} {a}" for text, (b, a) in sorted(merged.items()))


def chart_lines(runs: Iterable[Sequence]) -> Iterable[str]:
    """`a;b;c N` lines of (stack, count, ...) runs in their (time) order, adjacent identical
    lines merged: the input flamegraph.pl --flamechart draws in order."""
    last, total = None, 0
    texts: Dict[Stack, str] = {}  # a chart repeats its stacks: each cleaned once
    for run in runs:
        stack, count = run[0], int(run[1])
        if count <= 0:
            continue
        text = texts.get(stack)
        if text is None:
            text = texts[stack] = stack_text(stack)
        if text == last:
            total += count
            continue
        if last is not None:
            yield f"{last} {total}"
        last, total = text, count
    if last is not None:
        yield f"{last} {total}"


def write_chart(runs: Iterable[Sequence], out: TextIO) -> None:
    lines: List[str] = []
    for line in chart_lines(runs):  # written a thousand lines at a time
        lines.append(line)
        if len(lines) >= 1000:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        out.write("\n".join(lines) + "\n")


def write_folded(folded: Mapping[Stack, int], out: TextIO) -> None:
    for line in folded_lines(folded):
        out.write(line + "\n")


def write_diff(pairs: Mapping[Stack, Tuple[int, int]], out: TextIO) -> None:
    for line in diff_lines(pairs):
        out.write(line + "\n")
