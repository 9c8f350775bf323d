"""Opening files that a traced program or another user controls, as root: regular files only
(a FIFO blocks open() until a writer comes, /dev/zero never ends), opened O_NONBLOCK, bounded
in size and in time (a hung network or FUSE file system makes open() wait forever), and where
asked, never through a symbolic link and only when owned by a given user."""

from __future__ import annotations

import os
import stat
import threading
from typing import BinaryIO, Collection, List, Optional

OPEN_SECONDS = 5.0


class _Opener(threading.Thread):
    """os.open in a thread that may be left behind: when the caller gave up waiting, the
    descriptor it gets late is closed, never leaked."""

    def __init__(self, path: str, flags: int) -> None:
        super().__init__(name="heaptrace-open", daemon=True)
        self.path, self.flags = path, flags
        self.fd: Optional[int] = None
        self.abandoned = False
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            fd: Optional[int] = os.open(self.path, self.flags)
        except (OSError, ValueError):
            fd = None
        with self.lock:
            if self.abandoned and fd is not None:
                os.close(fd)
            else:
                self.fd = fd

    def result(self, timeout: float) -> Optional[int]:
        self.start()
        self.join(timeout)
        with self.lock:
            self.abandoned = self.fd is None
            return self.fd


def open_regular(path: str, max_bytes: int, nofollow: bool = False,
                 owners: Optional[Collection[int]] = None,
                 timeout: float = OPEN_SECONDS) -> Optional[BinaryIO]:
    """`path` opened for reading if it is a regular file of at most `max_bytes` (owned by one
    of `owners`, when given; not a symbolic link itself, with `nofollow`), else None."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    fd = _Opener(path, flags).result(timeout)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if (stat.S_ISREG(st.st_mode) and st.st_size <= max_bytes
                and (owners is None or st.st_uid in owners)):
            return os.fdopen(fd, "rb")
    except OSError:
        pass
    os.close(fd)
    return None


def read_regular(path: str, max_bytes: int, nofollow: bool = False,
                 owners: Optional[Collection[int]] = None) -> Optional[bytes]:
    """The bytes of a file open_regular() accepts; None if it grows past `max_bytes` while
    being read, too."""
    fh = open_regular(path, max_bytes, nofollow, owners)
    if fh is None:
        return None
    with fh:
        chunks: List[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    return None if left <= 0 else b"".join(chunks)
