"""Finding CPython in a mapped file: the `_PyRuntime` symbol (exported in .dynsym, so a
stripped python3 has it too), the version, and the layout of that version's structures."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

from heaptrace.backends.probe_layout import PY_NO_OFFSET
from heaptrace.stacks.elf import ElfFile
from heaptrace.stacks.python.layouts import (
    DEBUG_OFFSETS_SIZE,
    NEWEST,
    OLDEST,
    TABLE,
    PyLayout,
    from_debug_offsets,
    parse_debug_offsets,
)

_NAME_VERSION = re.compile(r"python(\d)\.(\d+)")


@dataclass(frozen=True)
class Interpreter:
    """CPython found in one ELF file (the python binary, or libpython)."""

    path: str
    runtime_vaddr: int  # link-time address of _PyRuntime
    layout: Optional[PyLayout]  # None: a version heaptrace cannot read (see `problem`)
    version: Tuple[int, int]
    checked: bool  # the layout agrees with the interpreter's own description of itself
    problem: str = ""  # why this interpreter's frames cannot be read, or why unchecked

    def probe_fields(self, runtime: int, gen: int, fsbase: Optional[int],
                     wait: Tuple[int, int, int] = (0, 0, 0)) -> List[int]:
        """struct py_proc (probes/heaptrace.h), field by field, for a process whose
        _PyRuntime is at `runtime` in exec generation `gen`; `fsbase`: where the kernel's
        task_struct keeps the fs base (pthread_self(), how 3.8-3.10 know their threads).
        `wait`: with runtime 0, the mapping of the interpreter's code the probe waits for
        (file offset, length, and what to add to its address to get the runtime's)."""
        lay = self.layout
        assert lay is not None
        opt = lambda value: PY_NO_OFFSET if value is None else value  # noqa: E731
        return [gen, lay.frames, runtime, lay.interpreters_head, lay.threads_head,
                lay.tstate_next, lay.tstate_tid, opt(fsbase if lay.tid_is_pthread else None),
                lay.tstate_frame, opt(lay.cframe_frame),
                lay.frame_previous, lay.frame_code, lay.frame_instr, opt(lay.frame_entry),
                lay.code_filename, lay.code_name, opt(lay.code_qualname), lay.code_linetable,
                lay.frame_globals, wait[0], wait[1], wait[2] % (1 << 64)]

    def code_mapping(self, elf: ElfFile) -> Optional[Tuple[int, int, int]]:
        """How ld.so maps this library's code: (file offset, length, runtime address minus
        the mapping's address), or None without an executable segment."""
        page = 4096
        for offset, vaddr, _memsz in elf.exec_segments():
            filesz = next((f for o, v, f in elf.loads if o == offset and v == vaddr), 0)
            start = vaddr & ~(page - 1)
            end = (vaddr + filesz + page - 1) & ~(page - 1)
            return offset & ~(page - 1), end - start, self.runtime_vaddr - start
        return None


def _version(elf: ElfFile) -> Optional[Tuple[int, int]]:
    """Py_Version (3.11+: PY_VERSION_HEX in the file), else the file's name (python3.9,
    libpython3.9.so.1.0)."""
    found = elf.symbol("Py_Version")
    raw = elf.read(found[0], 4) if found else None
    if raw is not None:
        hexversion = struct.unpack("<I", raw)[0]
        return hexversion >> 24, (hexversion >> 16) & 0xFF
    match = _NAME_VERSION.search(elf.path.rsplit("/", 1)[-1])
    return (int(match.group(1)), int(match.group(2))) if match else None


@lru_cache(maxsize=256)
def find_interpreter(elf: ElfFile) -> Optional[Interpreter]:
    """The interpreter in `elf`, or None when the file holds no CPython runtime (cached:
    open_elf gives one ElfFile per version of a file)."""
    runtime = elf.symbol("_PyRuntime")
    if runtime is None:
        return None
    vaddr, size = runtime
    version = _version(elf)
    if version is None:
        return Interpreter(elf.path, vaddr, None, (0, 0), False, "unknown Python version")
    named = f"Python {version[0]}.{version[1]}"
    if not OLDEST <= version <= NEWEST:
        span = f"{OLDEST[0]}.{OLDEST[1]} to {NEWEST[0]}.{NEWEST[1]}"
        return Interpreter(elf.path, vaddr, None, version, False,
                           f"{named}: Python frames are read for {span}")
    layout: Optional[PyLayout] = TABLE[version]
    if version >= (3, 13):
        raw = elf.read(vaddr, DEBUG_OFFSETS_SIZE)
        offsets = parse_debug_offsets(raw) if raw else None
        layout = from_debug_offsets(offsets) if offsets else None
        if layout is None:
            return Interpreter(elf.path, vaddr, None, version, False,
                               f"{named}: no usable _PyRuntime.debug_offsets")
    assert layout is not None
    if size and size != layout.runtime_size:
        return Interpreter(elf.path, vaddr, layout, version, False,
                           f"{named}: _PyRuntime is {size} bytes, {layout.runtime_size}"
                           " expected (a patch release with another layout?)")
    return Interpreter(elf.path, vaddr, layout, version, True)
