"""Turns the backend's records into a recording: events in batches, processes, stacks."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from heaptrace.backends.probe_layout import CAUSE_CONTEXT, CAUSE_SYSCALL
from heaptrace.backends.records import (
    Call,
    MappedFile,
    ProcessChange,
    PyCode,
    PyStack,
    Record,
    ResidentSum,
    RssSample,
    StackCopy,
    WalkedStack,
)
from heaptrace.events import RSS_CLASS, SPEC, Event, Frame, Rss, growth
from heaptrace.recording import RecordedRss, RecordingWriter
from heaptrace.recording.lru import Lru
from heaptrace.stacks.mappingtracker import MappingTracker
from heaptrace.stacks.procmaps import ProcMaps
from heaptrace.stacks.python.codes import CodeInfo
from heaptrace.stacks.python.tracker import PyFrame, PythonProcesses, Teach

BATCH_EVENTS = 20000
BATCH_SECONDS = 0.5
STACK_CACHE = 65536  # call references -> stack id, kept for the stacks most recently used

CopyUnwinder = Callable[[StackCopy], Sequence[int]]
FpStacks = Callable[[int], Sequence[int]]


def resident_event(rs: ResidentSum, stack_id: Optional[int]) -> Event:
    """A probe's sum of resident growth as a `resident` event (fields: events.py)."""
    return Event("resident", rs.bytes, rs.ts_ns, rs.pid, rs.tid, addr=rs.addr,
                 flags=RSS_CLASS[rs.member], prot=rs.cause,
                 fd=rs.nr if rs.cause == CAUSE_SYSCALL else -1, stack_id=stack_id,
                 calls=rs.increments)


def context_frame(comm: str) -> Frame:
    """The one frame of growth in another task's context: no user stack of the process's."""
    return Frame(f"[kernel: {comm or 'unknown task'}]")


def call_to_event(call: Call, stack_id: Optional[int]) -> Event:
    """Map a syscall's raw arguments to the fields its KindSpec names (ARCHITECTURE.md)."""
    spec = SPEC[call.kind]
    ok = not (-4096 < call.ret < 0)
    return Event(call.kind, call.size, call.ts_ns, call.pid, call.tid, ret=call.ret,
                 stack_id=stack_id, new_addr=call.ret if ok and spec.returns_address else 0,
                 mem_class=call.cls, **spec.fields_from_args(call.args))


