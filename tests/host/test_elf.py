"""ELF helpers on the host's libc: its build-id as readelf reads it, and its debug file; and
MiniDebugInfo made as Fedora makes it (gcc, nm, objcopy, strip, xz)."""

from __future__ import annotations

import subprocess

from heaptrace.stacks.elf import (
    debug_file_candidates,
    open_debug_file,
    open_elf,
    open_mapped,
    symbol_source,
)
from heaptrace.stacks.symbols import SymbolTable

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




HIDDEN = """#include <stdlib.h>
__attribute__((noinline)) static void *hidden_alloc(size_t n) { return malloc(n); }
int main(int argc, char **argv) { (void)argv; return hidden_alloc((size_t)argc) == 0; }
"""


def _mini_debuginfo(binary, out, tmp):
    """Fedora's recipe (find-debuginfo): the symbols of local functions, kept in an ELF file
    of their own, xz-compressed into the stripped binary's .gnu_debugdata section."""
    run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True, text=True).stdout  # noqa: E731
    dynamic = set(run("nm", "-D", "--format=posix", "--defined-only", binary).split("\n"))
    funcs = [line.split()[0] for line in run("nm", "--format=posix", "--defined-only",
                                              binary).splitlines()
             if line.split()[1] in ("T", "t") and line not in dynamic]
    (tmp / "keep").write_text("\n".join(funcs) + "\n")
    run("objcopy", "--only-keep-debug", binary, str(tmp / "debug"))
    run("objcopy", "-S", "--remove-section", ".comment", f"--keep-symbols={tmp / 'keep'}",
        str(tmp / "debug"), str(tmp / "mini"))
    run("xz", "-f", str(tmp / "mini"))
    run("strip", "-o", out, binary)
    run("objcopy", "--add-section", f".gnu_debugdata={tmp / 'mini.xz'}", out)


def test_minidebuginfo_names_the_local_functions_of_a_stripped_file(tmp_path):
    (tmp_path / "hidden.c").write_text(HIDDEN)
    binary = str(tmp_path / "hidden")
    subprocess.run(["gcc", "-O1", "-o", binary, str(tmp_path / "hidden.c")], check=True)
    symbols = subprocess.run(["nm", binary], capture_output=True, text=True).stdout
    addr = int(next(line.split()[0] for line in symbols.splitlines()
                    if line.endswith(" hidden_alloc")), 16)
    stripped, mini = str(tmp_path / "stripped"), str(tmp_path / "mini")
    subprocess.run(["strip", "-o", stripped, binary], check=True)
    _mini_debuginfo(binary, mini, tmp_path)

    def named(path):
        elf = open_elf(path)
        debug = open_debug_file(elf, str(tmp_path / "no-debug-root"))
        return SymbolTable.of(elf, debug).lookup(addr), symbol_source(elf, str(tmp_path))

    assert named(stripped) == (None, "dynsym only")
    assert named(mini) == ("hidden_alloc", "minidebuginfo")
    assert named(binary) == ("hidden_alloc", "symtab")
