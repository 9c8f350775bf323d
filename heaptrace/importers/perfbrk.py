"""brk growth from the break addresses in `perf script` output.

`syscalls:sys_enter_brk` gives the requested break (0 asks for the current one);
`syscalls:sys_exit_brk`, when recorded too, the break after the call. Growth is what
ARCHITECTURE.md says: new break - previous break of the same address space, the previous one
starting at the first answer seen. An address space is a pid; a change of the command of its
main thread is an exec, which starts afresh.

With exits every growth is exact (a call answered with another break than it asked for
failed). Without them, a request's new break is taken as granted, and where the first
request of an address space came after an unanswered query (glibc's `sbrk` asks first), the
break before it is unknown: that growth is counted as unknown, not guessed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Tuple

from heaptrace.events import Event
from heaptrace.formats.imported import Sample

EXIT_BRK = ("syscalls:sys_exit_brk", "sys_exit_brk")
ENOMEM = 12


class BrkCalls:
    """The brk samples of one import, their answers, and the growth computed at the end."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Sample, str]] = []  # each brk sample and its command
        self.answers: Dict[int, int] = {}  # sample index -> break after the call
        self.pending: Dict[int, int] = {}  # tid -> its latest brk call, unanswered
        self.failed = 0

    def called(self, sample: Sample, comm: str) -> None:
        self.pending[sample.event.tid] = len(self.calls)
        self.calls.append((sample, comm))

    def returned(self, exit_event: Event) -> None:
        index = self.pending.pop(exit_event.tid, None)
        if index is not None:
            self.answers[index] = exit_event.ret

    def finish(self) -> int:
        """Set every brk sample's size and new break; returns how many address spaces had
        a first growth that cannot be known."""
        previous: Dict[int, Optional[int]] = {}  # pid -> break (None: asked, not answered)
        images: Dict[int, str] = {}
        unknown = 0
        order = sorted(range(len(self.calls)), key=lambda i: self.calls[i][0].event.ts_ns)
        for i in order:
            sample, comm = self.calls[i]
            e = sample.event
            if e.tid == e.pid and images.setdefault(e.pid, comm) != comm:
                images[e.pid] = comm  # exec: a new address space
                previous.pop(e.pid, None)
            answer = self.answers.get(i)
            new = answer if answer is not None else (e.addr or None)
            if new is None:
                previous.setdefault(e.pid, None)  # a query whose answer perf did not record
                continue
            before = previous.get(e.pid)
            if before is None and e.pid in previous:
                unknown += 1
            previous[e.pid] = new
            sample.event = self._event(e, new, before, answer)
        return unknown

    def _event(self, e: Event, new: int, before: Optional[int], answer: Optional[int]) -> Event:
        if answer is not None and e.addr and answer != e.addr:
            self.failed += 1
            return replace(e, size=0, ret=-ENOMEM)
        return replace(e, size=0 if before is None else new - before, ret=new)
