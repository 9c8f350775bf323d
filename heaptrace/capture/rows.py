"""Turns the backend's records into a recording: events in batches, processes, stacks."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from heaptrace.backends.records import (
    Call,
    MappedFile,
    ProcessChange,
    Record,
    StackCopy,
    WalkedStack,
)
from heaptrace.events import SPEC, Event, growth
from heaptrace.recording import RecordingWriter
from heaptrace.stacks.mappingtracker import MappingTracker
from heaptrace.stacks.procmaps import ProcMaps

BATCH_EVENTS = 20000
BATCH_SECONDS = 0.5

CopyUnwinder = Callable[[StackCopy], Sequence[int]]
FpStacks = Callable[[int], Sequence[int]]


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
                 fp_stack: Optional[FpStacks] = None, maps: Optional[ProcMaps] = None) -> None:
        self.writer = writer
        self.maps = maps if maps is not None else ProcMaps()
        self.tracker = MappingTracker(self.maps)
        self.unwind_copy = unwind_copy
        self.fp_stack = fp_stack
        self._parts: Dict[int, Tuple[int, ...]] = {0: ()}  # stack_ref / rest_ref -> addresses
        self._stack_ids: Dict[tuple, int] = {}
        self._pending: List[Event] = []
        self._last_flush = time.monotonic()
        self.events = 0
        self.growth = 0
        self.with_stack = 0
        self._ppid: Dict[int, int] = {}
        self.live_pids: Set[int] = set()  # traced processes not seen to exit yet

    def __call__(self, record: Record) -> None:
        if isinstance(record, Call):
            self._add_call(record)
        elif isinstance(record, WalkedStack):
            self._parts[record.ref] = record.ips
        elif isinstance(record, StackCopy):
            self.tracker.on_stack_copy(record)
            self._parts[record.ref] = tuple(self.unwind_copy(record))
        elif isinstance(record, MappedFile):
            self.tracker.on_mapped_file(record)
        else:
            self._add_process_change(record)

    def _stack_of(self, call: Call) -> Optional[int]:
        """The recording's id of the call's stack: the frames the probe walked, then those
        unwound from the copy of the rest (or the kernel's frame-pointer stack)."""
        image = self.tracker.images.get(call.pid, 0)
        key = (call.pid, image, call.stack_ref, call.rest_ref, call.stack_id)
        stack_id = self._stack_ids.get(key)
        if stack_id is None:
            ips = self._parts.get(call.stack_ref, ()) + self._parts.get(call.rest_ref, ())
            if not ips and self.fp_stack is not None and call.stack_id >= 0:
                ips = tuple(self.fp_stack(call.stack_id))
            if not ips:
                return None
            stack_id = self._stack_ids[key] = self.writer.add_stack(
                ips=ips, pid=call.pid, image=image, ts_ns=call.ts_ns)
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

    def _add_process_change(self, change: ProcessChange) -> None:
        if change.what == "fork":
            self.writer.add_process(change.pid, change.ppid, change.comm, change.ts_ns)
            self.note_parent(change.pid, change.ppid)
        elif change.what == "exec":
            # A new row: readers treat a later row of the same pid as the exec of a new image.
            self.writer.end_process(change.pid, change.ts_ns)
            self.writer.add_process(change.pid, self._ppid.get(change.pid), change.comm,
                                    change.ts_ns)
        else:
            self.writer.end_process(change.pid, change.ts_ns)
            self.live_pids.discard(change.pid)
        self.tracker.on_process_change(change)

    def note_parent(self, pid: int, ppid: int) -> None:
        self._ppid[pid] = ppid
        self.live_pids.add(pid)

    def flush_if_due(self) -> bool:
        """Commit the pending batch if it is old enough; True if it did."""
        if time.monotonic() - self._last_flush < BATCH_SECONDS:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        self.writer.add_events(self._pending)
        self._pending = []
        self.writer.commit()
        self._last_flush = time.monotonic()
