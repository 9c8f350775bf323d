"""Just enough of an ELF file for unwinding and symbols: build-id, loadable segments, section
bytes, the symbol tables, and the separate debug file (by build-id or .gnu_debuglink).

pyelftools reads the headers; the hot parts (symbol tables) are unpacked with struct, because
walking libc's 7000 symbols through pyelftools' containers takes a noticeable fraction of a
second and a recording touches dozens of files.
"""

from __future__ import annotations

import io
import lzma
import mmap
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO, List, Optional, Tuple

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection
from elftools.elf.segments import InterpSegment

from heaptrace.stacks.safefile import open_regular

DEBUG_ROOT = "/usr/lib/debug"
MINI_DEBUGINFO_MAX = 1 << 28  # decompressed bytes of a .gnu_debugdata section, at most
MAX_ELF_BYTES = 16 << 30  # a debug file with all of DWARF can be gigabytes; a FIFO is none
MAX_SECTION_BYTES = 2 << 30
MAX_NOTES_BYTES = 1 << 20
SHT_NOBITS = 8
STT_NOTYPE, STT_FUNC, STT_GNU_IFUNC = 0, 2, 10
SHF_EXECINSTR = 0x4
_SYM64 = struct.Struct("<IBBHQQ")


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    offset: int
    size: int
    nobits: bool


