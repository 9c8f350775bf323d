"""`heaptrace import perf`: `perf script` output into a recording, one event per sample.

Record with the syscall tracepoints, with or without call chains, for example:

    perf record -e syscalls:sys_enter_mmap -e syscalls:sys_enter_munmap \\
                -e syscalls:sys_enter_brk -e syscalls:sys_exit_brk -g -- CMD
    perf script > out.perf && heaptrace import perf out.perf -o run.db

Stacks are folded as FlameGraph's stackcollapse-perf.pl folds them by default (the command
name as the root frame, offsets dropped, "[unknown]" replaced by the module's file name). Each
sample's weight is the tracepoint's byte argument when it has one (`len` of mmap and munmap,
new_len - old_len of mremap); brk's growth comes from the break addresses (importers/perfbrk.py:
exact with sys_exit_brk, which gives each call's new break). Other events (cycles, uprobes)
are imported as counts of the kind given with --event.

perf marks frames it expanded from inline debug information "(inlined)", which hides their
module; each gets the module of the real frame of its sample whose address is nearest (perf
prints addresses relative to their module, and one module's are close together), so that the
program's own frames are told from the C library's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from heaptrace.errors import ImportFormatError
from heaptrace.events import SPEC, SPECS, SYSCALL_KINDS, Event, Frame
from heaptrace.formats import collapse
from heaptrace.formats.imported import Imported, LineError, Sample, totals_from_samples
from heaptrace.formats.perf_script import Header, parse_args, parse_callchain, parse_header
from heaptrace.formats.textinput import fits, input_lines, to_int
from heaptrace.importers.perfbrk import EXIT_BRK, BrkCalls
from heaptrace.recording import RunMeta

_A = re.ASCII
SYSCALL = re.compile(r"^(?:syscalls:)?sys_enter_(" + "|".join(SYSCALL_KINDS) + r")$", _A)
# Kinds whose bytes the arguments alone give (brk needs the previous break).
BYTE_KINDS = tuple(s.name for s in SPECS if s.name != "brk" and s.is_syscall)


INLINED = "inlined"


@dataclass
class _Sample:
    line: int
    comm: str
    event: Event
    frames: List[Frame] = field(default_factory=list)  # root first, as stackcollapse builds
    addrs: List[Optional[int]] = field(default_factory=list)  # of each frame, module-relative
    exit_brk: bool = False  # a sys_exit_brk sample: only its return value is kept


@dataclass
class _State:
    """What parsing has found so far."""

    imported: Imported
    kind: Optional[str]
    brk: BrkCalls = field(default_factory=BrkCalls)
    current: Optional[_Sample] = None


def parse(path: str, kind: Optional[str] = None) -> Imported:
    """Parse `perf script` output; `kind` names the kind of events that are not memory
    syscall tracepoints."""
    state = _State(Imported(meta=RunMeta(source="perf")), kind)
    try:
        for number, line in enumerate(input_lines(path), 1):
            _feed(state, number, line)
        _flush(state)
        if not state.imported.samples:
            raise LineError(1, "expected `perf script` samples; found none")
    except LineError as exc:
        raise ImportFormatError(path, exc.line, exc.expected) from None
    _finish(state)
    return state.imported


def _feed(state: _State, number: int, line: str) -> None:
    if line.startswith("#"):
        return
    if not line.strip():
        _flush(state)
        return
    header = _header(line)
    if header is not None:
        _flush(state)
        state.current = _new_sample(state, number, header)
        return
    frame = parse_callchain(line)
    if frame is None:
        raise LineError(number, "expected a sample header (COMM PID [CPU] TIME: EVENT: ARGS), "
                        "a callchain line (ADDR SYMBOL (MODULE)) or a blank line")
    current = state.current
    if current is None:
        raise LineError(number, "expected a sample header line before this callchain line")
    rawfunc, module = frame
    names = collapse.perf_frame(rawfunc, module, collapse.perf_pname(current.comm))
    current.frames[:0] = [Frame(name, module) for name in names]
    current.addrs[:0] = [_address(line)] * len(names)


def _address(line: str) -> Optional[int]:
    token = line.split(None, 1)[0] if line.strip() else ""
    try:
        return int(token, 16) if len(token) <= 16 else None
    except ValueError:
        return None


def _header(line: str) -> Optional[Header]:
    """A sample's first line. Without call chains perf right-aligns the command, so a
    line may start with blanks; such a line must carry a timestamp to count as a header."""
    if not line[0].isspace():
        return parse_header(line)
    h = parse_header(line.lstrip(" \t\n\r\f\v"))
    return h if h is not None and h.sec is not None else None


def _new_sample(state: _State, number: int, h: Header) -> _Sample:
    ts_ns = _ts_ns(h.sec, h.frac)
    if h.event in EXIT_BRK:
        return _Sample(number, h.comm, Event("brk", 0, ts_ns, h.pid, h.tid,
                                             ret=_exit_value(number, h.args)), exit_brk=True)
    event_kind = _kind(number, h.event, state.kind)
    weighted = SYSCALL.match(h.event) and event_kind in BYTE_KINDS
    state.imported.meta.counts.setdefault(event_kind, "bytes" if weighted else "calls")
    args = parse_args(h.args) if SYSCALL.match(h.event) else {}
    if not all(map(fits, (h.pid, h.tid, ts_ns, h.period or 0, *args.values()))):
        raise LineError(number, "expected numbers below 2^63 in the sample header")
    event = _event(event_kind, args, Event(event_kind, 0, ts_ns, h.pid, h.tid,
                                           calls=1 if h.period is None else h.period))
    return _Sample(number, h.comm, event)


def _exit_value(number: int, args: str) -> int:
    """sys_exit_brk's one argument: the break after the call (`0x55b08f391000`)."""
    token = args.split(None, 1)[0] if args.strip() else ""
    value = parse_args(f"ret: {token}").get("ret")
    if value is None or not fits(value):
        raise LineError(number, "expected the new break (0x...) after syscalls:sys_exit_brk")
    return value


