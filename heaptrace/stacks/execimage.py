"""Where exec put a program and its dynamic loader, from the auxiliary vector on the new
process's stack: the kernel maps both itself, so no mmap event ever shows them, and a
short-lived process may be gone before /proc/PID/maps can be read."""

from __future__ import annotations

import os
import struct
from typing import Dict, List, Optional

from heaptrace.stacks.elf import MAX_ELF_BYTES, ElfFile, capture, open_elf
from heaptrace.stacks.procmaps import Mapping
from heaptrace.stacks.safefile import open_regular

AT_NULL, AT_PHDR, AT_PHENT, AT_PAGESZ, AT_BASE, AT_ENTRY = 0, 3, 4, 6, 7, 9
PAGE_SIZES = (4096, 16384, 65536)
MAX_AT_TYPE = 64


def find_auxv(stack: bytes) -> Optional[Dict[int, int]]:
    """The auxiliary vector found in a copy of the top of a stack (the initial stack holds
    argc, argv, envp and then the auxv pairs), or None."""
    words = struct.unpack_from(f"<{len(stack) // 8}Q", stack)
    for i in range(len(words) - 1):
        if words[i] == AT_PAGESZ and words[i + 1] in PAGE_SIZES:
            auxv = _pairs_around(words, i)
            if auxv.get(AT_PHENT) in (32, 56) and AT_PHDR in auxv and AT_ENTRY in auxv:
                return auxv
    return None


def _pairs_around(words: tuple, i: int) -> Dict[int, int]:
    start = i
    while start >= 2 and 0 < words[start - 2] < MAX_AT_TYPE:
        start -= 2
    auxv = {}
    for j in range(start, len(words) - 1, 2):
        if words[j] == AT_NULL:
            break
        auxv[words[j]] = words[j + 1]
    return auxv


def program_path(filename: str) -> str:
    """The ELF file exec really mapped: the interpreter of a `#!` script. (Opened as
    safefile.py says: the target may have put a FIFO at that path since.)"""
    fh = open_regular(filename, MAX_ELF_BYTES)
    if fh is None:
        return filename
    with fh:
        head = fh.read(256)
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        if words:
            return os.fsdecode(words[0])
    return filename


def image_mappings(auxv: Dict[int, int], filename: str, ts_ns: int, pid: Optional[int] = None,
                   proc_root: str = "/proc") -> List[Mapping]:
    """Executable mappings of the program and its loader at exec, in the pages of the
    kernel that mapped them (AT_PAGESZ: 4 KiB on x86_64, 4, 16 or 64 KiB on arm64). While
    process `pid` runs, both files are read through /proc (the very files exec mapped, even
    if deleted or replaced since); after that, from `filename` when it is an absolute path."""
    program = _running_program(pid, auxv, proc_root) if pid is not None else None
    if program is None and os.path.isabs(filename):
        program = open_elf(program_path(filename))
    if program is None:
        return []
    page = auxv[AT_PAGESZ]  # find_auxv only returns a vector that has it
    mappings = []
    phdr = program.phdr_vaddr()
    if phdr is not None:
        mappings += _segments(program, auxv[AT_PHDR] - phdr, ts_ns, page)
    interp, base = program.interpreter(), auxv.get(AT_BASE)
    loader = None
    if interp and base:
        loader = _running_file(pid, base, proc_root) if pid is not None else None
        loader = loader or open_elf(interp)
    if loader is not None and base:
        mappings += _segments(loader, base, ts_ns, page)
    return mappings


def _running_program(pid: int, auxv: Dict[int, int], proc_root: str) -> Optional[ElfFile]:
    """/proc/PID/exe, if it is still the image this auxiliary vector describes (the process
    may have exec'd again since): its entry point, relocated, is AT_ENTRY."""
    exe = f"{proc_root}/{pid}/exe"
    try:
        name = os.readlink(exe).removesuffix(" (deleted)")
    except OSError:
        return None
    elf = open_elf(exe, name=name)
    phdr = elf.phdr_vaddr() if elf else None
    if elf is None or phdr is None or auxv[AT_PHDR] - phdr + elf.entry != auxv.get(AT_ENTRY):
        return None
    return capture(elf)


def _running_file(pid: int, start: int, proc_root: str) -> Optional[ElfFile]:
    """The file mapped at `start` in the running process `pid` (the loader at AT_BASE)."""
    where = f"{proc_root}/{pid}/map_files"
    try:
        entry = next(e for e in os.listdir(where) if int(e.split("-")[0], 16) == start)
        name = os.readlink(f"{where}/{entry}").removesuffix(" (deleted)")
    except (OSError, StopIteration, ValueError):
        return None
    return capture(open_elf(f"{where}/{entry}", name=name))


def _segments(elf: ElfFile, bias: int, ts_ns: int, page: int) -> List[Mapping]:
    result = []
    for offset, vaddr, memsz in elf.exec_segments():
        start = (bias + vaddr) & ~(page - 1)
        end = (bias + vaddr + memsz + page - 1) & ~(page - 1)
        result.append(Mapping(start, end, offset & ~(page - 1), os.path.realpath(elf.path),
                              elf.build_id, ts_ns))
    return result
