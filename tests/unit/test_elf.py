"""ELF helpers on the committed fixture program and on a file that is not ELF (the host's
libc, its build-id and its debug file are in the host tier)."""

from __future__ import annotations

from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.procmaps import Mapping, ProcMaps
from heaptrace.stacks.unwind.dwarf import NO_INFO, Unwinder
from tests.helpers.stackfixtures import STACKS

CHAIN = f"{STACKS}/bin/chain"


def test_file_offsets_become_link_time_addresses():
    chain = open_elf(CHAIN)
    text = chain.sections[".text"]
    assert chain.offset_to_vaddr(text.offset) == text.addr


def test_not_an_elf_file(tmp_path):
    bogus = tmp_path / "lib.so"
    bogus.write_bytes(b"\x7fELF but not really" * 4)
    assert open_elf(str(bogus)) is None
    maps = ProcMaps(proc_root=str(tmp_path))
    maps.add(1, Mapping(0x1000, 0x2000, 0, str(bogus)))
    walk = Unwinder(maps).walk(1, 0x1100, 0x8000, 0, bytes(64))  # no CFI, no usable rbp
    assert walk.ips == [0x1100] and walk.stop == NO_INFO
