"""Parse the output of probes/heaptrace-events.d into a recording's contents.

The script's header documents the line format. Call lines may arrive out of time order (DTrace
drains its per-CPU buffers one CPU at a time), so brk growth is computed after sorting by
timestamp, following each process's break across fork (inherited) and exec (reset).
Totals come from the script's in-kernel aggregations, which stay exact when call lines drop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Optional, Tuple

from heaptrace.errors import ImportFormatError
from heaptrace.events import KINDS, SPEC, Event, Frame, KindTotals
from heaptrace.formats import collapse
from heaptrace.formats.dtrace_text import BLANK, QUANTIZE_HEADER, QUANTIZE_ROW
from heaptrace.formats.imported import Imported, LineError, Sample, totals_from_samples
from heaptrace.formats.textinput import checked_int
from heaptrace.recording import RecordedProcess, RunMeta

_A = re.ASCII
_INT = r"(-?\d+)"
CALL = re.compile(rf"^call ({'|'.join(KINDS)}) (\S+)" + rf" {_INT}" * 10 + r"$", _A)
TARGET = re.compile(r"^target (\d+)$", _A)
FORK = re.compile(r"^proc fork (\d+) (\d+) (\d+)$", _A)
EXEC = re.compile(r"^proc exec (\d+) (\d+) (.*)$", _A)
EXITCODE = re.compile(r"^proc exitcode (\d+) (-?\d+)$", _A)
SIGNAL = re.compile(r"^proc signal (\d+) (\d+)$", _A)
EXIT = re.compile(r"^proc exit (\d+) (\d+) (-?\d+)$", _A)
TOTAL = re.compile(rf"^total (calls|failed|bytes|released) ({'|'.join(KINDS)}) (-?\d+)$", _A)
QUANTIZE = re.compile(rf"^quantize ({'|'.join(KINDS)})$", _A)
FRAME = re.compile(r"^\s+\S", _A)
CLD_EXITED = 1
MACH_TRAP = "_kernelrpc_"


@dataclass
class _Call:
    kind: str
    func: str
    pid: int
    tid: int
    ts: int
    args: Tuple[int, ...]
    ret: int
    errno: int
    frames: List[str] = field(default_factory=list)


@dataclass
class EventsOutput:
    """What one run of heaptrace-events.d printed."""

    target: Optional[int] = None
    calls: List[_Call] = field(default_factory=list)
    forks: List[Tuple[int, int, int]] = field(default_factory=list)  # child, parent, ts
    execs: List[Tuple[int, int, str]] = field(default_factory=list)  # pid, ts, execname
    exit_codes: Dict[int, int] = field(default_factory=dict)
    signals: Dict[int, int] = field(default_factory=dict)
    exits: Dict[int, Tuple[int, int]] = field(default_factory=dict)  # pid -> (ts, why)
    totals: Dict[str, KindTotals] = field(default_factory=dict)

    def exit_status(self) -> Optional[int]:
        """The target's exit status as a shell reports it (128 + signal when killed)."""
        if self.target is None:
            return None
        _, why = self.exits.get(self.target, (0, CLD_EXITED))
        if why != CLD_EXITED and self.target in self.signals:
            return 128 + self.signals[self.target]
        if self.target in self.exit_codes:
            return self.exit_codes[self.target] & 0xFF
        return None


def is_events_line(line: str) -> bool:
    """The first line heaptrace-events.d prints (`target PID`) or, if dtrace started late,
    a call or process line."""
    return any(p.match(line) for p in (TARGET, CALL, FORK, EXEC))


