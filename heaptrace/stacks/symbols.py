"""Addresses to names: ELF symbol tables (.symtab, .dynsym, and the separate debug file found
by build-id or .gnu_debuglink), /tmp/perf-PID.map for JIT code, C++ and Rust demangling.

An address without a symbol is shown as `module+0xVADDR` (the link-time address, what
`addr2line -e module` takes), never dropped. Every unique address is resolved once, and the
names of a batch of stacks are demangled with one `c++filt` run.
"""

from __future__ import annotations

import bisect
import os
import re
import shutil
import subprocess
from typing import Collection, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from heaptrace.events import ENTRY_POINTS, TRUNCATED, Frame
from heaptrace.recording import RecordedStack, RecordingWriter, RunMeta
from heaptrace.stacks.elf import DEBUG_ROOT, ElfFile, open_debug_file, open_mapped
from heaptrace.stacks.procmaps import Mapping, ProcMaps, is_file
from heaptrace.stacks.python.mixed import CodeNames, CodeRow, eval_groups, merge
from heaptrace.stacks.safefile import read_regular

_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
MAX_PERF_MAP = 256 << 20
MAX_RESOLVED = 1 << 20  # addresses whose names are kept


def _rank(name: str) -> Tuple[int, int, str]:
    """Among aliases at one address prefer the public spelling: `malloc` over
    `__libc_malloc`, `clone3` over `__GI___clone3`."""
    return (len(name) - len(name.lstrip("_")), len(name), name)


class SymbolTable:
    """The function symbols of one ELF file (with its debug file), sorted for bisection."""

    def __init__(self, symbols: Iterable[Tuple[int, int, str]]) -> None:
        sizes: Dict[int, int] = {}
        names: Dict[int, str] = {}
        for addr, size, name in symbols:
            sizes[addr] = max(size, sizes.get(addr, 0))
            if addr not in names or _rank(name) < _rank(names[addr]):
                names[addr] = name
        self.starts = sorted(names)
        self.sizes = [sizes[a] for a in self.starts]
        self.names = [names[a] for a in self.starts]

    @classmethod
    def of(cls, elf: ElfFile, debug: Optional[ElfFile]) -> SymbolTable:
        symbols = elf.functions()
        if debug is not None:
            symbols += debug.functions()
        return cls(symbols)

    def lookup(self, vaddr: int) -> Optional[str]:
        found = self.entry(vaddr)
        return found[2] if found else None

    def entry(self, vaddr: int) -> Optional[Tuple[int, int, str]]:
        """(start, size, name) of the symbol holding vaddr."""
        i = bisect.bisect(self.starts, vaddr) - 1
        if i < 0:
            return None
        size = self.sizes[i]
        nxt = self.starts[i + 1] if i + 1 < len(self.starts) else None
        end = self.starts[i] + size if size else nxt
        if end is None or vaddr < end:
            return self.starts[i], size, self.names[i]
        return None


def read_perf_map(path: str, owners: Collection[int]) -> SymbolTable:
    """A perf JIT map: lines of `START SIZE NAME`, hexadecimal. Read only when it is a
    regular file owned by one of `owners`, not a link, and at most MAX_PERF_MAP bytes, as
    perf reads it: in /tmp anyone can plant perf-PID.map for the pids to come (or make it a
    FIFO, or a link to /dev/zero)."""
    raw = read_regular(path, MAX_PERF_MAP, nofollow=True, owners=owners)
    symbols = []
    for line in (raw or b"").decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            try:
                symbols.append((int(parts[0], 16), int(parts[1], 16), parts[2]))
            except ValueError:
                continue
    return SymbolTable(symbols)


def perf_map_owners(pid: int, uids: Dict[int, int]) -> Set[int]:
    """Who may have written /tmp/perf-PID.map: root, and the process's user when known (else
    the user heaptrace runs as, perf's rule)."""
    return {0, uids.get(pid, os.geteuid())}


def demangle(names: Sequence[str]) -> Dict[str, str]:
    """Demangled spellings of C++ (_Z) and Rust (_ZN...h<hash>, _R) names, by one c++filt
    run; names c++filt leaves alone, or all of them when it is missing, stay as they are."""
    mangled = sorted({n for n in names if n.startswith(("_Z", "_R"))})
    tool = shutil.which("c++filt")
    if not mangled or tool is None:
        return {}
    out = subprocess.run(
        [tool], input="\n".join(mangled) + "\n", capture_output=True, text=True, check=False
    ).stdout.splitlines()
    if len(out) != len(mangled):
        return {}
    return {m: _RUST_HASH.sub("", d) for m, d in zip(mangled, out) if d != m}


