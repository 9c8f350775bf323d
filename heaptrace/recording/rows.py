"""The recording's rows as typed values: processes, mappings, stacks and RSS, and how stacks are
packed (raw addresses as little-endian u64, frames as JSON)."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple

from heaptrace.events import Frame, Rss

U64 = 1 << 64


@dataclass(frozen=True)
class RecordedProcess:
    """One process image: an exec ends a pid's row and starts the next."""

    pid: int
    ppid: Optional[int]
    comm: Optional[str]
    start_ns: Optional[int]
    end_ns: Optional[int] = None
    exit_code: Optional[int] = None


@dataclass(frozen=True)
class RecordedMapping:
    """An executable mapping of `pid` from `first_ns` until `last_ns` (None: until exit).
    Addresses are unsigned (SQLite stores them as signed 64-bit integers)."""

    pid: int
    start: int
    end: int
    offset: int
    path: Optional[str]
    build_id: Optional[str]
    first_ns: int
    last_ns: Optional[int]


@dataclass(frozen=True)
class RecordedStack:
    """A distinct stack: raw addresses (leaf first, empty for imports) and, once symbolized,
    its frames (leaf first); ts_ns is when it was first seen, which says which exec image of
    the pid it ran in."""

    id: int
    pid: Optional[int]
    ts_ns: Optional[int]
    ips: Tuple[int, ...]
    frames: Optional[Tuple[Frame, ...]]

    def shown(self) -> Tuple[Frame, ...]:
        """The frames, or the raw addresses as hex names until it is symbolized."""
        if self.frames is not None:
            return self.frames
        return tuple(Frame(f"0x{ip:x}", None, ip) for ip in self.ips)


class RecordedRss(NamedTuple):
    """The RSS of one address space of a process at one moment, from the kernel's counters."""

    ts_ns: int
    pid: int
    space: Optional[int]
    why: str
    rss: Rss


def pack_ips(ips: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(ips)}Q", *ips)


def unpack_ips(blob: Optional[bytes]) -> Tuple[int, ...]:
    if not blob:
        return ()
    if len(blob) % 8:
        raise ValueError("addresses are not a whole number of 8-byte words")
    return struct.unpack(f"<{len(blob) // 8}Q", blob)


def signed64(value: int) -> int:
    """SQLite integers are signed: [vsyscall] and other top-half addresses wrap around."""
    return value - U64 if value >= 1 << 63 else value


# (code addr, bytecode offset, first of its C eval call, globals addr)
PyFrames = Sequence[Tuple[int, int, bool, int]]


def py_json(py: PyFrames) -> List[List[int]]:
    return [[addr, offset, int(entry), scope] for addr, offset, entry, scope in py]


def stack_key(
    pid: Optional[int], ips: Sequence[int], frames: Optional[Sequence[Frame]], image: int = 0,
    py: Optional[PyFrames] = None,
) -> bytes:
    """What makes a stack distinct: address space, exec image and addresses, or frames when
    there are no addresses."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{pid}/{image}".encode() if image else str(pid).encode())
    h.update(pack_ips(ips))
    if frames is not None and not ips:
        h.update(json.dumps([[f.name, f.module] for f in frames]).encode())
    if py:
        h.update(b"py" + json.dumps(py_json(py)).encode())
    return h.digest()


def frames_json(frames: Optional[Sequence[Frame]]) -> Optional[str]:
    if frames is None:
        return None
    return json.dumps([[f.name, f.module, f.addr] for f in frames])


def frames_from_json(text: object) -> Optional[Tuple[Frame, ...]]:
    """Frames stored as JSON [[name, module, addr], ...]; ValueError for anything else."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("frames are not JSON text")
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("frames are not valid JSON") from None
    if not isinstance(items, list):
        raise ValueError("frames are not a list")
    frames = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and (item[1] is None or isinstance(item[1], str))
                and (item[2] is None or type(item[2]) is int)):
            raise ValueError("a frame is not [name, module or null, address or null]")
        frames.append(Frame(item[0], item[1], item[2]))
    return tuple(frames)