class _Parser:
    def __init__(self) -> None:
        self.out = EventsOutput()
        self.call: Optional[_Call] = None  # the call whose stack lines follow
        self.table: Optional[str] = None  # the kind whose quantize rows follow
        self.number = 0  # the line being read

    def _int(self, token: str) -> int:
        return checked_int(self.number, token)

    def feed(self, number: int, line: str) -> None:
        self.number = number
        if BLANK.match(line):
            return
        if FRAME.match(line):
            self._indented(number, line)
            return
        self.call = self.table = None
        for pattern, handler in self._handlers():
            m = pattern.match(line)
            if m:
                handler(*m.groups())
                return
        raise LineError(number, "expected a heaptrace-events.d line (call, proc, total, "
                        "quantize or target) or an indented stack frame")

    def _handlers(self) -> list:
        return [(CALL, self._on_call), (TARGET, self._on_target), (FORK, self._on_fork),
                (EXEC, self._on_exec), (EXITCODE, self._on_exitcode), (SIGNAL, self._on_signal),
                (EXIT, self._on_exit), (TOTAL, self._on_total), (QUANTIZE, self._on_quantize)]

    def _indented(self, number: int, line: str) -> None:
        if self.table is not None:
            self._quantize_line(self.table, number, line)
        elif self.call is not None:
            self.call.frames.append(line)
        else:
            raise LineError(number, "expected a call line before this stack frame")

    def _quantize_line(self, kind: str, number: int, line: str) -> None:
        if QUANTIZE_HEADER.match(line):
            return
        row = QUANTIZE_ROW.match(line)
        if row is None:
            raise LineError(number, "expected a quantize() row of the table above")
        buckets = self.out.totals.setdefault(kind, KindTotals()).buckets
        buckets[self._int(row.group(1))] = self._int(row.group(2))

    def _on_call(self, kind: str, func: str, *numbers: str) -> None:
        pid, tid, ts, a0, a1, a2, a3, a4, ret, errno = (self._int(n) for n in numbers)
        self.call = _Call(kind, func, pid, tid, ts, (a0, a1, a2, a3, a4), ret, errno)
        self.out.calls.append(self.call)

    def _on_target(self, pid: str) -> None:
        if self.out.target is not None:
            raise LineError(self.number, "expected one run; a second `target` line starts "
                            "another (dtrace -o appends: remove the file before each run)")
        self.out.target = self._int(pid)

    def _on_fork(self, child: str, parent: str, ts: str) -> None:
        self.out.forks.append((self._int(child), self._int(parent), self._int(ts)))

    def _on_exec(self, pid: str, ts: str, name: str) -> None:
        self.out.execs.append((self._int(pid), self._int(ts), name))

    def _on_exitcode(self, pid: str, code: str) -> None:
        self.out.exit_codes[self._int(pid)] = self._int(code)

    def _on_signal(self, pid: str, sig: str) -> None:
        self.out.signals[self._int(pid)] = self._int(sig)

    def _on_exit(self, pid: str, ts: str, why: str) -> None:
        self.out.exits[self._int(pid)] = (self._int(ts), self._int(why))

    def _on_total(self, name: str, kind: str, value: str) -> None:
        t = self.out.totals.setdefault(kind, KindTotals())
        setattr(t, name, self._int(value))

    def _on_quantize(self, kind: str) -> None:
        self.table = kind


def parse_lines(path: str, lines: Iterable[str]) -> EventsOutput:
    parser = _Parser()
    try:
        for number, line in enumerate(lines, 1):
            parser.feed(number, line)
    except LineError as exc:
        raise ImportFormatError(path, exc.line, exc.expected) from None
    return parser.out


def to_imported(out: EventsOutput, kinds: Tuple[str, ...] = KINDS) -> Imported:
    """The recording's contents: events with stacks, exact totals, processes."""
    imported = Imported(meta=RunMeta(source="dtrace"))
    breaks = _brk_growth(out)
    for index, call in enumerate(out.calls):
        if call.kind in kinds:
            event = _event(call, breaks.get(index, 0))
            imported.samples.append(Sample(_frames(call.frames), event))
    imported.totals = _totals(out, imported, kinds)
    imported.processes = _processes(out)
    imported.meta.addresses = True  # each call's addresses: frees match allocations
    if out.target is not None:
        imported.meta.target_pid = out.target
    return imported


