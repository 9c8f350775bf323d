"""`heaptrace import dtrace`: DTrace aggregation output (quantize() tables, printa() totals,
ustack() aggregations) into a recording; heaptrace-events.d output goes to its own parser
(formats/dtrace_events.py), which `heaptrace run` uses with DTrace.

The layout DTrace prints at exit, and what becomes of each part:

      brk() allocation sizes                                   <- title: the kind, and the
               value  ------------- Distribution ------------- count     histogram's title
           65536 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@       573   <- buckets
      Total bytes allocated                           401752064 <- totals (labels as printed
      Total number of brk() calls                           675     by `heaptrace histogram`)

                  libc.so.1`_brk_unlocked+0xa                   <- a stack, leaf first,
                  pkgin`main+0x4e6                                  folded as stackcollapse.pl
                 4096                                           <- its count or byte sum

Lines before the first of these (dtrace's "CPU ID FUNCTION:NAME" header, program output) are
kept in the recording's meta as "header".
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from heaptrace.errors import ImportFormatError
from heaptrace.events import KINDS, Frame, KindTotals
from heaptrace.formats import collapse, dtrace_events
from heaptrace.formats.dtrace_text import BLANK, QUANTIZE_HEADER, QUANTIZE_ROW
from heaptrace.formats.imported import Imported, LineError, Sample
from heaptrace.formats.textinput import checked_int, input_lines
from heaptrace.importers.common import leaf_kind, stack_event
from heaptrace.recording import RunMeta

_A = re.ASCII
COUNT = re.compile(r"^\s*(-?\d+)$", _A)
SPACE = " \t\n\r\f\v"
LOST = re.compile(r"^\s+(\d+) events lost from the per-event stream", _A)
KIND_IN_TEXT = re.compile(r"\b(" + "|".join(KINDS) + r")\b", _A)

# printa() labels `heaptrace histogram` prints (and brkquantize.d uses): label -> field.
_LABELS = [
    (re.compile(r"^Total number of (\w+)\(\) calls$", _A), "calls"),
    (re.compile(r"^Failed (\w+)\(\) calls$", _A), "failed"),
    (re.compile(r"^Total bytes released by shrinking$", _A), "released"),
    (re.compile(r"^Total bytes (?:allocated|released)$", _A), "bytes"),
]


@dataclass
class _Table:
    title: Optional[str]
    kind: Optional[str]
    line: int
    buckets: Dict[int, int] = field(default_factory=dict)


@dataclass
class _Parsed:
    tables: List[_Table] = field(default_factory=list)
    totals: List[Tuple[int, Optional[str], str, Optional[str], int]] = field(default_factory=list)
    raw: Dict[int, str] = field(default_factory=dict)  # line number -> line of each total
    stacks: List[Tuple[int, Tuple[Frame, ...], int]] = field(default_factory=list)
    header: List[str] = field(default_factory=list)
    lost: int = 0


class _Parser:
    """A line-by-line state machine over DTrace's output."""

    def __init__(self) -> None:
        self.out = _Parsed()
        self.pending: List[Tuple[int, str]] = []  # frame (or title, or header) lines
        self.table: Optional[_Table] = None
        self.kind: Optional[str] = None  # the kind of the latest table or labelled total

    def feed(self, number: int, line: str) -> None:
        if self.table is not None and self._table_line(self.table, number, line):
            return
        if BLANK.match(line):
            self._flush(number)
        elif QUANTIZE_HEADER.match(line):
            self._start_table(number)
        elif count := COUNT.match(line):
            self._count(number, line, checked_int(number, count.group(1)))
        elif (lost := LOST.match(line)) and not self.pending:
            self.out.lost += checked_int(number, lost.group(1))
        elif (labelled := _labelled(line)) and not self.pending:
            label, value = labelled
            self._total(number, line, label, checked_int(number, value))
        else:
            self.pending.append((number, line))

    def finish(self, number: int, kind: Optional[str]) -> _Parsed:
        self.table = None
        self._flush(number)
        empty = not (self.out.tables or self.out.totals or self.out.stacks or self.out.lost)
        if empty and kind is None:
            raise LineError(number, "expected DTrace aggregation output (quantize() tables, "
                            "printa() totals or ustack() stacks with counts); found none "
                            "(an empty aggregation: give --event KIND to import zero calls)")
        return self.out

    def _has_output(self) -> bool:
        return bool(self.out.tables or self.out.totals or self.out.stacks)

    def _flush(self, number: int) -> None:
        """A blank line (or the end): pending lines without a count are only allowed as a
        header before any aggregation output."""
        if not self.pending:
            return
        if self._has_output():
            raise LineError(number, "expected a count or a byte sum after the stack frames "
                            f"that start on line {self.pending[0][0]}")
        self.out.header.extend(line for _, line in self.pending)
        self.pending = []

    def _start_table(self, number: int) -> None:
        title = None
        self._key_as_title(number)
        if self.pending:
            *header, (_, title_line) = self.pending
            if header and self._has_output():
                raise LineError(header[0][0], "expected a quantize() title or a stack frame")
            self.out.header.extend(line for _, line in header)
            title = title_line.strip()
            self.pending = []
        kind = _kind_in(title)
        self.table = _Table(title, kind, number)
        self.out.tables.append(self.table)
        if kind is not None:
            self.kind = kind

    def _key_as_title(self, number: int) -> None:
        """A numeric key (`@[pid] = quantize(...)`) printed right above the table looks like
        a total; it is the table's title."""
        totals = self.out.totals
        if not self.pending and totals and totals[-1][0] == number - 1:
            self.pending.append((number - 1, self.out.raw.pop(number - 1)))
            totals.pop()

    def _table_line(self, table: _Table, number: int, line: str) -> bool:
        """Consume a row of the current table (DTrace ends every table with a blank line)."""
        if BLANK.match(line):
            self.table = None
            return True
        row = QUANTIZE_ROW.match(line)
        if row is None:
            raise LineError(number, "expected a quantize() row (VALUE |@@@  COUNT) or a blank "
                            "line; lquantize()/llquantize() tables are not supported")
        value, calls = checked_int(number, row.group(1)), checked_int(number, row.group(2))
        if value != 0 and abs(value) & (abs(value) - 1):
            raise LineError(number, f"expected a power-of-two quantize() bucket, not {value}")
        if value in table.buckets:
            raise LineError(number, f"expected each bucket once; {value} appears twice")
        table.buckets[value] = calls
        return True

    def _count(self, number: int, line: str, value: int) -> None:
        if not self.pending:
            self._total(number, line, "", value)  # an aggregation without keys: @ = sum(...)
            return
        names: List[str] = []
        for _, line in reversed(self.pending):
            names.extend(collapse.dtrace_frame(line))
        frames = tuple(_frame(name) for name in reversed(names))
        self.out.stacks.append((self.pending[0][0], frames, value))
        self.pending = []

    def _total(self, number: int, line: str, label: str, value: int) -> None:
        field_name, kind = _label_field(label)
        if kind is not None:
            self.kind = kind
        self.out.raw[number] = line
        self.out.totals.append((number, kind or self.kind, label, field_name, value))


