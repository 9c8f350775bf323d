"""`heaptrace import perf`: `perf script` output into a recording, one event per sample.

Record with the syscall tracepoints, with or without call chains, for example:

    perf record -e syscalls:sys_enter_mmap -e syscalls:sys_enter_munmap \\
                -e syscalls:sys_enter_brk -g -- CMD
    perf script > out.perf && heaptrace import perf out.perf -o run.db

Stacks are folded as FlameGraph's stackcollapse-perf.pl folds them by default (the command
name as the root frame, offsets dropped, "[unknown]" replaced by the module's file name). Each
sample's weight is the tracepoint's byte argument when it has one (`len` of mmap and munmap,
new_len - old_len of mremap) and one call otherwise (brk's argument is an address). Other
events (cycles, uprobes) are imported as counts of the kind given with --event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from heaptrace.errors import ImportFormatError
from heaptrace.events import KINDS, SPEC, SPECS, Event, Frame
from heaptrace.formats import collapse
from heaptrace.formats.imported import Imported, LineError, Sample, totals_from_samples
from heaptrace.formats.perf_script import Header, parse_args, parse_callchain, parse_header
from heaptrace.formats.textinput import fits, input_lines, to_int

_A = re.ASCII
SYSCALL = re.compile(r"^(?:syscalls:)?sys_enter_(" + "|".join(KINDS) + r")$", _A)
# Kinds whose bytes the arguments alone give (brk needs the previous break).
BYTE_KINDS = tuple(s.name for s in SPECS if s.name != "brk")


@dataclass
class _Sample:
    line: int
    comm: str
    event: Event
    frames: List[Frame] = field(default_factory=list)  # root first, as stackcollapse builds


def parse(path: str, kind: Optional[str] = None) -> Imported:
    """Parse `perf script` output; `kind` names the kind of events that are not memory
    syscall tracepoints."""
    imported = Imported(meta={"source": "perf", "counts": {}})
    current: Optional[_Sample] = None
    try:
        for number, line in enumerate(input_lines(path), 1):
            current = _feed(imported, current, number, line, kind)
        _flush(imported, current)
        if not imported.samples:
            raise LineError(1, "expected `perf script` samples; found none")
    except LineError as exc:
        raise ImportFormatError(path, exc.line, exc.expected) from None
    _finish(imported)
    return imported


def _feed(imported: Imported, current: Optional[_Sample], number: int, line: str,
          kind: Optional[str]) -> Optional[_Sample]:
    if line.startswith("#"):
        return current
    if not line.strip():
        _flush(imported, current)
        return None
    header = _header(line)
    if header is not None:
        _flush(imported, current)
        return _new_sample(imported, number, header, kind)
    frame = parse_callchain(line)
    if frame is None:
        raise LineError(number, "expected a sample header (COMM PID [CPU] TIME: EVENT: ARGS), "
                        "a callchain line (ADDR SYMBOL (MODULE)) or a blank line")
    if current is None:
        raise LineError(number, "expected a sample header line before this callchain line")
    rawfunc, module = frame
    names = collapse.perf_frame(rawfunc, module, collapse.perf_pname(current.comm))
    current.frames[:0] = [Frame(name, module) for name in names]
    return current


def _header(line: str) -> Optional[Header]:
    """A sample's first line. Without call chains perf right-aligns the command, so a
    line may start with blanks; such a line must carry a timestamp to count as a header."""
    if not line[0].isspace():
        return parse_header(line)
    h = parse_header(line.lstrip(" \t\n\r\f\v"))
    return h if h is not None and h.sec is not None else None


def _new_sample(imported: Imported, number: int, h: Header, kind: Optional[str]) -> _Sample:
    event_kind = _kind(number, h.event, kind)
    weighted = SYSCALL.match(h.event) and event_kind in BYTE_KINDS
    imported.meta["counts"].setdefault(event_kind, "bytes" if weighted else "calls")
    ts_ns = _ts_ns(h.sec, h.frac)
    args = parse_args(h.args) if SYSCALL.match(h.event) else {}
    if not all(map(fits, (h.pid, h.tid, ts_ns, h.period or 0, *args.values()))):
        raise LineError(number, "expected numbers below 2^63 in the sample header")
    event = _event(event_kind, args, Event(event_kind, 0, ts_ns, h.pid, h.tid,
                                           calls=1 if h.period is None else h.period))
    return _Sample(number, h.comm, event)


def _kind(number: int, event: str, kind: Optional[str]) -> str:
    m = SYSCALL.match(event)
    if m is not None:
        return m.group(1)
    if kind is None:
        raise LineError(number, f"expected a syscalls:sys_enter_{'/'.join(KINDS)} "
                        f"sample, found {event!r} (give --event KIND to import it as counts)")
    return kind


def _ts_ns(sec: Optional[str], frac: Optional[str]) -> int:
    if sec is None or frac is None:  # the pattern has both or neither
        return 0
    return to_int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _event(kind: str, a: Dict[str, int], base: Event) -> Event:
    """Fill the per-kind fields from the tracepoint's arguments (see heaptrace/events.py)."""
    spec = SPEC[kind]
    named = {ours: a[theirs] for ours, theirs in zip(spec.args, spec.perf_args) if theirs in a}
    values = dict(base.__dict__, **spec.fields_from_args([], named))
    size = spec.size_of(values)
    if size is not None:
        values["size"] = size
    if kind == "mremap":  # the target address, when MREMAP_FIXED gives one
        values["new_addr"] = a.get("new_addr", 0)
    return Event(**values)


def _flush(imported: Imported, sample: Optional[_Sample]) -> None:
    """End of a sample: the command becomes the root frame (stackcollapse-perf.pl's default)."""
    if sample is None:
        return
    root = [Frame(collapse.perf_pname(sample.comm))]
    frames = tuple(reversed(root + sample.frames))
    imported.samples.append(Sample(frames, sample.event))


def _finish(imported: Imported) -> None:
    imported.totals = totals_from_samples(imported.samples, with_buckets=True)
    counts = imported.meta["counts"]
    unknown = {k: ["bytes"] for k, c in counts.items() if c == "calls"}
    if unknown:
        imported.meta["unknown_totals"] = unknown

