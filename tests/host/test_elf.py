"""ELF helpers on the host's libc: its build-id as readelf reads it, and its debug file."""

from __future__ import annotations

import subprocess

from heaptrace.stacks.elf import debug_file_candidates, open_debug_file, open_elf, open_mapped

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


