"""The unwinder on a binary whose CFI is broken: the walk stops there and says so; nothing
hangs and nothing is raised (the unwinder runs inside the probe's ring-buffer callback).
The binary is a copy of the committed fixture program with its .eh_frame rewritten."""

from __future__ import annotations

import os

import pytest

from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.procmaps import ProcMaps
from heaptrace.stacks.unwind.dwarf import TRUNCATED, Unwinder
from tests.helpers.ehframe import eh_frame
from tests.helpers.stackfixtures import STACKS

BIAS = 0x555555554000
PID = 4242
SP = 0x7FFFFFFDE000
MAPS = f"{BIAS + 0x1000:x}-{BIAS + 0x2000:x} r-xp 00001000 fe:00 1 {{path}}\n"


def chain_with_cfi(tmp_path, instructions: bytes):
    """The fixture program with one FDE, for main, holding `instructions`; returns its path
    and main's link-time address."""
    source = os.path.join(STACKS, "bin", "chain")
    elf = open_elf(source)
    main, size = next((v, s) for v, s, name in elf.functions() if name == "main")
    eh, hdr = elf.sections[".eh_frame"], elf.sections[".eh_frame_hdr"]
    data, _ = eh_frame([(main, size, instructions)], eh.addr)
    assert len(data) <= eh.size
    with open(source, "rb") as fh:
        raw = bytearray(fh.read())
    raw[eh.offset:eh.offset + eh.size] = data.ljust(eh.size, b"\0")
    raw[hdr.offset] = 0  # an unknown .eh_frame_hdr version: the reader scans .eh_frame
    path = tmp_path / "chain"
    path.write_bytes(bytes(raw))
    return str(path), main


def walk(tmp_path, instructions: bytes):
    path, main = chain_with_cfi(tmp_path, instructions)
    maps = ProcMaps.from_maps_text(PID, MAPS.format(path=path))
    ip = BIAS + main + 4
    return ip, Unwinder(maps).walk(PID, ip, SP, 0, bytes(256))


def test_a_well_formed_rule_is_followed(tmp_path):
    # CFA = rsp + 16, return address at CFA - 8: read from the copied stack
    stack = (0).to_bytes(8, "little") + (BIAS + 0x1234).to_bytes(8, "little") + bytes(240)
    path, main = chain_with_cfi(tmp_path, bytes([0x0E, 16]))
    maps = ProcMaps.from_maps_text(PID, MAPS.format(path=path))
    result = Unwinder(maps).walk(PID, BIAS + main + 4, SP, 0, stack)
    assert result.ips[:2] == [BIAS + main + 4, BIAS + 0x1234]


@pytest.mark.parametrize(("instructions", "why"), [
    (bytes([0x0F, 3, 0x2F, 0xFD, 0xFF]), "CFA expression: skip back onto itself"),
    (bytes([0x0F, 1, 0x06]), "CFA expression: deref of an empty stack"),
    (bytes([0x0F, 2, 0x0E, 1]), "CFA expression: const8u cut short"),
    (bytes([0x10, 16, 2, 0x2F, 0xFE]), "return address expression cut inside its skip"),
    (bytes([0x16, 6, 3, 0x28, 0xFD, 0xFF]), "rbp value expression: bra on an empty stack"),
])
def test_a_malformed_expression_ends_the_walk_as_truncated(tmp_path, instructions, why):
    ip, result = walk(tmp_path, instructions)
    assert result.ips == [ip]
    assert result.stop == TRUNCATED
