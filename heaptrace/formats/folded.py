"""Reading folded ("collapsed") stacks, as flamegraph.pl reads them. Format: docs/folded.md.

Shared by `flame`/`diff` on folded input and the folded importer; render/folded.py writes them.
A line is split from its right end with string methods, never a backtracking regular
expression, so a line of any length costs time linear in its length.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Tuple

from heaptrace.errors import ImportFormatError
from heaptrace.formats.textinput import fits, to_int

Stack = Tuple[str, ...]

BLANKS = " \t"
SPACE = " \t\n\r\f\v"  # what trails a line (ASCII, as Perl's \s on bytes)
DIGITS = frozenset("0123456789")


def is_whole_number(token: str) -> bool:
    """`-?\\d+`: a count the folded importer takes (bytes or calls, maybe negative)."""
    digits = token[1:] if token.startswith("-") else token
    return bool(digits) and set(digits) <= DIGITS


def is_count(token: str) -> bool:
    """`\\d+(\\.\\d*)?`: a count flamegraph.pl draws (some collapsers write fractions)."""
    whole, _, fraction = token.partition(".")
    return bool(whole) and set(whole) <= DIGITS and set(fraction) <= DIGITS


def last_token(text: str) -> Tuple[str, str]:
    """(everything before the last blank-separated token, that token)."""
    cut = max(text.rfind(" "), text.rfind("\t"))
    return text[: cut + 1], text[cut + 1:]


def split_counts(line: str, is_number: Callable[[str], bool]) -> Optional[Tuple[str, List[str]]]:
    """A folded line as (stack, one or two count tokens), or None when it does not end in
    blank + count. The stack is the shortest that leaves valid counts, as the regular
    expression `^(.*?)[ \\t]+(N)(?:[ \\t]+(N))?\\s*$` would take it."""
    head, last = last_token(line.rstrip(SPACE))
    if not head or not is_number(last):
        return None
    stack = head.rstrip(BLANKS)
    before, second = last_token(stack)
    if before and is_number(second):
        return before.rstrip(BLANKS), [second, last]
    return stack, [last]


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
        parsed = split_counts(line, is_count)
        if parsed is None or len(parsed[1]) != 1 or not parsed[0]:
            raise ImportFormatError(path, number, "expected `frame;frame;... COUNT`")
        count = _rounded(parsed[1][0])
        if not fits(count):
            raise ImportFormatError(path, number, "expected a count below 2^63")
        out.append((tuple(parsed[0].split(";")), count))
    return out


def _rounded(token: str) -> int:
    """A count token as an integer, fractions rounded half to even as Python's round()
    would, without going through a float (which overflows on long numbers)."""
    whole, dot, fraction = token.partition(".")
    if not dot or not fraction:
        return to_int(whole)
    first = fraction[0]
    up = first > "5" or (first == "5" and (fraction[1:].strip("0") != "" or int(whole[-1]) % 2))
    return to_int(whole) + (1 if up else 0)
