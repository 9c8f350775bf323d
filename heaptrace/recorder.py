"""Turns the backend's records into a recording: events in batches, processes, stacks."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence

from heaptrace.backends.records import Call, ProcessChange, Record
from heaptrace.events import Event
from heaptrace.recording import RecordingWriter

BATCH_EVENTS = 20000
BATCH_SECONDS = 0.5

StackResolver = Callable[[Call], Sequence[int]]


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def call_to_event(call: Call, stack_id: Optional[int]) -> Event:
    """Map a syscall's raw arguments to the fields ARCHITECTURE.md gives each kind."""
    a = call.args
    ok = not (-4096 < call.ret < 0)
    if call.kind == "brk":
        return Event("brk", call.size, call.ts_ns, call.pid, call.tid, addr=a[0], ret=call.ret,
                     stack_id=stack_id)
    if call.kind == "mmap":
        return Event("mmap", call.size, call.ts_ns, call.pid, call.tid, addr=a[0], length=a[1],
                     prot=a[2], flags=a[3], fd=_signed32(a[4]), ret=call.ret, stack_id=stack_id,
                     new_addr=call.ret if ok else 0)
    if call.kind == "munmap":
        return Event("munmap", call.size, call.ts_ns, call.pid, call.tid, addr=a[0], length=a[1],
                     ret=call.ret, stack_id=stack_id)
    return Event("mremap", call.size, call.ts_ns, call.pid, call.tid, addr=a[0], length=a[1],
                 new_length=a[2], flags=a[3], ret=call.ret, stack_id=stack_id,
                 new_addr=call.ret if ok else 0)


class Recorder:
    """Receives records from a backend and writes them, committing every batch so that a
    recording cut short stays readable."""

    def __init__(self, writer: RecordingWriter, resolve_stack: StackResolver) -> None:
        self.writer = writer
        self.resolve_stack = resolve_stack
        self._pending: List[Event] = []
        self._last_flush = time.monotonic()
        self.events = 0
        self.growth = 0
        self.exits: Dict[int, int] = {}

    def __call__(self, record: Record) -> None:
        if isinstance(record, Call):
            self._add_call(record)
        else:
            self._add_process_change(record)

    def _add_call(self, call: Call) -> None:
        ips = self.resolve_stack(call)
        stack_id = self.writer.add_stack(ips=ips, pid=call.pid) if ips else None
        self._pending.append(call_to_event(call, stack_id))
        self.events += 1
        if call.kind != "munmap" and call.size > 0:
            self.growth += call.size
        if len(self._pending) >= BATCH_EVENTS:
            self.flush()

    def _add_process_change(self, change: ProcessChange) -> None:
        if change.what == "fork":
            self.writer.add_process(change.pid, change.ppid, change.comm, change.ts_ns)
        elif change.what == "exec":
            self.writer.rename_process(change.pid, change.comm)
        else:
            self.writer.end_process(change.pid, change.ts_ns)

    def flush_if_due(self) -> None:
        if self._pending and time.monotonic() - self._last_flush >= BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.writer.add_events(self._pending)
        self._pending = []
        self.writer.commit()
        self._last_flush = time.monotonic()