def _labelled(line: str) -> Optional[Tuple[str, str]]:
    """(label, number) of an indented `  Label text    123` line (`^\\s+(\\S.*?)\\s+(-?\\d+)$`,
    split from the right so that no run of blanks is scanned twice)."""
    if not line[:1] or line[0] not in SPACE or line[-1:] in ("", *SPACE):
        return None
    cut = max(line.rfind(c) for c in SPACE)
    label, value = line[:cut].strip(SPACE), line[cut + 1:]
    digits = value[1:] if value.startswith("-") else value
    if not label or not digits or not set(digits) <= set("0123456789"):
        return None
    return label, value


def _frame(name: str) -> Frame:
    module = name.split("`", 1)[0] if "`" in name else None
    return Frame(name, module, None)


def _kind_in(text: Optional[str]) -> Optional[str]:
    found = KIND_IN_TEXT.search(text) if text else None
    return found.group(1) if found else None


def _label_field(label: str) -> Tuple[Optional[str], Optional[str]]:
    """(the KindTotals field a printa() label stands for, the kind it names)."""
    for pattern, field_name in _LABELS:
        m = pattern.match(label)
        if m:
            kind = m.group(1) if m.groups() else None
            return field_name, kind if kind in KINDS else None
    return None, _kind_in(label)


def parse(path: str, kind: Optional[str] = None, counts: str = "bytes") -> Imported:
    """Parse DTrace aggregation output, or the per-call output of heaptrace-events.d (told
    by its first line); `kind` is used where the data does not name one."""
    lines = input_lines(path)
    head: List[str] = []
    for line in lines:
        head.append(line)
        if line.strip():
            break
    everything = itertools.chain(head, lines)
    if head and dtrace_events.is_events_line(head[-1]):
        return dtrace_events.to_imported(dtrace_events.parse_lines(path, everything),
                                         KINDS if kind is None else (kind,))
    parser = _Parser()
    number = 0
    try:
        for number, line in enumerate(everything, 1):
            parser.feed(number, line)
        parsed = parser.finish(number + 1, kind)
        return _build(parsed, kind, counts)
    except LineError as exc:
        raise ImportFormatError(path, exc.line, exc.expected) from None


def _build(parsed: _Parsed, kind: Optional[str], counts: str) -> Imported:
    imported = Imported(meta=RunMeta(source="dtrace"))
    empty = not (parsed.tables or parsed.totals or parsed.stacks)
    if kind is not None and empty:
        imported.totals[kind] = KindTotals()  # an empty aggregation: no calls, no bytes
    only = _only_kind(parsed, kind)
    titles = _add_tables(imported, parsed.tables, kind, only)
    stack_kinds = _add_stacks(imported, parsed.stacks, kind, counts)
    known = _add_totals(imported, parsed.totals, kind, only)
    _stack_totals(imported, stack_kinds, known, counts)
    _count_from_buckets(imported, known)
    if kind is not None and empty:
        known = {kind: {"calls", "bytes"}}
    _finish_meta(imported, parsed, titles, known)
    imported.totals = _in_file_order(imported.totals, parsed, kind, only)
    if stack_kinds:
        imported.meta.counts = {k: counts for k in sorted(set(stack_kinds))}
    return imported