class ElfFile:
    """One ELF file on disk (or in memory: `data`), opened lazily section by section. `fh`:
    the file already open (through /proc/PID/map_files, say), `path` then only names it."""

    def __init__(self, path: str, fh: Optional[BinaryIO] = None,
                 data: Optional[bytes] = None) -> None:
        self.path = path
        opened = io.BytesIO(data) if data is not None else (
            fh or open_regular(path, MAX_ELF_BYTES))
        if opened is None:
            raise OSError(f"not a regular file of at most {MAX_ELF_BYTES} bytes: {path}")
        self._fh = opened  # kept open for lazy section reads
        try:
            self._elf = ELFFile(self._fh)
            self.entry = self._elf.header["e_entry"]
            self.machine = self._elf.header["e_machine"]  # pyelftools' name: "EM_AARCH64"
            self.loads = self._read_loads()
            self.sections = self._read_sections()
        except (ELFError, struct.error, ValueError) as exc:
            self._fh.close()
            raise OSError(f"not a readable ELF file: {path}: {exc}") from None
        self.build_id = self._read_build_id()

    def _read_loads(self) -> List[Tuple[int, int, int]]:
        """(p_offset, p_vaddr, p_filesz) of every PT_LOAD segment."""
        return [
            (seg["p_offset"], seg["p_vaddr"], seg["p_filesz"])
            for seg in self._elf.iter_segments()
            if seg["p_type"] == "PT_LOAD"
        ]

    def _read_sections(self) -> dict:
        result = {}
        self._code_sections = set()
        for index, sec in enumerate(self._elf.iter_sections()):
            h = sec.header
            if h["sh_flags"] & SHF_EXECINSTR:
                self._code_sections.add(index)
            result[sec.name] = Section(
                sec.name, h["sh_addr"], h["sh_offset"], h["sh_size"], h["sh_type"] == "SHT_NOBITS"
            )
        return result

    def _read_build_id(self) -> Optional[str]:
        for sec in self._elf.iter_sections():
            if not isinstance(sec, NoteSection) or sec.header["sh_size"] > MAX_NOTES_BYTES:
                continue  # a huge "note" section is no build-id note, only a long loop
            for note in sec.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return note["n_desc"]
        return None

    def data(self, name: str) -> Optional[bytes]:
        """Bytes of a section, or None when it is absent or has no bytes in this file."""
        sec = self.sections.get(name)
        if sec is None or sec.nobits or sec.size == 0 or sec.size > MAX_SECTION_BYTES:
            return None
        self._fh.seek(sec.offset)
        return self._fh.read(sec.size)

    def dwarf(self) -> Optional[DWARFInfo]:
        """The DWARF of this file when it has line tables (a -g build, a debug file)."""
        sec = self.sections.get(".debug_line")
        if sec is None or sec.nobits or sec.size == 0:
            return None
        try:
            return self._elf.get_dwarf_info(relocate_dwarf_sections=False)
        except (DWARFError, ELFError, struct.error, ValueError, KeyError):
            return None

    def offset_to_vaddr(self, offset: int) -> Optional[int]:
        """The link-time address of a file offset (what a mapping's offset points at)."""
        for p_offset, p_vaddr, p_filesz in self.loads:
            if p_offset <= offset < p_offset + max(p_filesz, 1):
                return offset - p_offset + p_vaddr
        return None

    def exec_segments(self) -> List[Tuple[int, int, int]]:
        """(p_offset, p_vaddr, p_memsz) of every executable PT_LOAD segment."""
        return [
            (seg["p_offset"], seg["p_vaddr"], seg["p_memsz"])
            for seg in self._elf.iter_segments()
            if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 0x1  # PF_X
        ]

    def interpreter(self) -> Optional[str]:
        """The PT_INTERP path (the dynamic loader), if any."""
        for seg in self._elf.iter_segments():
            if isinstance(seg, InterpSegment):
                return seg.get_interp_name()
        return None

    def phdr_vaddr(self) -> Optional[int]:
        """Link-time address of the program headers (what AT_PHDR points at, unrelocated)."""
        for seg in self._elf.iter_segments():
            if seg["p_type"] == "PT_PHDR":
                return seg["p_vaddr"]
        return self.offset_to_vaddr(self._elf.header["e_phoff"])

    def needed(self) -> Tuple[List[str], List[str]]:
        """(DT_NEEDED libraries, DT_RUNPATH or else DT_RPATH directories)."""
        dynamic = self._elf.get_section_by_name(".dynamic")
        if not isinstance(dynamic, DynamicSection):
            return [], []
        found: dict = {"DT_NEEDED": [], "DT_RUNPATH": [], "DT_RPATH": []}
        for tag in dynamic.iter_tags():
            kind = tag.entry.d_tag
            if kind in found:  # pyelftools names the string after the tag: needed, runpath
                value = getattr(tag, kind[3:].lower())
                found[kind] += [value] if kind == "DT_NEEDED" else value.split(":")
        return found["DT_NEEDED"], found["DT_RUNPATH"] or found["DT_RPATH"]

    def debuglink(self) -> Optional[str]:
        raw = self.data(".gnu_debuglink")
        if not raw:
            return None
        return raw.split(b"\0", 1)[0].decode(errors="replace")

    def functions(self) -> List[Tuple[int, int, str]]:
        """(vaddr, size, name) of the function symbols of .symtab and .dynsym, and of the
        untyped labels in code (hand-written assembly such as the loader's _start)."""
        result = []
        for table, strings in ((".symtab", ".strtab"), (".dynsym", ".dynstr")):
            result.extend(self._functions_of(table, strings))
        return result

    def _functions_of(self, table: str, strings: str) -> List[Tuple[int, int, str]]:
        raw, names = self.data(table), self.data(strings)
        if not raw or not names or self._elf.elfclass != 64:
            return []
        result, code = [], self._code_sections
        raw = raw[: len(raw) - len(raw) % _SYM64.size]
        for st_name, st_info, _other, shndx, value, size in _SYM64.iter_unpack(raw):
            kind = st_info & 0xF
            if not value or shndx == 0:
                continue
            if kind in (STT_FUNC, STT_GNU_IFUNC) or (kind == STT_NOTYPE and shndx in code):
                end = names.find(b"\0", st_name)
                if names[st_name:st_name + 1] == b"$":
                    continue  # an Arm mapping symbol ($x code, $d data), not a name
                result.append((value, size, names[st_name:end].decode(errors="replace")))
        return result

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        """(vaddr, size) of a defined symbol of any type (data too: `_PyRuntime`), from
        .dynsym first (a stripped file keeps it), then .symtab."""
        for table, strings in ((".dynsym", ".dynstr"), (".symtab", ".strtab")):
            raw, names = self.data(table), self.data(strings)
            if not raw or not names or self._elf.elfclass != 64:
                continue
            wanted = name.encode() + b"\0"
            for st_name, _info, _other, shndx, value, size in _SYM64.iter_unpack(raw):
                if shndx and names.startswith(wanted, st_name):
                    return value, size
        return None

    def read(self, vaddr: int, size: int) -> Optional[bytes]:
        """`size` bytes of the file's initial image at link-time address `vaddr` (data as
        it is before the program runs); None outside the file's loaded bytes."""
        for p_offset, p_vaddr, p_filesz in self.loads:
            if p_vaddr <= vaddr and vaddr + size <= p_vaddr + p_filesz:
                self._fh.seek(p_offset + vaddr - p_vaddr)
                data = self._fh.read(size)
                return data if len(data) == size else None
        return None

    def load_bias(self, start: int, offset: int) -> Optional[int]:
        """What to add to a link-time address to get its address in a process that maps
        this file's bytes from `offset` at `start`."""
        for p_offset, p_vaddr, p_filesz in self.loads:
            if p_offset & ~0xFFF <= offset < p_offset + max(p_filesz, 1):
                return start - offset - (p_vaddr - p_offset)
        return None

    def holds(self, text: bytes) -> bool:
        """Whether the file's bytes hold `text` anywhere (a quick test before a slow parse)."""
        return file_holds(self._fh, text)

    def close(self) -> None:
        self._fh.close()


def file_holds(fh: BinaryIO, text: bytes) -> bool:
    """Whether an open file (or in-memory bytes) holds `text`; True when it cannot be
    searched (the caller then parses it, as if it did)."""
    if isinstance(fh, io.BytesIO):
        return fh.getbuffer().tobytes().find(text) >= 0
    try:
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(text) >= 0
    except (OSError, ValueError):  # empty, or not mappable
        return True


