"""Which traced processes run CPython: found in their mappings, taught to the probe (where
`_PyRuntime` is and the layout of that version), followed through fork and exec; and the
probe's Python records of those processes turned into what the recording keeps."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from heaptrace.backends.btf import fsbase_offset
from heaptrace.backends.records import PyCode, PyStack
from heaptrace.stacks.elf import (
    MAX_ELF_BYTES,
    ElfFile,
    captured,
    file_holds,
    open_elf,
    open_mapped,
    symbol_source,
)
from heaptrace.stacks.procmaps import ProcMaps, is_file, parse_maps
from heaptrace.stacks.procmem import process_reader
from heaptrace.stacks.python.codes import (
    CodeInfo,
    code_type,
    decode_code,
    instruction_offset,
    read_code,
)
from heaptrace.stacks.python.interpreter import Interpreter, find_interpreter
from heaptrace.stacks.safefile import open_regular

Teach = Callable[[int, Sequence[int]], None]  # (pid, py_proc fields)
# A Python frame as the recording keeps it: (code object address, byte offset of its
# instruction, first frame of its C eval call, its globals); address 0: an eval call with no
# frame yet.
PyFrame = Tuple[int, int, bool, int]


@dataclass
class _Process:
    gen: int
    interpreter: Interpreter
    settled: bool = True  # False: taught before its library was mapped (the probe waits)
    codes: Set[Tuple[int, int]] = field(default_factory=set)  # (address, globals) named
    code_type: Optional[int] = None  # PyCode_Type's address, from the probe's copies


RUNTIME_SYMBOL = b"_PyRuntime"  # in every file that holds CPython (exported: .dynstr)
LIBPYTHON = re.compile(r"^libpython\d\.\d+")
SYSTEM_LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                       "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64",
                       "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib")


def libpython_of(program: ElfFile, pid: int) -> Optional[str]:
    """The libpython a program needs, where ld.so will find it: LD_LIBRARY_PATH (of the
    process), the program's RUNPATH/RPATH ($ORIGIN expanded), the system directories.
    A guess (no ld.so.cache): the mapping the probe then sees has to match it."""
    needed, runpath = program.needed()
    name = next((n for n in needed if LIBPYTHON.match(n)), None)
    if name is None:
        return None
    origin = os.path.dirname(os.path.realpath(program.path))
    dirs = [*_environ(pid).get("LD_LIBRARY_PATH", "").split(":"),
            *(d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in runpath),
            *SYSTEM_LIBRARY_DIRS]
    for directory in dirs:  # a relative one would be relative to the target's cwd, not ours
        candidate = os.path.join(directory, name) if os.path.isabs(directory) else ""
        if candidate and os.path.isfile(candidate):
            return os.path.realpath(candidate)
    return None


def _environ(pid: int) -> Dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}


def may_name(path: str, text: bytes) -> bool:
    """False when the file's bytes do not hold `text` (a symbol or library name): no need to
    parse it as ELF, tens of milliseconds for libc while a process that just exec'd Python
    runs on untaught. Opened as safefile.py says (the target may have put a FIFO there)."""
    fh = open_regular(path, MAX_ELF_BYTES)
    if fh is None:  # not a regular file here (open_mapped may find it elsewhere)
        return True
    with fh:
        return file_holds(fh, text)


def warm_up(argv: Sequence[str]) -> None:
    """Do now what finding Python in the traced command will need (open its program and
    libpython, read the kernel's BTF), so that it takes no time when the command starts:
    a short-lived Python process can be over before a slow look finds its interpreter.
    Meant for a thread while the probe compiles (the compiler releases the GIL)."""
    executable = shutil.which(argv[0]) if argv else None
    program = open_elf(os.path.realpath(executable)) if executable else None
    if program is None:
        return
    library = libpython_of(program, os.getpid())
    elf = open_elf(library) if library else program
    interp = find_interpreter(elf) if elf else None
    if interp is not None and interp.layout is not None and interp.layout.tid_is_pthread:
        fsbase_offset()


class PythonProcesses:
    def __init__(self, maps: ProcMaps, teach: Optional[Teach] = None) -> None:
        self.maps = maps
        self.teach = teach
        self._procs: Dict[int, _Process] = {}
        self._looked: Dict[int, Tuple[int, int]] = {}  # pid -> (gen, maps generation) seen
        self._files: Dict[Tuple[str, Optional[str]], Optional[Interpreter]] = {}
        self.found: Dict[str, Interpreter] = {}  # path -> every interpreter met
        self.used: Dict[str, Interpreter] = {}  # path -> the interpreters taught to the probe
        self.problems: List[str] = []  # interpreters whose frames cannot be read, and why

    def processes(self) -> int:
        """How many processes are known to run Python or were looked at for it."""
        return len(self._procs.keys() | self._looked.keys())

    def forget(self, pid: int) -> None:
        """A process that ended, none of whose records is still to come."""
        self._procs.pop(pid, None)
        self._looked.pop(pid, None)

    def look(self, pid: int, gen: int) -> None:
        """Search the pid's mappings (when they changed) for an interpreter, and teach the
        probe about the first one found in this exec generation."""
        known = self._procs.get(pid)
        if known is not None and known.gen >= gen:  # a later image may be known ahead
            return
        seen = (gen, self.maps.generation(pid))
        if self._looked.get(pid) == seen:
            return
        self._looked[pid] = seen
        for mapping in self.maps.mappings(pid):
            if mapping.last_ns is None and is_file(mapping) and self.look_file(
                    pid, gen, mapping.path, mapping.start, mapping.offset, mapping.build_id):
                return

    def look_file(self, pid: int, gen: int, path: str, start: int, offset: int,
                  build_id: Optional[str] = None) -> bool:
        """A file the pid maps at `start` from `offset`: if it holds the interpreter, teach
        the probe where its runtime is (once per exec generation). True if it does."""
        known = self._procs.get(pid)
        if known is not None and (known.gen > gen or (known.gen == gen and known.settled)):
            return True  # taught already (a later image, seen ahead, included)
        interp = self._interpreter(path, build_id)
        if interp is None or interp.layout is None or not interp.checked:
            return False
        elf = open_mapped(path, build_id)
        bias = elf.load_bias(start, offset) if elf else None
        if bias is None:
            return False
        fsbase = self._fsbase(interp)
        if interp.layout.tid_is_pthread and fsbase is None:
            return False
        self._procs[pid] = _Process(gen, interp)
        self.used[interp.path] = interp
        if self.teach is not None:
            self.teach(pid, interp.probe_fields(bias + interp.runtime_vaddr, gen, fsbase))
        return True

    def look_exec(self, pid: int, gen: int, filename: str) -> None:
        """A process that just exec'd `filename`, seen ahead of the records before it: an
        interpreter in the program itself is taught now (from /proc/PID/maps); one in a
        libpython it needs, before ld.so maps it: the probe finds its address then."""
        try:
            with open(f"/proc/{pid}/maps") as fh:
                text = fh.read()
        except OSError:
            text = ""
        for mapping, _inode in parse_maps(text):
            if is_file(mapping) and self.look_file(pid, gen, mapping.path, mapping.start,
                                                    mapping.offset):
                return
        # The file exec mapped, through /proc (never `filename` in heaptrace's own cwd: the
        # target may have swapped it since); its name as the process sees it.
        exe = f"/proc/{pid}/exe"
        try:
            executable = os.readlink(exe).removesuffix(" (deleted)")
        except OSError:
            return  # gone already
        program = open_elf(exe, name=executable) if may_name(exe, b"libpython") else None
        library = libpython_of(program, pid) if program is not None else None
        lib_elf = open_elf(library) if library else None
        interp = self._interpreter(library, lib_elf.build_id) if library and lib_elf else None
        if interp is None or interp.layout is None or not interp.checked or lib_elf is None:
            return
        wait = interp.code_mapping(lib_elf)
        fsbase = self._fsbase(interp)
        if wait is None or (interp.layout.tid_is_pthread and fsbase is None):
            return
        self._procs[pid] = _Process(gen, interp, settled=False)
        self.used[interp.path] = interp
        if self.teach is not None:
            self.teach(pid, interp.probe_fields(0, gen, fsbase, wait))

    def _fsbase(self, interp: Interpreter) -> Optional[int]:
        """Where the kernel keeps pthread_self() of a task, for the versions that know
        their threads by it (3.8 to 3.10); None for the others, or when it is unknown."""
        if interp.layout is None or not interp.layout.tid_is_pthread:
            return None
        offset = fsbase_offset()
        if offset is None:
            self._problem(f"Python {interp.version[0]}.{interp.version[1]}: its threads are"
                          " known by pthread_self(), which needs the kernel's BTF (x86_64)")
        return offset

    def _interpreter(self, path: str, build_id: Optional[str]) -> Optional[Interpreter]:
        key = (path, build_id)
        mapped = captured(build_id)  # the file the process mapped, if read while it ran
        if key not in self._files and not (mapped.holds(RUNTIME_SYMBOL) if mapped
                                           else may_name(path, RUNTIME_SYMBOL)):
            self._files[key] = None
        if key not in self._files:
            elf = mapped or open_mapped(path, build_id)
            interp = self._files[key] = find_interpreter(elf) if elf else None
            if interp is not None:
                self.found[path] = interp
                if interp.problem:
                    self._problem(interp.problem)
        return self._files[key]

    def summary(self) -> Tuple[List[dict], List[str]]:
        """What the run's summary and metadata say of Python: each interpreter whose frames
        were read (path, version, where its C functions' names come from), and the lines
        the user must read (interpreters that could not be read, stripped ones)."""
        interpreters, notes = [], list(self.problems)
        for path, interp in sorted(self.used.items()):
            elf = open_elf(path)
            names = symbol_source(elf) if elf else "unreadable"
            version = f"{interp.version[0]}.{interp.version[1]}"
            interpreters.append({"path": path, "version": version, "symbols": names})
            if names == "dynsym only":
                build = f" (build-id {elf.build_id})" if elf and elf.build_id else ""
                notes.append(
                    f"{os.path.basename(path)} (Python {version}) is stripped: its own C "
                    f"functions stay unnamed; install its debug symbols{build}, e.g. the "
                    f"python{version}-dbg package of this very build, then heaptrace symbolize")
        return interpreters, notes

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def on_fork(self, parent: int, child: int) -> None:
        """The child runs its parent's interpreter (the probe copied its settings)."""
        known = self._procs.get(parent)
        if known is not None:
            self._procs[child] = _Process(0, known.interpreter)

    def on_exec(self, pid: int, gen: int) -> None:
        """Forget the pid's interpreter of before exec generation `gen` (not one already
        found in it, or in a later one, ahead of the records)."""
        known = self._procs.get(pid)
        if known is not None and known.gen < gen:
            del self._procs[pid]
        self._looked.pop(pid, None)

    def interpreter(self, pid: int) -> Optional[Interpreter]:
        known = self._procs.get(pid)
        return known.interpreter if known else None

    def code(self, record: PyCode) -> Optional[CodeInfo]:
        """A code object copied by the probe, decoded (None: not a process known to run
        Python any more)."""
        known = self._procs.get(record.pid)
        if known is None or known.interpreter.layout is None:
            return None
        known.codes.add((record.addr, record.scope))
        known.code_type = code_type(record.head)
        return decode_code(record.head, record.name, record.qualname, record.filename,
                           record.lines, known.interpreter.layout, process_reader(record.pid))

    def unsent_codes(self, record: PyStack) -> List[Tuple[int, int, CodeInfo]]:
        """The code objects of a chain the probe has not sent (it sends a few per call),
        read from the process while it runs: (address, globals, code)."""
        known = self._procs.get(record.pid)
        if known is None or known.interpreter.layout is None:
            return []
        found = []
        read = process_reader(record.pid)
        for addr, _instr, _entry, scope in record.frames:
            if addr and (addr, scope) not in known.codes:
                known.codes.add((addr, scope))
                info = read_code(read, addr, known.interpreter.layout, known.code_type)
                if info is not None:
                    found.append((addr, scope, info))
        return found

    def frames(self, record: PyStack) -> List[PyFrame]:
        """The frames of a PyStack with bytecode offsets instead of instruction pointers."""
        known = self._procs.get(record.pid)
        if known is None or known.interpreter.layout is None:
            return []
        layout = known.interpreter.layout
        return [(code, instruction_offset(layout, code, instr), entry, scope)
                for code, instr, entry, scope in record.frames]
