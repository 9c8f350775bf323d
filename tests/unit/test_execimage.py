"""Finding the program and its loader from the auxiliary vector on a copied initial stack."""

from __future__ import annotations

import os
import struct

import pytest

from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.execimage import (
    AT_BASE,
    AT_ENTRY,
    AT_PAGESZ,
    AT_PHDR,
    AT_PHENT,
    find_auxv,
    image_mappings,
    program_path,
)
from tests.helpers.stackfixtures import STACKS_AARCH64

AARCH64_CHAIN = os.path.join(STACKS_AARCH64, "bin", "chain")


def initial_stack(auxv: dict) -> bytes:
    """What the kernel leaves at the initial sp: argc, argv, NULL, envp, NULL, auxv, AT_NULL."""
    words = [1, 0x7FFFFFFFE800, 0, 0x7FFFFFFFE810, 0x7FFFFFFFE820, 0]
    for key, value in auxv.items():
        words += [key, value]
    words += [0, 0]
    return b"\xaa" * 40 + struct.pack(f"<{len(words)}Q", *words) + b"strings\0" * 8


def test_auxv_found_in_a_stack_copy():
    auxv = {33: 0x7FFFF7FC1000, 16: 0x178BFBFF, AT_PAGESZ: 4096, 17: 100, AT_PHDR: 0x555555554040,
            AT_PHENT: 56, 5: 13, AT_BASE: 0x7FFFF7FC3000, 8: 0, AT_ENTRY: 0x555555556000}
    assert find_auxv(initial_stack(auxv)) == auxv


def test_no_auxv_in_an_ordinary_stack():
    assert find_auxv(struct.pack("<64Q", *range(64))) is None
    assert find_auxv(b"") is None


def test_script_maps_its_interpreter(tmp_path):
    script = tmp_path / "s"
    script.write_text("#!/bin/sh -e\necho hi\n")
    assert program_path(str(script)) == "/bin/sh"
    assert program_path(AARCH64_CHAIN) == AARCH64_CHAIN  # an ELF file is itself


@pytest.mark.parametrize("page", [4096, 16384, 65536])
def test_program_mapping_is_in_the_pages_of_the_kernel_that_mapped_it(page):
    # An arm64 program (linked for 64 KiB pages): its code segment is [0, 0xc08) of the file.
    # The kernel maps whole pages of its own size, which the auxiliary vector gives.
    elf = open_elf(AARCH64_CHAIN)
    bias = 0xAAAAAAAA0000
    auxv = {AT_PHDR: bias + elf.phdr_vaddr(), AT_PHENT: 56, AT_ENTRY: bias + elf.entry,
            AT_PAGESZ: page}
    program = [m for m in image_mappings(auxv, AARCH64_CHAIN, 7) if m.path.endswith("/chain")]
    assert [(m.start, m.end, m.offset) for m in program] == [(bias, bias + page, 0)]