def debug_file_candidates(elf: ElfFile, root: str = DEBUG_ROOT) -> List[str]:
    """Where gdb looks for the separate debug file of `elf`, in its order."""
    paths = []
    if elf.build_id and len(elf.build_id) > 2:
        paths.append(f"{root}/.build-id/{elf.build_id[:2]}/{elf.build_id[2:]}.debug")
    link = elf.debuglink()
    if link:
        here = os.path.dirname(os.path.realpath(elf.path))
        paths += [f"{here}/{link}", f"{here}/.debug/{link}", f"{root}{here}/{link}"]
    return paths


_OPENED: OrderedDict[Tuple[str, int, int, int], Optional[ElfFile]] = OrderedDict()
_CAPTURED: OrderedDict[str, ElfFile] = OrderedDict()  # build-id -> the mapped file itself
CACHED_FILES = 512


def open_elf(path: str, name: Optional[str] = None) -> Optional[ElfFile]:
    """A cached ElfFile for `path` (reopened when the file changes), or None if it is not a
    readable ELF file (or not a regular file: see safefile.py). `name`: what to call it when
    `path` is only the way in (/proc/PID/map_files/...)."""
    fh = open_regular(path, MAX_ELF_BYTES)
    if fh is None:
        return None
    st = os.fstat(fh.fileno())
    key = (name or path, st.st_dev, st.st_ino, st.st_mtime_ns)
    if key in _OPENED:
        fh.close()
        _OPENED.move_to_end(key)
        return _OPENED[key]
    try:
        elf: Optional[ElfFile] = ElfFile(name or path, fh)
    except OSError:
        elf = None  # ElfFile closed it
    _OPENED[key] = elf
    if len(_OPENED) > CACHED_FILES:
        _OPENED.popitem(last=False)
    return elf


def capture(elf: Optional[ElfFile]) -> Optional[ElfFile]:
    """Keep `elf`, opened through /proc/PID/map_files while its process ran, as THE file of
    its build-id: found by open_mapped() even once it is deleted or replaced at its path, or
    seen from another mount namespace, after the process is gone."""
    if elf is not None and elf.build_id:
        _CAPTURED[elf.build_id] = elf
        _CAPTURED.move_to_end(elf.build_id)
        if len(_CAPTURED) > CACHED_FILES:
            _CAPTURED.popitem(last=False)
    return elf


def captured(build_id: Optional[str]) -> Optional[ElfFile]:
    """The file of `build_id` captured while it was mapped (see capture()), if any."""
    return _CAPTURED.get(build_id) if build_id else None


def open_matching(path: str, build_id: Optional[str]) -> Optional[ElfFile]:
    """The file at `path` if it is still the one that was mapped (same build-id)."""
    elf = open_elf(path)
    if elf is None or (build_id and elf.build_id and elf.build_id != build_id):
        return None
    return elf


def open_debug_file(elf: ElfFile, root: str = DEBUG_ROOT) -> Optional[ElfFile]:
    """The separate debug file of `elf` whose build-id matches, if one is installed, else
    the MiniDebugInfo it carries (.gnu_debugdata: an xz-compressed ELF file holding the
    symbols of its local functions, as Fedora ships its binaries)."""
    for candidate in debug_file_candidates(elf, root):
        if os.path.realpath(candidate) == os.path.realpath(elf.path):
            continue
        debug = open_elf(candidate)
        if debug is not None and (not elf.build_id or debug.build_id == elf.build_id):
            return debug
    return mini_debuginfo(elf)


@lru_cache(maxsize=64)
def mini_debuginfo(elf: ElfFile) -> Optional[ElfFile]:
    """The ELF file of `elf`'s .gnu_debugdata section, decompressed, or None."""
    packed = elf.data(".gnu_debugdata")
    if not packed:
        return None
    try:
        data = lzma.LZMADecompressor().decompress(packed, max_length=MINI_DEBUGINFO_MAX)
        return ElfFile(f"{elf.path}[.gnu_debugdata]", data=data)
    except (lzma.LZMAError, OSError, EOFError):
        return None


def symbol_source(elf: ElfFile, root: str = DEBUG_ROOT) -> str:
    """Where the names of `elf`'s functions come from: "debug file", "minidebuginfo",
    "symtab", or "dynsym only" (a stripped file: its local functions have no name)."""
    debug = open_debug_file(elf, root)
    if debug is not None:
        return "minidebuginfo" if debug is mini_debuginfo(elf) else "debug file"
    return "symtab" if elf.sections.get(".symtab") else "dynsym only"


def by_build_id(build_id: str, root: str = DEBUG_ROOT) -> Optional[ElfFile]:
    """The debug file for a build-id when the original binary is gone."""
    return open_elf(f"{root}/.build-id/{build_id[:2]}/{build_id[2:]}.debug")


def open_mapped(path: str, build_id: Optional[str], root: str = DEBUG_ROOT) -> Optional[ElfFile]:
    """The file a mapping came from: the one captured while it was mapped, else the path if it
    still holds the same build, else the installed debug file of that build-id (same
    addresses, symbols, maybe .debug_frame)."""
    elf = captured(build_id)
    if elf is None and os.path.isabs(path):  # never a path relative to heaptrace's own cwd
        elf = open_matching(path, build_id)
    if elf is None and build_id:
        elf = by_build_id(build_id, root)
    return elf
