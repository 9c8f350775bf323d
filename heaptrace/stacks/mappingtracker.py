"""Keeps ProcMaps up to date from the traced records themselves, so that every executable
mapping is known even for processes gone before /proc/PID/maps could be read: the program and
its loader from the auxiliary vector after exec, libraries from the probe's file-mapping
records, forks, execs and unmaps from the events; /proc snapshots fill in the rest."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

from heaptrace.backends.records import MappedFile, ProcessChange, StackCopy
from heaptrace.events import Event
from heaptrace.stacks.elf import ElfFile, capture, open_elf
from heaptrace.stacks.execimage import find_auxv, image_mappings
from heaptrace.stacks.procmaps import Mapping, ProcMaps

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_RESOLVED = 4096


def _end(mapped: MappedFile) -> int:
    return mapped.addr + -(-mapped.length // PAGE) * PAGE


def _key(mapped: MappedFile) -> Tuple[int, int, int]:
    return mapped.pid, mapped.addr, mapped.ts_ns


class MappingTracker:
    def __init__(self, maps: ProcMaps) -> None:
        self.maps = maps
        self.images: Dict[int, int] = {}  # pid -> number of execs seen (its image generation)
        self._pending_exec: Dict[int, Tuple[str, int]] = {}  # pid -> (filename, exec time)
        self.start_dirs: Dict[int, str] = {}  # pid -> the cwd heaptrace started it in
        # mapped_file()'s answers for records not handled yet
        self._resolved: Dict[Tuple[int, int, int], Tuple[str, Optional[ElfFile]]] = {}

    def on_process_change(self, change: ProcessChange) -> None:
        if change.what == "fork":
            self.maps.on_fork(change.ppid, change.pid, change.ts_ns)
        elif change.what == "exec":
            self.images[change.pid] = self.images.get(change.pid, 0) + 1
            self._pending_exec[change.pid] = (change.filename, change.ts_ns)
            self.maps.on_exec(change.pid, change.ts_ns)

    def forget(self, pid: int) -> None:
        """A process that ended, none of whose records is still to come: a later process with
        its pid starts from its fork, as the probe's generations do."""
        self.images.pop(pid, None)
        self._pending_exec.pop(pid, None)
        self.start_dirs.pop(pid, None)

    def on_stack_copy(self, copy: StackCopy) -> None:
        """The first stack copy after an exec holds the new image's auxiliary vector; a copy
        from an address space seen for the first time asks /proc for its mappings."""
        pending = self._pending_exec.get(copy.pid)
        auxv = find_auxv(copy.stack) if pending is not None else None
        if pending is not None and auxv is not None:
            del self._pending_exec[copy.pid]
            filename, ts_ns = pending
            for mapping in image_mappings(auxv, self._absolute(copy.pid, filename), ts_ns,
                                          copy.pid, self.maps.proc_root):
                self.maps.add(copy.pid, mapping)
        if not self.maps.mappings(copy.pid):
            self.maps.snapshot(copy.pid, 0)

    def _absolute(self, pid: int, filename: str) -> str:
        """An exec'd file name relative to the process's cwd made absolute: through
        /proc/PID/cwd, or the directory heaptrace started it in; never heaptrace's own."""
        if os.path.isabs(filename):
            return filename
        try:
            cwd: Optional[str] = os.readlink(f"{self.maps.proc_root}/{pid}/cwd")
        except OSError:
            cwd = self.start_dirs.get(pid)
        return os.path.join(cwd, filename) if cwd else filename

    def on_mapped_file(self, mapped: MappedFile) -> None:
        """The probe's path is what the target passed to open(): relative to its cwd, in its
        mount namespace, and the file there may have been swapped since (for a FIFO, say).
        The mapped file itself is read through /proc/PID/map_files while the process runs;
        after that, only an absolute path is opened, as safefile.py allows."""
        found = self._resolved.pop(_key(mapped), None)
        path, elf = found if found is not None else self._open(mapped)
        self.maps.add(mapped.pid, Mapping(mapped.addr, _end(mapped), mapped.offset, path,
                                          elf.build_id if elf else None, mapped.ts_ns))

    def mapped_file(self, mapped: MappedFile) -> Tuple[str, Optional[ElfFile]]:
        """(the file's path as the process sees it, the file itself) of a probe's mapping
        record, found as on_mapped_file() says; kept for on_mapped_file() when a look ahead
        at the records (Recorder.prepare) asks first, while the process still runs."""
        if len(self._resolved) >= MAX_RESOLVED:
            self._resolved.clear()  # looks ahead never handled (a run cut short)
        found = self._resolved[_key(mapped)] = self._open(mapped)
        return found

    def _open(self, mapped: MappedFile) -> Tuple[str, Optional[ElfFile]]:
        path, elf = self._map_file(mapped.pid, mapped.addr, _end(mapped))
        if path is None:
            path = os.path.normpath(mapped.path)
            elf = open_elf(path) if os.path.isabs(path) else None
        return path, elf

    def _map_file(self, pid: int, start: int, end: int) -> Tuple[Optional[str], Optional[ElfFile]]:
        """(the file's path as the process sees it, the file opened) of the mapping at
        start-end, through /proc/PID/map_files; (None, None) once the process is gone."""
        entry = f"{self.maps.proc_root}/{pid}/map_files/{start:x}-{end:x}"
        try:
            path = os.readlink(entry).removesuffix(" (deleted)")
        except OSError:
            return None, None
        return path, capture(open_elf(entry, name=path))

    def on_event(self, event: Event) -> None:
        if -4096 < event.ret < 0:
            return
        if event.kind == "mmap" and self.maps.find_live(event.pid, event.ret) is None:
            self.maps.on_mmap(event.pid, event.ts_ns, event.ret, event.length, event.prot,
                              event.fd)
        elif event.kind == "munmap":
            self.maps.on_munmap(event.pid, event.ts_ns, event.addr, event.length)
