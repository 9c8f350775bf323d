"""Records taken from the probe's ring buffer but not handled yet, in arrival order, in bounded
memory: raw bytes in memory up to a limit, then in an unlinked spill file.

A target can make records faster than they are handled (mmap/munmap in a tight loop makes
hundreds of thousands a second). They are taken off the ring buffer anyway, so that the
kernel drops none, and wait here: decoded one record at a time when their turn comes (a
decoded call costs several times its raw bytes), and past `memory_bytes` on disk beside the
recording, so that heaptrace's memory does not grow with the backlog.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections import deque
from typing import Deque, Optional

MEMORY_BYTES = 8 << 20  # raw bytes kept in memory before the backlog spills to disk
CHUNK = 1 << 20  # spill writes and reads, in bytes
LENGTH = struct.Struct("<I")


class Backlog:
    """A FIFO of byte strings: in memory while it is small, then in a spill file.

    Everything in memory is older than everything in the file, so the order holds: once
    the file holds records, new ones go behind them until it is read empty."""

    def __init__(self, spill_dir: Optional[str] = None, memory_bytes: int = MEMORY_BYTES) -> None:
        self.spill_dir = spill_dir
        self.memory_bytes = memory_bytes
        self._memory: Deque[bytes] = deque()
        self._in_memory = 0  # bytes
        self._fd: Optional[int] = None
        self._written = 0  # file offset written up to (self._out not included)
        self._read = 0  # file offset read up to (self._in included)
        self._out = bytearray()  # records spilled, not written to the file yet
        self._in = b""  # bytes read from the file, not handed out yet
        self._in_at = 0
        self._spilled_now = 0  # records in the file (or its buffers) not handed out yet
        self.spilled = 0  # records that went through the file, for the run's counters
        self.appended = self.popped = 0  # records ever, to tell when some have been handed on
        self.spill_error: Optional[str] = None  # why the file could not be written, if so
        self.peak_spill_bytes = 0

    def __len__(self) -> int:
        return len(self._memory) + self._spilled_now

    def append(self, raw: bytes) -> None:
        self.appended += 1
        if not self._spilled_now and self._in_memory + len(raw) <= self.memory_bytes:
            self._memory.append(raw)
            self._in_memory += len(raw)
            return
        self._out += LENGTH.pack(len(raw))
        self._out += raw
        self._spilled_now += 1
        self.spilled += 1
        if len(self._out) >= CHUNK:
            self._write_out()

    def pop(self) -> Optional[bytes]:
        """The oldest record, or None when there is none."""
        if self._memory:
            raw = self._memory.popleft()
            self._in_memory -= len(raw)
            self.popped += 1
            return raw
        if not self._spilled_now:
            return None
        self.popped += 1
        size = LENGTH.unpack(self._take(LENGTH.size))[0]
        raw = self._take(size)
        self._spilled_now -= 1
        if not self._spilled_now:  # read empty: the file starts over
            self._written = self._read = self._in_at = 0
            self._in = b""
            if self._fd is not None:
                os.ftruncate(self._fd, 0)
        return raw

    def _take(self, n: int) -> bytes:
        """The next n spilled bytes: from the read buffer, the file, then the write buffer."""
        while len(self._in) - self._in_at < n:
            rest = self._in[self._in_at:]
            if self._read < self._written:
                assert self._fd is not None
                more = os.pread(self._fd, max(CHUNK, n), self._read)
                if not more:
                    raise OSError(f"heaptrace's spill file ended at {self._read}")
                self._read += len(more)
            else:  # all of the file was read: the rest is still in the write buffer
                more, self._out = bytes(self._out), bytearray()
                self._written += len(more)
                self._read += len(more)
            self._in, self._in_at = rest + more, 0
        out = self._in[self._in_at:self._in_at + n]
        self._in_at += n
        return out

    def _write_out(self) -> None:
        """Write the spilled records buffered so far to the file. When it cannot be written
        (a full disk), they stay in memory, in order, and `spill_error` says why: the
        recording, written beside it, then fails with the reason itself."""
        if self.spill_error is not None:
            return
        done = 0
        try:
            if self._fd is None:
                # O_TMPFILE where it can: never visible by name, gone with heaptrace
                with tempfile.TemporaryFile(prefix=".heaptrace-backlog-",
                                            dir=self.spill_dir) as f:
                    self._fd = os.dup(f.fileno())
            while done < len(self._out):
                n = os.pwrite(self._fd, memoryview(self._out)[done:], self._written)
                self._written += n
                done += n
        except OSError as exc:
            self.spill_error = exc.strerror or str(exc)
            del self._out[:done]  # what was written is read from the file, the rest from here
            return
        self._out = bytearray()
        self.peak_spill_bytes = max(self.peak_spill_bytes, self._written - self._read)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._memory.clear()
        self._out, self._in, self._in_at, self._spilled_now = bytearray(), b"", 0, 0
        self._in_memory = self._written = self._read = 0
