"""Giving back the memory of the probe's compile once the probe is loaded: the heap that
clang freed (glibc keeps it, malloc_trim returns it) and the pages of the compiler's own code
(libLLVM, libclang-cpp: tens of MB) that this process will not run again.

bcc compiles in process and keeps its module (tables need it), so the compiler cannot be
unloaded; its code pages can be dropped from this process's memory, though: they are clean
pages of a file (never written), so a later call into the library reads them back from the
page cache. Mappings that hold any private (written) page are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Iterable, List, Optional

COMPILER_LIBS = ("libLLVM", "libclang")
MADV_DONTNEED = 4


@dataclass
class Text:
    """An executable mapping of a file, with what its pages are in memory (kB)."""

    start: int
    end: int
    path: str
    rss_kb: int = 0
    private_kb: int = 0  # written (copied) pages: dropping them would lose data


def text_mappings(smaps: str, names: Iterable[str]) -> List[Text]:
    """The executable (r-xp) mappings of files whose path holds one of `names`, from the text
    of /proc/PID/smaps."""
    wanted = tuple(names)
    out: List[Text] = []
    current: Optional[Text] = None
    for line in smaps.splitlines():
        parts = line.split()
        if not parts:
            continue
        if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            current = None
            path = parts[5] if len(parts) > 5 else ""
            if parts[1] == "r-xp" and any(name in path for name in wanted):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                current = Text(start, end, path)
                out.append(current)
        elif current is not None and parts[0] == "Rss:":
            current.rss_kb = int(parts[1])
        elif current is not None and parts[0] in ("Private_Dirty:", "Anonymous:"):
            current.private_kb += int(parts[1])
    return out


def drop_text(names: Iterable[str] = COMPILER_LIBS, smaps_path: str = "/proc/self/smaps") -> int:
    """Drop the clean code pages of the libraries named from this process's memory; returns
    the kB that were resident in the mappings dropped."""
    try:
        with open(smaps_path) as f:
            mappings = text_mappings(f.read(), names)
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    dropped = 0
    for m in mappings:
        if m.private_kb == 0 and m.rss_kb and libc.madvise(m.start, m.end - m.start,
                                                           MADV_DONTNEED) == 0:
            dropped += m.rss_kb
    return dropped


def trim_heap() -> None:
    """Return the heap's free memory to the kernel (glibc only: elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def release_compiler_memory() -> int:
    """After the probe is loaded: the compile's freed heap and its code pages; returns the
    kB of code pages dropped."""
    trim_heap()
    return drop_text()