class Symbolizer:
    """Names for the addresses of the address spaces described by `maps`."""

    def __init__(
        self, maps: ProcMaps, debug_root: str = DEBUG_ROOT, perf_map_dir: str = "/tmp",
        demangle_names: bool = True, uids: Optional[Dict[int, int]] = None,
    ) -> None:
        """`uids`: the user each traced process ran as (whose perf map may be trusted)."""
        self.maps = maps
        self.debug_root = debug_root
        self.perf_map_dir = perf_map_dir
        self.demangle_names = demangle_names
        self.uids = uids if uids is not None else maps.uids
        self._tables: Dict[str, Optional[Tuple[ElfFile, SymbolTable]]] = {}
        self._perf_maps: Dict[int, SymbolTable] = {}
        # (pid, address, id of the mapping it fell in) -> (name, file)
        self._resolved: Dict[Tuple[int, int, int], Tuple[str, Optional[str]]] = {}
        self._demangled: Dict[str, str] = {}

    def frame(self, pid: int, addr: int) -> Frame:
        """The frame of the exact address `addr` (a pc, not a return address)."""
        return self.stacks([(pid, [addr])], callers=False)[0][0]

    def stack(self, pid: int, ips: Sequence[int]) -> List[Frame]:
        """Frames of a leaf-first stack; return addresses are looked up one byte back, so a
        call at the very end of a function still names that function."""
        return self.stacks([(pid, ips)])[0]

    def stacks(
        self, stacks: Sequence[Tuple[int, Sequence[int]]], callers: bool = True,
        times: Optional[Sequence[Optional[int]]] = None,
    ) -> List[List[Frame]]:
        """Frames of many (pid, ips) stacks at once: one demangler run for all of them.
        `times`: when each stack was seen, so that a pid's image before an exec is not
        confused with the one after it."""
        times = times or [None] * len(stacks)
        raw = [
            [self._resolve_frame(pid, ip, callers and i > 0, ts) for i, ip in enumerate(ips)]
            for (pid, ips), ts in zip(stacks, times)
        ]
        self._demangle_new(name for frames in raw for name, _ in frames)
        return [
            [Frame(self._demangled.get(name, name), module, ip)
             for (name, module), ip in zip(frames, ips)]
            for frames, (_pid, ips) in zip(raw, stacks)
        ]

    def _demangle_new(self, names: Iterable[str]) -> None:
        if not self.demangle_names:
            return
        new = [n for n in set(names) if n not in self._demangled]
        found = demangle(new)
        for name in new:
            self._demangled[name] = found.get(name, name)

    def _resolve_frame(
        self, pid: int, ip: int, is_return: bool, ts: Optional[int] = None
    ) -> Tuple[str, Optional[str]]:
        if is_return:
            found = self._resolve(pid, ip - 1, ts)
            if found[1] is None or not found[0].startswith(f"{found[1]}+"):
                return found
            # No symbol one byte back: a signal trampoline (__restore_rt) is entered at
            # the address pushed as "return address", not after a call.
        return self._resolve(pid, ip, ts)

    def _resolve(self, pid: int, addr: int, ts: Optional[int] = None) -> Tuple[str, Optional[str]]:
        mapping = self.maps.find(pid, addr, ts)
        key = (pid, addr, id(mapping))
        hit = self._resolved.get(key)
        if hit is None:
            if len(self._resolved) >= MAX_RESOLVED:
                self._resolved.clear()  # bounded: a whole system has millions of addresses
            hit = self._resolved[key] = self._lookup(pid, addr, mapping)
        return hit

    def _lookup(
        self, pid: int, addr: int, mapping: Optional[Mapping]
    ) -> Tuple[str, Optional[str]]:
        if mapping is None or not is_file(mapping):
            return self._lookup_jit(pid, addr, mapping.path if mapping else None)
        module = os.path.basename(mapping.path)
        loaded = self._table(mapping.path, mapping.build_id)
        file_offset = addr - mapping.start + mapping.offset
        if loaded is None:
            return f"{module}+{file_offset:#x}", module
        elf, table = loaded
        vaddr = elf.offset_to_vaddr(file_offset)
        vaddr = file_offset if vaddr is None else vaddr
        return table.lookup(vaddr) or f"{module}+{vaddr:#x}", module

    def _lookup_jit(self, pid: int, addr: int, path: Optional[str]) -> Tuple[str, Optional[str]]:
        table = self._perf_maps.get(pid)
        if table is None:
            table = self._perf_maps[pid] = read_perf_map(
                f"{self.perf_map_dir}/perf-{pid}.map", perf_map_owners(pid, self.uids))
        name = table.lookup(addr)
        if name is not None:
            return name, f"perf-{pid}.map"
        module = path or None  # [vdso], [anon:...] or nothing at all
        return (f"{module}+{addr:#x}" if module else f"{addr:#x}"), module

    def _table(self, path: str, build_id: Optional[str]) -> Optional[Tuple[ElfFile, SymbolTable]]:
        key = build_id or path
        if key not in self._tables:
            elf = open_mapped(path, build_id, self.debug_root)
            self._tables[key] = None if elf is None else (
                elf, SymbolTable.of(elf, open_debug_file(elf, self.debug_root))
            )
        return self._tables[key]


