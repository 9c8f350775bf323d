"""What a running process has mapped, by class, when heaptrace attaches to it: the probe follows
each page's class from the calls it sees, and needs to know where it starts (an arena reserved
before the attach is committed by mprotect calls after it)."""

from __future__ import annotations

from typing import List, Optional, Tuple

from heaptrace.events import MemClass


def mapped_classes(maps_text: str) -> List[Tuple[int, int, MemClass]]:
    """[start, end) and class of each mapping of a /proc/PID/maps text that a traced call could
    have made: the kernel's own ([heap], [stack], [vdso]...) are left out, as in a traced
    command, whose ranges start empty at its exec."""
    out = []
    for line in maps_text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        path = parts[5].strip() if len(parts) > 5 else ""
        cls = _class(parts[1], path)
        if cls is not None:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, cls))
    return out


def _class(perms: str, path: str) -> Optional[MemClass]:
    if path.startswith("[") and not path.startswith("[anon:"):
        return None  # [heap], [stack], [vdso]: mapped by the kernel
    shared = perms[3] == "s"
    if path.startswith("/dev/zero"):  # how a MAP_SHARED | MAP_ANONYMOUS mapping shows
        return MemClass.SHARED if shared else MemClass.COMMITTED
    if path and not path.startswith("[anon:"):
        return MemClass.FILE
    if shared:
        return MemClass.SHARED
    return MemClass.RESERVED if perms[:3] == "---" else MemClass.COMMITTED


def read_mapped(pid: int) -> List[Tuple[int, int, MemClass]]:
    """The classes of `pid`'s mappings now (empty if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return mapped_classes(f.read())
    except OSError:
        return []