def _kind(number: int, event: str, kind: Optional[str]) -> str:
    m = SYSCALL.match(event)
    if m is not None:
        return m.group(1)
    if kind is None:
        raise LineError(number, f"expected a syscalls:sys_enter_{'/'.join(SYSCALL_KINDS)} "
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


def _flush(state: _State) -> None:
    """End of a sample: the command becomes the root frame (stackcollapse-perf.pl's default)."""
    sample, state.current = state.current, None
    if sample is None:
        return
    if sample.exit_brk:
        state.brk.returned(sample.event)
        return
    root = [Frame(collapse.perf_pname(sample.comm))]
    frames = tuple(reversed(root + _modules_of_inlined(sample)))
    state.imported.samples.append(Sample(frames, sample.event))
    if sample.event.kind == "brk":
        state.brk.called(state.imported.samples[-1], sample.comm)


def _modules_of_inlined(sample: _Sample) -> List[Frame]:
    """The frames with each "(inlined)" module replaced by the nearest real frame's."""
    real: List[Tuple[int, str]] = [(a, f.module) for f, a in zip(sample.frames, sample.addrs)
                                   if f.module and f.module != INLINED and a is not None
                                   and not f.module.startswith("[")]
    if not real:
        return sample.frames
    frames = []
    for frame, addr in zip(sample.frames, sample.addrs):
        if frame.module == INLINED and addr is not None:
            module = min(real, key=lambda r: abs(r[0] - addr))[1]
            frame = Frame(frame.name, module, frame.addr)
        frames.append(frame)
    return frames


def _finish(state: _State) -> None:
    imported = state.imported
    counts = imported.meta.counts
    unknown_first = state.brk.finish()
    if "brk" in counts:
        counts["brk"] = "bytes"
    imported.totals = totals_from_samples(imported.samples, with_buckets=True)
    if "brk" in imported.totals:
        imported.totals["brk"].failed = state.brk.failed
    unknown = {k: ["bytes"] for k, c in counts.items() if c == "calls"}
    if unknown_first:
        unknown["brk"] = ["bytes"]
        imported.meta.brk_growth_unknown = unknown_first
        imported.notes.append(
            f"brk bytes are not known in full: the break before the first growth of "
            f"{unknown_first} process(es) is not in the data (record syscalls:sys_exit_brk "
            "too: it gives each call's new break)")
    if unknown:
        imported.meta.unknown_totals = unknown
