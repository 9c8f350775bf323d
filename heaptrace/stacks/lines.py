"""Addresses to source file and line, from the DWARF line tables (.debug_line) of a binary or
of its separate debug file: what pprof shows beside a function, where the binary was built
with -g (or its debug package is installed) and is still there with the same build-id.

A compile unit's rows are decoded the first time one of its addresses is asked for (the
unit is found through .debug_aranges); a file without line tables costs one look.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from typing import Dict, List, Optional, Tuple

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.dwarf.lineprogram import LineProgram

from heaptrace.stacks.elf import DEBUG_ROOT, ElfFile, open_debug_file, open_mapped

Source = Tuple[str, int]  # file path, line
_ERRORS = (DWARFError, ELFError, KeyError, IndexError, ValueError, AssertionError, OSError)


class LineTable:
    """The line rows of one file's DWARF, a compile unit at a time."""

    def __init__(self, dwarf: DWARFInfo) -> None:
        self._dwarf = dwarf
        try:
            self._aranges = dwarf.get_aranges()
        except _ERRORS:
            self._aranges = None
        self._units: Dict[int, Tuple[List[int], List[Optional[Source]]]] = {}

    def source(self, vaddr: int) -> Optional[Source]:
        """The file and line of the instruction at link-time address `vaddr`."""
        if self._aranges is None:
            return None
        offset = self._aranges.cu_offset_at_addr(vaddr)
        if offset is None:
            return None
        if offset not in self._units:
            self._units[offset] = self._decode(offset)
        starts, rows = self._units[offset]
        i = bisect_right(starts, vaddr) - 1
        return rows[i] if i >= 0 else None

    def _decode(self, offset: int) -> Tuple[List[int], List[Optional[Source]]]:
        """(addresses, rows) sorted by address. Of the rows at one address the last that
        begins a statement wins (as gdb chooses), else the last; a sequence's end (None)
        only where nothing else starts."""
        best: Dict[int, Tuple[int, Optional[Source]]] = {}
        try:
            unit = self._dwarf.get_CU_at(offset)
            program = self._dwarf.line_program_for_CU(unit)
            if program is None:
                return [], []
            comp_dir = _text(unit.get_top_DIE().attributes.get("DW_AT_comp_dir"))
            for entry in program.get_entries():
                state = entry.state
                if state is None:
                    continue
                rank = 0 if state.end_sequence else 2 if state.is_stmt else 1
                if rank >= best.get(state.address, (0, None))[0]:
                    best[state.address] = (rank, None if state.end_sequence else (
                        file_path(program, state.file, comp_dir), state.line))
        except _ERRORS:
            best = {}
        addresses = sorted(best)
        return addresses, [best[a][1] for a in addresses]


def file_path(program: LineProgram, index: int, comp_dir: str) -> str:
    """The path of file `index` of a line program. DWARF 5 counts files and directories
    from 0, directory 0 being the compilation directory; earlier versions count from 1 and
    directory 0 means DW_AT_comp_dir. Other relative directories are relative to it."""
    v5 = program.header["version"] >= 5
    entry = program.header["file_entry"][index if v5 else index - 1]
    dirs = [_text(d) for d in program.header["include_directory"]]
    base = dirs[0] if v5 and dirs else comp_dir
    directory = "" if entry.dir_index == 0 else dirs[entry.dir_index - (0 if v5 else 1)]
    return os.path.normpath(os.path.join(base, directory, _text(entry.name)))


def _text(value: object) -> str:
    value = getattr(value, "value", value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


class SourceLines:
    """Source lines of addresses in mapped files, each file opened once (by path and
    build-id, or the installed debug file of that build-id)."""

    def __init__(self, debug_root: str = DEBUG_ROOT) -> None:
        self.debug_root = debug_root
        self._files: Dict[Tuple[str, Optional[str]], Optional[Tuple[ElfFile, LineTable]]] = {}

    def source(self, path: str, build_id: Optional[str], file_offset: int,
               is_return: bool) -> Optional[Source]:
        """The line of the instruction at `file_offset` of the file mapped from `path`; a
        return address is looked up one byte back, in the call it returns from."""
        loaded = self._load(path, build_id)
        if loaded is None:
            return None
        elf, table = loaded
        vaddr = elf.offset_to_vaddr(file_offset)
        if vaddr is None:
            return None
        return table.source(vaddr - 1 if is_return else vaddr)

    def _load(self, path: str, build_id: Optional[str]) -> Optional[Tuple[ElfFile, LineTable]]:
        key = (path, build_id)
        if key not in self._files:
            self._files[key] = None
            if not os.path.isabs(path):
                return None  # [vdso], anonymous code
            elf = open_mapped(path, build_id, self.debug_root)
            if elf is None:
                return None
            for candidate in (elf, open_debug_file(elf, self.debug_root)):
                dwarf = candidate.dwarf() if candidate is not None else None
                if dwarf is not None:
                    self._files[key] = (elf, LineTable(dwarf))
                    break
        return self._files[key]