def _in_file_order(totals: Dict[str, KindTotals], parsed: _Parsed, kind: Optional[str],
                   only: Optional[str]) -> Dict[str, KindTotals]:
    """Kinds in the order the file shows them, so the histogram prints them in that order."""
    seen = [(t.line, t.kind) for t in parsed.tables]
    seen += [(number, k) for number, k, *_ in parsed.totals]
    seen += [(number, leaf_kind(frames)) for number, frames, _ in parsed.stacks]
    order = [k or kind or only for _, k in sorted(seen, key=lambda item: item[0])]
    ranked = {k: i for i, k in reversed(list(enumerate(order)))}
    return dict(sorted(totals.items(), key=lambda item: ranked.get(item[0], len(order))))


def _only_kind(parsed: _Parsed, kind: Optional[str]) -> Optional[str]:
    """The one kind the file names, for totals that do not say theirs."""
    named = {t.kind for t in parsed.tables if t.kind} | {k for _, k, *_ in parsed.totals if k}
    if len(named) == 1:
        return named.pop()
    return kind


def _add_tables(imported: Imported, tables: List[_Table], kind: Optional[str],
                only: Optional[str]) -> Dict[str, str]:
    titles: Dict[str, str] = {}
    for table in tables:
        k = table.kind or kind or only
        if k is None:
            raise LineError(table.line, f"a quantize() table titled {table.title!r}: expected a "
                            "title naming brk, mmap, munmap or mremap (or give --event)")
        t = imported.totals.setdefault(k, KindTotals())
        for value, count in table.buckets.items():
            t.buckets[value] = t.buckets.get(value, 0) + count
        if table.title is not None:
            titles.setdefault(k, table.title)
    return titles


def _add_stacks(imported: Imported, stacks: List[Tuple[int, Tuple[Frame, ...], int]],
                kind: Optional[str], counts: str) -> List[str]:
    kinds = []
    for number, frames, value in stacks:
        k = kind or leaf_kind(frames)
        if k is None:
            raise LineError(number, "a stack whose leaf frame names no memory syscall: "
                            "expected --event brk|mmap|munmap|mremap")
        imported.samples.append(Sample(frames, stack_event(k, value, counts)))
        kinds.append(k)
    return kinds


def _add_totals(imported: Imported, totals: list, kind: Optional[str],
                only: Optional[str]) -> Dict[str, set]:
    """Apply printa() totals; returns which fields each kind got from them."""
    known: Dict[str, set] = {}
    other: Dict[str, List[Tuple[str, int]]] = {}
    for number, k, label, field_name, value in totals:
        k = k or kind or only
        if k is None:
            raise LineError(number, f"a total labelled {label!r}: expected a label naming "
                            "brk, mmap, munmap or mremap (or give --event)")
        t = imported.totals.setdefault(k, KindTotals())
        if field_name is None:
            other.setdefault(k, []).append((label, value))
            continue
        setattr(t, field_name, getattr(t, field_name) + value)
        known.setdefault(k, set()).add(field_name)
    if other:
        imported.meta.other_totals = other
    return known


def _stack_totals(imported: Imported, stack_kinds: List[str], known: Dict[str, set],
                  counts: str) -> None:
    """Kinds known only from stacks: their total is the sum of the stacks' values."""
    field_name = "bytes" if counts == "bytes" else "calls"
    for s in imported.samples:
        k = s.event.kind
        if field_name in known.get(k, set()):
            continue
        t = imported.totals.setdefault(k, KindTotals())
        value = s.event.size if counts == "bytes" else s.event.calls
        setattr(t, field_name, getattr(t, field_name) + value)
    for k in set(stack_kinds):
        known.setdefault(k, set()).add(field_name)


def _count_from_buckets(imported: Imported, known: Dict[str, set]) -> None:
    """A table counts one value per call: without a calls total, its counts are the calls."""
    for k, t in imported.totals.items():
        if t.buckets and "calls" not in known.get(k, set()):
            t.calls = sum(t.buckets.values())
            known.setdefault(k, set()).add("calls")


def _finish_meta(imported: Imported, parsed: _Parsed, titles: Dict[str, str],
                 known: Dict[str, set]) -> None:
    unknown = {}
    for k in imported.totals:
        missing = [f for f in ("calls", "bytes") if f not in known.get(k, set())]
        if missing:
            unknown[k] = missing
    if titles:
        imported.meta.titles = titles
    if unknown:
        imported.meta.unknown_totals = unknown
    if parsed.header:
        imported.meta.header = list(parsed.header)
    if parsed.lost:
        imported.meta.lost_events = parsed.lost

