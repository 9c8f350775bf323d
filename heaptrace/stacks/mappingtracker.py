"""Keeps ProcMaps up to date from the traced records themselves, so that every executable
mapping is known even for processes gone before /proc/PID/maps could be read: the program and
its loader from the auxiliary vector after exec, libraries from the probe's file-mapping
records, forks, execs and unmaps from the events; /proc snapshots fill in the rest."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

from heaptrace.backends.records import MappedFile, ProcessChange, StackCopy
from heaptrace.events import Event
from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.execimage import find_auxv, image_mappings
from heaptrace.stacks.procmaps import Mapping, ProcMaps


class MappingTracker:
    def __init__(self, maps: ProcMaps) -> None:
        self.maps = maps
        self.images: Dict[int, int] = {}  # pid -> number of execs seen (its image generation)
        self._pending_exec: Dict[int, Tuple[str, int]] = {}  # pid -> (filename, exec time)
        self._build_ids: Dict[str, Optional[str]] = {}

    def on_process_change(self, change: ProcessChange) -> None:
        if change.what == "fork":
            self.maps.on_fork(change.ppid, change.pid, change.ts_ns)
        elif change.what == "exec":
            self.images[change.pid] = self.images.get(change.pid, 0) + 1
            self._pending_exec[change.pid] = (change.filename, change.ts_ns)
            self.maps.on_exec(change.pid, change.ts_ns)

    def on_stack_copy(self, copy: StackCopy) -> None:
        """The first stack copy after an exec holds the new image's auxiliary vector; a copy
        from an address space seen for the first time asks /proc for its mappings."""
        pending = self._pending_exec.get(copy.pid)
        auxv = find_auxv(copy.stack) if pending is not None else None
        if pending is not None and auxv is not None:
            del self._pending_exec[copy.pid]
            for mapping in image_mappings(auxv, *pending):
                self.maps.add(copy.pid, mapping)
        if not self.maps.mappings(copy.pid):
            self.maps.snapshot(copy.pid, 0)

    def on_mapped_file(self, mapped: MappedFile) -> None:
        path = os.path.realpath(mapped.path)
        self.maps.add(mapped.pid, Mapping(mapped.addr, mapped.addr + mapped.length,
                                          mapped.offset, path, self._build_id(path),
                                          mapped.ts_ns))

    def on_event(self, event: Event) -> None:
        if -4096 < event.ret < 0:
            return
        if event.kind == "mmap" and self.maps.find_live(event.pid, event.ret) is None:
            self.maps.on_mmap(event.pid, event.ts_ns, event.ret, event.length, event.prot,
                              event.fd)
        elif event.kind == "munmap":
            self.maps.on_munmap(event.pid, event.ts_ns, event.addr, event.length)

    def _build_id(self, path: str) -> Optional[str]:
        if path not in self._build_ids:
            elf = open_elf(path)
            self._build_ids[path] = elf.build_id if elf else None
        return self._build_ids[path]
