"""What every importer shares: kind inference from leaf frames, aggregated stack events and what
an aggregation cannot know. The parsed result and its atomic write are formats/imported.py's."""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

from heaptrace.errors import UsageError
from heaptrace.events import KINDS, LEAF_PATTERNS, Event, Frame

# What the numbers of a stack aggregation or folded file count: bytes (a memory flame graph,
# `sum(size)`) or calls (`count()`); the data itself cannot say.
COUNTS = ("bytes", "calls")



def check_kind(kind: Optional[str]) -> Optional[str]:
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown event kind {kind!r} (one of: {', '.join(KINDS)})")
    return kind


def leaf_kind(frames: Sequence[Frame]) -> Optional[str]:
    """The syscall a stack ends in, from its leaf frame's function name, if it says."""
    if not frames:
        return None
    func = frames[0].name.rsplit("`", 1)[-1]
    for pattern, kind in LEAF_PATTERNS:
        if pattern.match(func):
            return kind
    return None


def stack_event(kind: str, value: int, counts: str, **fields: int) -> Event:
    """An aggregated stack's event: `value` is bytes (calls unknown: 0) or calls (size 0)."""
    if counts == "calls":
        return Event(kind=kind, size=0, calls=value, **fields)
    return Event(kind=kind, size=value, calls=0, **fields)


def unknown_totals(kinds: Iterable[str], counts: str) -> Dict[str, List[str]]:
    """Which totals a stack import cannot know: calls when it counts bytes, and vice versa."""
    missing = "calls" if counts == "bytes" else "bytes"
    return {kind: [missing] for kind in sorted(set(kinds))}
