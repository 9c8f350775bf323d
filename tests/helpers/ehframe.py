"""Hand-built .eh_frame (and .eh_frame_hdr) sections: one CIE and its FDEs, laid out as
GCC and the linker write them (augmentation "zR", pc-relative sdata4 addresses), so the
CFI reader can be fed well-formed and deliberately broken tables without a compiler."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

# The CIE's initial rule (x86_64 at a function's entry): CFA = rsp + 8, ra at CFA - 8.
ENTRY_RULE = bytes([0x0C, 7, 8, 0x90, 1])
PCREL_SDATA4 = 0x1B


def _entry(body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<I", len(body)) + body


def cie(initial: bytes = ENTRY_RULE, augmentation: bytes = b"zR") -> bytes:
    """A version-1 CIE: code alignment 1, data alignment -8, return address in r16."""
    body = struct.pack("<I", 0) + bytes([1]) + augmentation + b"\0" + bytes([1, 0x78, 16])
    if augmentation.startswith(b"z"):
        body += bytes([1, PCREL_SDATA4])
    return _entry(body + initial)


def fde(offset: int, cie_offset: int, start: int, size: int, instructions: bytes,
        section_addr: int) -> bytes:
    """An FDE at `offset` in a section linked at `section_addr`, covering [start, start+size)."""
    pc_field = offset + 8
    body = struct.pack("<Iii", offset + 4 - cie_offset, start - (section_addr + pc_field), size)
    return _entry(body + b"\0" + instructions)  # no augmentation data


def eh_frame(functions: Sequence[Tuple[int, int, bytes]], section_addr: int,
             initial: bytes = ENTRY_RULE) -> Tuple[bytes, List[int]]:
    """One CIE and an FDE per (start, size, instructions), then the zero terminator; also
    the offset of each FDE."""
    data = cie(initial)
    offsets = []
    for start, size, instructions in functions:
        offsets.append(len(data))
        data += fde(len(data), 0, start, size, instructions, section_addr)
    return data + b"\0" * 4, offsets


def eh_frame_hdr(starts_and_fdes: Sequence[Tuple[int, int]], hdr_addr: int,
                 eh_frame_addr: int, count: Optional[int] = None) -> bytes:
    """The binary-search table: (initial location, FDE address) pairs, sorted; `count`
    may lie about how many there are."""
    pairs = sorted(starts_and_fdes)
    head = bytes([1, PCREL_SDATA4, 0x03, 0x3B])  # version, eh_frame_ptr, count, table encodings
    head += struct.pack("<i", eh_frame_addr - (hdr_addr + 4))
    head += struct.pack("<I", len(pairs) if count is None else count)
    return head + b"".join(struct.pack("<ii", s - hdr_addr, f - hdr_addr) for s, f in pairs)


@dataclass
class Section:
    addr: int


@dataclass
class FakeElf:
    """What CfiTable reads of an ELF file: section bytes by name, and their addresses."""

    blobs: Dict[str, bytes]
    addrs: Dict[str, int]
    sections: Dict[str, Section] = field(init=False)

    def __post_init__(self) -> None:
        self.sections = {name: Section(addr) for name, addr in self.addrs.items()}

    def data(self, name: str) -> Optional[bytes]:
        return self.blobs.get(name)
