"""Reading a live traced process's memory through /proc/PID/mem (root, or the tracer's own
children): what the probe's copies cut short, and code bytes for the unwinder."""

from __future__ import annotations

import os
from typing import Callable, Optional

# Reads `size` bytes at an address (None when it cannot: the process is gone, the address
# is not mapped).
MemoryReader = Callable[[int, int], Optional[bytes]]


def process_reader(pid: int) -> MemoryReader:
    def read(addr: int, size: int) -> Optional[bytes]:
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        except OSError:
            return None
        try:
            data = os.pread(fd, size, addr)
        except (OSError, OverflowError):
            return None
        finally:
            os.close(fd)
        return data if len(data) == size else None

    return read
