"""Synthetic recordings for unit tests: a few processes, stacks and events written with
RecordingWriter, so analysis and rendering run without tracing anything."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

from heaptrace.events import RSS_CLASS, Event, Frame, Rss
from heaptrace.recording import RecordedRss, RecordingWriter

START_NS = 1_000_000_000
MS = 1_000_000


class Synth:
    """Builds a recording event by event; stacks are given root first as names."""

    def __init__(self, path: str, start_ns: int = START_NS) -> None:
        self.writer = RecordingWriter(path)
        self.writer.set_meta(start_ns=start_ns)
        self.start_ns = start_ns
        self._stacks: Dict[tuple, int] = {}

    def process(self, pid: int, comm: str, at_ms: float = 0, ppid: Optional[int] = None,
                end_ms: Optional[float] = None) -> None:
        self.writer.add_process(pid, ppid, comm, self.ts(at_ms))
        if end_ms is not None:
            self.writer.end_process(pid, self.ts(end_ms))

    def ts(self, ms: float) -> int:
        return self.start_ns + int(ms * MS)

    def stack(self, names: Sequence[str], pid: int = 1) -> Optional[int]:
        if not names:
            return None
        key = (pid, tuple(names))
        if key not in self._stacks:
            frames = [Frame(n, "prog", 0x1000 + i) for i, n in enumerate(reversed(names))]
            self._stacks[key] = self.writer.add_stack((), frames, pid)
        return self._stacks[key]

    def event(self, kind: str, ms: float, pid: int = 1, stack: Sequence[str] = (),
              **fields: int) -> None:
        self.writer.add_events([Event(kind=kind, ts_ns=self.ts(ms), pid=pid, tid=pid,
                                      stack_id=self.stack(stack, pid), **fields)])

    def mmap(self, ms: float, addr: int, length: int, pid: int = 1, stack=()) -> None:
        self.event("mmap", ms, pid, stack, size=length, length=length, ret=addr)

    def munmap(self, ms: float, addr: int, length: int, pid: int = 1, stack=()) -> None:
        self.event("munmap", ms, pid, stack, size=length, addr=addr, length=length, ret=0)

    def brk(self, ms: float, new_break: int, delta: int, pid: int = 1, stack=()) -> None:
        self.event("brk", ms, pid, stack, size=delta, addr=new_break, ret=new_break)

    def mremap(self, ms: float, old: int, old_len: int, new: int, new_len: int, pid: int = 1,
               stack=()) -> None:
        self.event("mremap", ms, pid, stack, size=new_len - old_len, addr=old, length=old_len,
                   new_addr=new, new_length=new_len, ret=new)

    def rss(self, ms: float, pid: int, anon: int, file: int = 0, shmem: int = 0,
            space: Optional[int] = None, why: str = "change") -> None:
        """The RSS of pid's address space `space` (one per pid unless given) at `ms`."""
        rss = Rss(anon, file, shmem)
        self.writer.add_rss([RecordedRss(self.ts(ms), pid, pid if space is None else space,
                                         why, rss)])

    def resident(self, ms: float, nbytes: int, cls: str = "anon", pid: int = 1, stack=(),
                 pages: int = 0, cause: int = 1) -> None:
        """Bytes that became resident (first touch), as the probe sums them."""
        self.event("resident", ms, pid, stack, size=nbytes, flags=RSS_CLASS[cls], prot=cause,
                   calls=pages or max(nbytes // 4096, 1))

    def close(self) -> None:
        self.writer.close()
