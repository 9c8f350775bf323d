"""`heaptrace import folded`: FlameGraph's folded stacks ("root;...;leaf COUNT") into a recording.

A line may carry two counts ("stack BEFORE AFTER", the input of a differential flame graph, as
difffolded.pl writes it); `column` picks which one is imported (2, the one flamegraph.pl draws,
by default); import the file twice to compare both with `heaptrace diff`. Counts are integers:
bytes by default, or calls (`counts`).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from heaptrace.errors import ImportFormatError
from heaptrace.events import Frame
from heaptrace.formats.folded import SPACE, is_count, is_whole_number, split_counts
from heaptrace.formats.imported import Imported, LineError, Sample, totals_from_samples
from heaptrace.formats.textinput import fits, input_lines, to_int
from heaptrace.importers.common import leaf_kind, stack_event, unknown_totals
from heaptrace.recording import RunMeta


def parse(path: str, kind: Optional[str] = None, counts: str = "bytes",
          column: int = 2) -> Imported:
    """Parse a folded file; `kind` applies to every stack, else each leaf frame must say."""
    imported = Imported(meta=RunMeta(source="folded"))
    widths: List[int] = []
    try:
        for number, line in enumerate(input_lines(path), 1):
            if not line.strip(SPACE):
                continue
            stack, value, width = _parse_line(number, line, column)
            _check_width(number, widths, width)
            imported.samples.append(_sample(number, stack, value, kind, counts))
        if not imported.samples:
            raise LineError(1, "expected folded stacks; the file has none")
    except LineError as exc:
        raise ImportFormatError(path, exc.line, exc.expected) from None
    imported.totals = totals_from_samples(imported.samples, with_buckets=False)
    imported.meta.unknown_totals = unknown_totals(imported.totals, counts)
    imported.meta.counts = {k: counts for k in imported.totals}
    if widths == [2]:
        imported.meta.folded_column = column
    return imported


def _parse_line(number: int, line: str, column: int) -> Tuple[str, int, int]:
    parsed = split_counts(line, is_whole_number)
    if parsed is None:
        if split_counts(line, is_count) is not None:
            raise LineError(number, "expected whole-number counts (bytes or calls), "
                            "not fractions")
        raise LineError(number, "expected a folded stack: frames joined by ';', a space "
                        "and a count (or two)")
    stack, counts = parsed
    value = to_int(counts[-1] if column == 2 or len(counts) == 1 else counts[0])
    if not all(fits(to_int(c)) for c in counts):
        raise LineError(number, "expected counts that fit in 64 bits (below 2^63)")
    return stack, value, len(counts)


def _sample(number: int, stack: str, value: int, kind: Optional[str], counts: str) -> Sample:
    names = stack.split(";") if stack else []
    frames = tuple(Frame(name) for name in reversed(names))
    k = kind or leaf_kind(frames)
    if k is None:
        raise LineError(number, "a stack whose leaf frame names no memory syscall: "
                        "expected --event brk|mmap|munmap|mremap")
    return Sample(frames, stack_event(k, value, counts))


def _check_width(number: int, widths: list, width: int) -> None:
    """Every line has one count, or every line two (a differential file)."""
    if not widths:
        widths.append(width)
    elif widths[0] != width:
        raise LineError(number, f"expected {widths[0]} count(s) as on the lines above, "
                        f"found {width}")