def is_symbolized(frame: Frame) -> bool:
    """False for the `module+0xVADDR` and bare-address names of frames with no symbol."""
    if frame.name.startswith("0x"):
        return False
    return not (frame.module and frame.name.startswith(f"{frame.module}+0x"))


def symbolize_stacks(
    raw: Sequence[RecordedStack], symbolizer: Symbolizer
) -> Dict[int, List[Frame]]:
    """Frames for recorded stacks with addresses (leaf first), by stack id."""
    frames = symbolizer.stacks([(s.pid or 0, s.ips) for s in raw],
                               times=[s.ts_ns for s in raw])
    return {s.id: f for s, f in zip(raw, frames)}


def symbolize_into(writer: RecordingWriter, debug_root: str = DEBUG_ROOT) -> Tuple[int, int, int]:
    """(Re)write the frames of every stack the writer's recording holds, from its raw
    addresses and stored mappings, through the writer's own connection; returns (stacks,
    frames, frames without a symbol). A batch of stacks at a time, each committed: memory
    stays bounded for a whole system's stacks, and a run stopped while it symbolizes keeps
    the names given so far (`heaptrace symbolize` gives the rest)."""
    rec = writer.reader()
    maps = ProcMaps.from_rows(rec.mappings())
    maps.uids = uids_of(rec.meta())  # whose /tmp/perf-PID.map may name JIT frames
    symbolizer = Symbolizer(maps, debug_root=debug_root)
    codes: Optional[CodeNames] = None
    stacks = frames = unnamed = 0
    for batch in rec.stack_batches(frames=False):
        raw = [s for s in batch if s.ips]
        if not raw:
            continue
        named = symbolize_stacks(raw, symbolizer)
        py_stacks = rec.py_stacks(raw[0].id, raw[-1].id)
        if py_stacks:  # the Python frames of its Python stacks in place
            codes = codes if codes is not None else code_names(rec.py_codes())
            named = with_python_frames(named, [(s.id, s.pid, s.ips, s.ts_ns) for s in raw],
                                       py_stacks, codes)
        for stack_id, stack in named.items():
            stack = mark_cut(stack)
            writer.set_stack_frames(stack_id, stack)
            stacks += 1
            frames += len(stack)
            unnamed += sum(not is_symbolized(f) for f in stack)
        writer.commit()
    return stacks, frames, unnamed


def code_names(rows: Sequence[tuple]) -> CodeNames:
    """Recording.py_codes() rows as CodeNames."""
    return CodeNames((pid, addr, scope or 0,
                      CodeRow(first_ns or 0, name, qualname, filename, firstlineno,
                              first_traceable or 0, lines_format, lines or b""))
                     for pid, addr, scope, first_ns, name, qualname, filename, firstlineno,
                     first_traceable, lines_format, lines in rows)


def with_python_frames(
    frames: Dict[int, List[Frame]],
    raw: Sequence[Tuple[int, Optional[int], Sequence[int], Optional[int]]],
    py_stacks: Dict[int, Tuple[List[Tuple[int, int, bool, int]], bool]], codes: CodeNames,
) -> Dict[int, List[Frame]]:
    """Native frames by stack id with the Python frames of each stack merged in."""
    result = dict(frames)
    for stack_id, pid, _ips, ts in raw:
        found = py_stacks.get(stack_id)
        if found is not None and stack_id in result:
            groups = eval_groups(found[0], codes, pid or 0, ts)
            result[stack_id] = merge(result[stack_id], groups, found[1])
    return result


def mark_cut(frames: List[Frame]) -> List[Frame]:
    """A stack that does not reach an entry point, ended by a [truncated] frame."""
    if frames and frames[-1].name not in ENTRY_POINTS and frames[-1].name != TRUNCATED:
        return [*frames, Frame(TRUNCATED)]
    return frames


def uids_of(meta: RunMeta) -> Dict[int, int]:
    """The users the traced processes ran as, as ProcMaps.save() stored them ({} if not)."""
    return {int(pid): uid for pid, uid in meta.process_uids.items()
            if pid.isascii() and pid.isdigit()}
