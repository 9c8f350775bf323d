"""ELF helpers: build-ids, address translation, debug files, and files that are not ELF."""

from __future__ import annotations

import subprocess

from heaptrace.stacks.elf import debug_file_candidates, open_debug_file, open_elf, open_mapped
from heaptrace.stacks.procmaps import Mapping, ProcMaps
from heaptrace.stacks.unwind.dwarf import NO_INFO, Unwinder

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def readelf_build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    return next(line.split()[-1] for line in out.splitlines() if "Build ID" in line)


def test_build_id_and_debug_file_of_libc():
    libc = open_elf(LIBC)
    assert libc.build_id == readelf_build_id(LIBC)
    debug = open_debug_file(libc)
    assert debug is not None and debug.build_id == libc.build_id
    assert ".symtab" in debug.sections and debug.data(".text") is None  # NOBITS in debug files
    candidates = debug_file_candidates(libc)
    assert candidates[0].startswith(f"/usr/lib/debug/.build-id/{libc.build_id[:2]}/")
    assert len(candidates) == 4  # build-id, then the three .gnu_debuglink places


def test_a_replaced_binary_falls_back_to_the_debug_file_of_its_build_id():
    libc = open_elf(LIBC)
    assert open_mapped("/nonexistent/libc.so.6", libc.build_id).build_id == libc.build_id
    assert open_mapped("/nonexistent/libc.so.6", None) is None
    assert open_mapped(LIBC, "00" * 20) is None  # another build at that path, none installed


def test_file_offsets_become_link_time_addresses():
    libc = open_elf(LIBC)
    text = libc.sections[".text"]
    assert libc.offset_to_vaddr(text.offset) == text.addr


def test_not_an_elf_file(tmp_path):
    bogus = tmp_path / "lib.so"
    bogus.write_bytes(b"\x7fELF but not really" * 4)
    assert open_elf(str(bogus)) is None
    maps = ProcMaps()
    maps.add(1, Mapping(0x1000, 0x2000, 0, str(bogus)))
    walk = Unwinder(maps).walk(1, 0x1100, 0x8000, 0, bytes(64))  # no CFI, no usable rbp
    assert walk.ips == [0x1100] and walk.stop == NO_INFO
