"""Frame-pointer unwinding over a copied user stack (x86_64: rbp chains).

Used on its own for code built with -fno-omit-frame-pointer, and by the DWARF unwinder as
the step for code no CFI covers (hand-written assembly, JIT code)."""

from __future__ import annotations

import struct
from typing import Callable, List, Optional, Tuple

Reader = Callable[[int], Optional[int]]
_U64 = struct.Struct("<Q")


def stack_reader(stack: bytes, sp: int) -> Reader:
    """Reads 8-byte words of the copied stack (stack[0] is at address `sp`); None outside."""
    last = len(stack) - 8
    unpack = _U64.unpack_from

    def read(addr: int) -> Optional[int]:
        off = addr - sp
        if 0 <= off <= last:
            return unpack(stack, off)[0]
        return None

    return read


def fp_step(sp: int, bp: Optional[int], read: Reader) -> Optional[Tuple[int, int, int]]:
    """One frame up from a frame whose rbp is `bp`: (return address, caller's sp, caller's bp),
    or None when rbp does not point into the copied stack above sp."""
    if bp is None or bp < sp or bp & 7:
        return None
    saved_bp, ra = read(bp), read(bp + 8)
    if ra is None or saved_bp is None:
        return None
    return ra, bp + 16, saved_bp


def unwind_fp(ip: int, sp: int, bp: int, stack: bytes, max_frames: int = 128) -> List[int]:
    """Leaf-first addresses from following the rbp chain; stops at a zero return address
    (the outermost frame), a chain leaving the copy, or one that does not go up the stack."""
    read = stack_reader(stack, sp)
    ips = [ip]
    while len(ips) < max_frames:
        step = fp_step(sp, bp, read)
        if step is None or step[0] == 0 or step[1] <= sp:
            break
        ra, sp, bp = step
        ips.append(ra)
    return ips
