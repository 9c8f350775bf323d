"""The program and its loader located from an auxiliary vector, on the host's own
/usr/bin/true and dynamic loader."""

from __future__ import annotations

from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.execimage import (
    AT_BASE,
    AT_ENTRY,
    AT_PAGESZ,
    AT_PHDR,
    AT_PHENT,
    image_mappings,
)

TRUE = "/usr/bin/true"


def test_program_and_loader_mappings_from_auxv():
    elf = open_elf(TRUE)
    bias = 0x555555554000
    auxv = {AT_PHDR: bias + elf.phdr_vaddr(), AT_BASE: 0x7FFFF7FC3000, AT_PHENT: 56,
            AT_ENTRY: bias + elf.entry, AT_PAGESZ: 4096}
    mappings = image_mappings(auxv, TRUE, 7)
    program = [m for m in mappings if m.path.endswith("/true")]
    loader = [m for m in mappings if "ld-linux" in m.path]
    assert program and loader
    assert all(m.start <= auxv[AT_ENTRY] < m.end for m in program[:1])
    assert all(m.build_id and m.first_ns == 7 for m in mappings)
    assert loader[0].start >= auxv[AT_BASE]