class Recorder:
    """Receives records from a backend and writes them, committing every batch so that a
    recording cut short stays readable."""

    def __init__(self, writer: RecordingWriter, unwind_copy: CopyUnwinder,
                 fp_stack: Optional[FpStacks] = None, maps: Optional[ProcMaps] = None,
                 teach_python: Optional[Teach] = None) -> None:
        self.writer = writer
        self.maps = maps if maps is not None else ProcMaps()
        self.tracker = MappingTracker(self.maps)
        self.python = PythonProcesses(self.maps, teach_python)
        self._py: Dict[int, Tuple[List[PyFrame], bool]] = {}  # py_ref -> (frames, cut)
        self._execs_ahead: Dict[int, int] = {}  # pid -> execs prepare() saw, not handled yet
        self._seen_ahead: Dict[int, int] = {}  # pid -> records prepare() saw, not handled yet
        self.unwind_copy = unwind_copy
        self.fp_stack = fp_stack
        self._parts: Dict[int, Tuple[int, ...]] = {0: ()}  # stack_ref / rest_ref -> addresses
        # pid -> the references of its stacks in _parts and _py (walked, copied, Python): the
        # probe seeds them with the process's birth, so no later process shares them
        self._refs: Dict[int, List[int]] = {}
        self._born: Dict[int, int] = {}  # pid -> when it was forked (none: traced from the start)
        # processes whose exit was handled: (exit time, pid, its stacks' refs), oldest first
        self._exited: Deque[Tuple[int, int, List[int]]] = deque()
        self.forget_process: Callable[[int], None] = lambda pid: None  # the unwinder's caches
        # the recording's stack id of a call's references, for the stacks in use (an evicted
        # one is found again by the writer, whose stack keys are the frames themselves)
        self._stack_ids: Lru[tuple, int] = Lru(STACK_CACHE)
        self._pending: List[Event] = []
        self._last_flush = time.monotonic()
        self.started = False  # a traced process exec'd or made a call: the command runs
        # Called after each committed batch, also from inside a flood of records that keeps
        # the poll loop from coming round (the run's checkpoints).
        self.after_flush: Callable[[], None] = lambda: None
        self.events = 0
        self.growth = 0
        self.with_stack = 0
        self._ppid: Dict[int, int] = {}
        self.live_pids: Set[int] = set()  # traced processes not seen to exit yet
        self.resident_sums = 0
        self._rss_rows: List[RecordedRss] = []
        self._rss_last: Dict[Tuple[int, int], Rss] = {}  # (pid, space) -> last RSS written
        self._rss_peaks: Dict[Tuple[int, int], RssSample] = {}  # the latest, with its peak

    def __call__(self, record: Record) -> None:
        if record.pid in self._seen_ahead and (isinstance(record, MappedFile) or (
                isinstance(record, ProcessChange) and record.what == "exec")):
            left = self._seen_ahead.pop(record.pid) - 1
            if left > 0:
                self._seen_ahead[record.pid] = left
        if isinstance(record, Call) or (isinstance(record, ProcessChange)
                                        and record.what == "exec"):
            self.started = True
        if isinstance(record, Call):
            self._add_call(record)
        elif isinstance(record, WalkedStack):
            self._parts[record.ref] = record.ips
            self._refs.setdefault(record.pid, []).append(record.ref)
        elif isinstance(record, StackCopy):
            self.tracker.on_stack_copy(record)
            self.look_for_python(record.pid)
            self._parts[record.ref] = tuple(self.unwind_copy(record))
            self._refs.setdefault(record.pid, []).append(record.ref)
        elif isinstance(record, MappedFile):
            self.tracker.on_mapped_file(record)
            self.look_for_python(record.pid)
        elif isinstance(record, PyStack):
            self._py[record.ref] = (self.python.frames(record), record.cut)
            self._refs.setdefault(record.pid, []).append(record.ref)
            for addr, scope, info in self.python.unsent_codes(record):
                self._write_py_code(record.pid, addr, scope, time.monotonic_ns(), info)
        elif isinstance(record, PyCode):
            self._add_py_code(record)
        elif isinstance(record, RssSample):
            self._add_rss(record)
        elif isinstance(record, ResidentSum):
            self._add_resident(record)
        else:
            self._add_process_change(record)

    def prepare(self, records: Sequence[Record]) -> None:
        """A look ahead at records about to be handled: a process that exec'd or mapped a
        file holding CPython is taught to the probe now, so that its Python frames are read
        from its first calls on, however long the records before them take to handle.
        Execs of earlier looks that still wait to be handled count in its generation."""
        for record in records:
            if isinstance(record, (ProcessChange, MappedFile)):  # execs and mapped files
                self._seen_ahead[record.pid] = self._seen_ahead.get(record.pid, 0) + 1
            if isinstance(record, ProcessChange) and record.what == "exec":
                self._execs_ahead[record.pid] = self._execs_ahead.get(record.pid, 0) + 1
                self.python.look_exec(record.pid, self._gen_ahead(record.pid), record.filename)
            elif isinstance(record, MappedFile):
                # The file through /proc/PID/map_files, never the probe's path in our cwd
                path, elf = self.tracker.mapped_file(record)
                self.python.look_file(record.pid, self._gen_ahead(record.pid), path,
                                      record.addr, record.offset, elf.build_id if elf else None)

    def _gen_ahead(self, pid: int) -> int:
        return self.tracker.images.get(pid, 0) + self._execs_ahead.get(pid, 0)

    def look_for_python(self, pid: int) -> None:
        """Teach the probe where the pid's Python runtime is, once its mappings show one."""
        self.python.look(pid, self.tracker.images.get(pid, 0))

    def _add_py_code(self, record: PyCode) -> None:
        info = self.python.code(record)
        if info is not None:
            self._write_py_code(record.pid, record.addr, record.scope, record.ts_ns, info)

    def _write_py_code(self, pid: int, addr: int, scope: int, ts_ns: int,
                       info: CodeInfo) -> None:
        self.writer.add_py_code(pid, addr, scope, ts_ns, info.name, info.qualname, info.filename,
                                info.firstlineno, info.first_traceable, info.lines_format,
                                info.lines)

    def _stack_of(self, call: Call) -> Optional[int]:
        """The recording's id of the call's stack."""
        image = self.tracker.images.get(call.pid, 0)
        return self._stack_id(call.pid, image, call.stack_ref, call.rest_ref, call.stack_id,
                              call.ts_ns, call.py_ref)

    def _stack_id(self, pid: int, image: int, stack_ref: int, rest_ref: int, fp_id: int,
                  ts_ns: int, py_ref: int = 0) -> Optional[int]:
        """The frames the probe walked, then those unwound from the copy of the rest (or the
        kernel's frame-pointer stack), with the calling thread's Python frames (py_ref),
        stored once per process image."""
        epoch = self.maps.epoch(pid, ts_ns)  # libraries replaced since: new stacks
        # The writer keeps one row per process, image and addresses: what the addresses mean
        # changes with an exec, with a library replaced at one place, and with the process
        # (a later one with the pid: the recorder forgot the first one's generations).
        image_key = self._born.get(pid, 0) << 64 | image << 32 | epoch
        key = (pid, image_key, stack_ref, rest_ref, fp_id, py_ref)
        stack_id = self._stack_ids.get(key)
        if stack_id is None:
            ips = self._parts.get(stack_ref, ()) + self._parts.get(rest_ref, ())
            if not ips and self.fp_stack is not None and fp_id >= 0:
                ips = tuple(self.fp_stack(fp_id))
            if not ips:
                return None
            py, cut = self._py.get(py_ref, ([], False))
            stack_id = self.writer.add_stack(ips=ips, pid=pid, image=image_key,
                                             ts_ns=ts_ns, py=py, py_cut=cut)
            self._stack_ids.put(key, stack_id)
        return stack_id

    def _add_call(self, call: Call) -> None:
        stack_id = self._stack_of(call)
        event = call_to_event(call, stack_id)
        self._pending.append(event)
        self.tracker.on_event(event)
        self.events += 1
        self.with_stack += stack_id is not None
        self.growth += growth(event)
        if len(self._pending) >= BATCH_EVENTS:
            self.flush()

    def _add_resident(self, rs: ResidentSum) -> None:
        if rs.cause == CAUSE_CONTEXT:
            stack_id: Optional[int] = self.writer.add_stack(
                frames=(context_frame(rs.comm),), pid=rs.pid, ts_ns=rs.ts_ns)
        else:
            stack_id = self._stack_id(rs.pid, rs.gen, rs.stack_ref, rs.rest_ref, rs.stack_id,
                                      rs.ts_ns)
        self._pending.append(resident_event(rs, stack_id))
        self.resident_sums += 1
        if len(self._pending) >= BATCH_EVENTS:
            self.flush()

    def _add_rss(self, sample: RssSample) -> None:
        """A space's RSS, written when it changed; its peak (exact) when it ends."""
        key = (sample.pid, sample.space)
        if sample.why == "now" and self._rss_last.get(key) == sample.rss:
            return
        self._rss_last[key] = sample.rss
        self._rss_rows.append(RecordedRss(sample.ts_ns, sample.pid, sample.space, sample.why,
                                          sample.rss))
        self._rss_peaks[key] = sample
        if sample.why == "end":
            self._add_peak(self._rss_peaks.pop(key))

    def _add_peak(self, sample: RssSample) -> None:
        if sample.peak > 0:
            self._rss_rows.append(RecordedRss(sample.peak_ts_ns, sample.pid, sample.space, "peak",
                                              sample.peak_rss))

    def add_rss_start(self, pid: int, ts_ns: int, rss: Rss) -> None:
        """A process's RSS when it was attached (its space is not known yet)."""
        self._rss_rows.append(RecordedRss(ts_ns, pid, None, "start", rss))

    def finish_rss(self) -> None:
        """The exact peak of every space still followed."""
        for sample in self._rss_peaks.values():
            self._add_peak(sample)
        self._rss_peaks.clear()

    def _add_process_change(self, change: ProcessChange) -> None:
        if change.what == "fork":
            self._born[change.pid] = change.ts_ns
            self.writer.add_process(change.pid, change.ppid, change.comm, change.ts_ns)
            self.note_parent(change.pid, change.ppid)
            self.python.on_fork(change.ppid, change.pid)
        elif change.what == "exec":
            # A new row: readers treat a later row of the same pid as the exec of a new image.
            self.writer.end_process(change.pid, change.ts_ns)
            self.writer.add_process(change.pid, self._ppid.get(change.pid), change.comm,
                                    change.ts_ns)
            self.python.on_exec(change.pid, self.tracker.images.get(change.pid, 0) + 1)
            ahead = self._execs_ahead.pop(change.pid, 0) - 1
            if ahead > 0:  # handled now: its generation is in tracker.images from here on
                self._execs_ahead[change.pid] = ahead
        else:
            self.writer.end_process(change.pid, change.ts_ns)
            self.live_pids.discard(change.pid)
            self._exited.append((change.ts_ns, change.pid, self._refs.pop(change.pid, [])))
        self.tracker.on_process_change(change)
        if change.what == "exec":
            self.look_for_python(change.pid)  # the exec's /proc snapshot may show it already

    def forget_exited(self, before_ns: int) -> None:
        """Drop what is kept for the processes that exited before `before_ns`, a time before
        which the probe holds nothing more (every call they made has been handled): their
        stacks' frames (walked, copied, Python: the probe's references are seeded with the
        process's birth, so no later process names them), the cached stack ids, mappings,
        generations and the unwinder's caches. A fork-heavy run (a build) thus keeps what its
        live processes need, not every process it ever saw. A pid already back as a new
        process keeps its per-pid state (that process's now)."""
        gone: Set[int] = set()
        while self._exited and self._exited[0][0] < before_ns:
            _, pid, refs = self._exited.popleft()
            for ref in refs:
                self._parts.pop(ref, None)
                self._py.pop(ref, None)
            if pid not in self.live_pids:  # not a new process with that pid already
                gone.add(pid)
        if not gone:
            return
        self.maps.forget(sorted(gone), self.writer)
        for pid in gone:
            self._ppid.pop(pid, None)
            self._born.pop(pid, None)
            self.tracker.forget(pid)
            if pid not in self._seen_ahead:  # else a new process with the pid, taught ahead
                self.python.forget(pid)
            self.forget_process(pid)
        for key in [key for key in self._rss_last if key[0] in gone]:
            del self._rss_last[key]
        self._stack_ids.drop(lambda key: key[0] in gone)
        self.writer.forget_stacks(gone)

    def kept(self) -> Dict[str, int]:
        """How many entries the recorder keeps per process and stack, by what they are (what
        forget_exited bounds; the tests count them)."""
        return {"stack_parts": len(self._parts) - 1, "python_stacks": len(self._py),
                "stack_ids": len(self._stack_ids), "stored_stack_ids": self.writer.cached_stacks(),
                "processes": len(self._ppid), "python_processes": self.python.processes(),
                "births": len(self._born), "mapped_pids": len(self.maps.pids()),
                "images": len(self.tracker.images), "rss_spaces": len(self._rss_last),
                "exited_waiting": len(self._exited)}

    def note_parent(self, pid: int, ppid: int) -> None:
        self._ppid[pid] = ppid
        self.live_pids.add(pid)

    def due(self) -> bool:
        """The pending batch is old enough to be committed."""
        return time.monotonic() - self._last_flush >= BATCH_SECONDS

    def flush(self) -> None:
        self.writer.add_events(self._pending)
        self.writer.add_rss(self._rss_rows)
        self._pending, self._rss_rows = [], []
        self.writer.commit()
        self._last_flush = time.monotonic()
        self.after_flush()