def _totals(out: EventsOutput, imported: Imported, kinds: Tuple[str, ...]) -> Dict[str, KindTotals]:
    """The in-kernel totals when the script got to print them (it does at exit), else the
    events' own."""
    if out.totals:
        return {k: t for k, t in out.totals.items() if k in kinds}
    return totals_from_samples(imported.samples, with_buckets=True)


def _frames(lines: List[str]) -> Tuple[Frame, ...]:
    names: List[str] = []
    for line in lines:
        names.extend(reversed(collapse.dtrace_frame(line)))
    return tuple(_frame(name) for name in names)


def _frame(name: str) -> Frame:
    module, _, func = name.rpartition("`")
    addr = int(func, 16) if len(func) <= 18 and re.fullmatch(r"0x[0-9a-fA-F]+", func) else None
    return Frame(name, module or None, addr)


def _failed(call: _Call) -> int:
    """The error of a failed call (errno, or a Mach trap's kern_return_t), 0 on success."""
    return call.ret if call.func.startswith(MACH_TRAP) else call.errno


def _event(call: _Call, growth: int) -> Event:
    """One call as heaptrace's Event (fields per kind from its KindSpec); a failed call has
    ret = -error and size 0."""
    spec = SPEC[call.kind]
    a0 = call.args[0]
    error = _failed(call)
    fields = spec.fields_from_args(call.args)
    e = Event(call.kind, 0, ts_ns=call.ts, pid=call.pid, tid=call.tid,
              ret=-error if error else call.ret, **fields)
    if error:
        return e
    if call.kind == "brk":
        return replace(e, size=growth, ret=call.ret if call.ret != 0 else a0)
    size = spec.size_of(fields)
    if call.kind == "mmap" and call.func.startswith(MACH_TRAP):  # the trap returns the address
        return replace(e, size=size or 0, ret=a0, new_addr=a0)  # through its first argument
    return replace(e, size=size or 0, new_addr=call.ret if spec.returns_address else 0)


def _brk_growth(out: EventsOutput) -> Dict[int, int]:
    """Growth of each successful brk call (by index in out.calls): new break - the previous
    break of its process; the first break of a process only sets the baseline."""
    timeline = [(ts, 0, ("fork", child, parent)) for child, parent, ts in out.forks]
    timeline += [(ts, 0, ("exec", pid, 0)) for pid, ts, _ in out.execs]
    timeline += [(c.ts, 1, ("brk", i, 0)) for i, c in enumerate(out.calls)
                 if c.kind == "brk" and not _failed(c)]
    previous: Dict[int, int] = {}
    growth: Dict[int, int] = {}
    for _, _, (what, a, b) in sorted(timeline, key=lambda item: (item[0], item[1])):
        if what == "fork":
            if b in previous:
                previous[a] = previous[b]
        elif what == "exec":
            previous.pop(a, None)
        else:
            call = out.calls[a]
            new_break = call.ret if call.ret != 0 else call.args[0]
            if call.pid in previous:
                growth[a] = new_break - previous[call.pid]
            previous[call.pid] = new_break
    return growth


def _processes(out: EventsOutput) -> List[RecordedProcess]:
    """Every process seen, with its parent, name, start, end and exit code."""
    parents = {child: (parent, ts) for child, parent, ts in out.forks}
    names: Dict[int, str] = {}
    for pid, _, name in out.execs:
        names[pid] = name
    pids = list(dict.fromkeys([p for p in (out.target,) if p is not None] + list(parents)
                              + [pid for pid, _, _ in out.execs]))
    result = []
    for pid in pids:
        parent, start = parents.get(pid, (None, 0))
        end = out.exits.get(pid, (None, 0))[0]
        code = out.exit_codes.get(pid)
        result.append(RecordedProcess(pid, parent, names.get(pid), start, end, code))
    return result
