"""DTrace-style power-of-two quantization."""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple


def bucket(value: int) -> int:
    """The power-of-two bucket DTrace's quantize() puts `value` in (0 for 0, negative
    buckets mirror positive ones)."""
    if value == 0:
        return 0
    magnitude = 1 << (abs(value).bit_length() - 1)
    return magnitude if value > 0 else -magnitude


def quantize(values: Iterable[int]) -> Dict[int, int]:
    """Count values per power-of-two bucket."""
    counts: Dict[int, int] = {}
    for v in values:
        b = bucket(v)
        counts[b] = counts.get(b, 0) + 1
    return counts


def _ladder(lowest: int, highest: int) -> List[int]:
    """Every bucket value DTrace would print between two buckets, inclusive."""
    ladder = [-(1 << e) for e in range(62, -1, -1)] + [0] + [1 << e for e in range(63)]
    return ladder[ladder.index(lowest): ladder.index(highest) + 1]


def rows(buckets: Dict[int, int]) -> List[Tuple[int, int]]:
    """(value, count) rows as DTrace prints them: from the bucket below the smallest
    non-empty one to the bucket above the largest, empty buckets included."""
    nonempty = sorted(v for v, c in buckets.items() if c)
    if not nonempty:
        return []
    full = _ladder(-(1 << 62), 1 << 62)
    lo = max(full.index(nonempty[0]) - 1, 0)
    hi = min(full.index(nonempty[-1]) + 1, len(full) - 1)
    return [(v, buckets.get(v, 0)) for v in _ladder(full[lo], full[hi])]
