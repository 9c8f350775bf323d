"""Executable mappings of every traced address space, over time.

Stacks are unwound and symbolized after the fact (often after the process has exited), so
each pid keeps every executable mapping it ever had, with the time it appeared and vanished.
Sources: /proc/PID/maps snapshots (at exec, and when an mmap with PROT_EXEC of a file shows
up in the events), the events themselves (fork copies the parent's mappings, exec and munmap
end them, an anonymous PROT_EXEC mmap is JIT code), and a recording's `mappings` table.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set, Tuple

from heaptrace.recording import RecordedMapping
from heaptrace.stacks.elf import capture, open_elf

PROT_EXEC = 0x4
ANON = ""  # path of an anonymous executable mapping (JIT code: see /tmp/perf-PID.map)


@dataclass
class Mapping:
    start: int
    end: int
    offset: int
    path: str
    build_id: Optional[str] = None
    first_ns: int = 0
    last_ns: Optional[int] = None  # None: still mapped when last seen
    # Found by a snapshot read after the event that asked for it (first_ns): it may have been
    # mapped in between, and the probe's record of that mapping, when it comes, says when.
    read_late: bool = False

    def same_place(self, other: Mapping) -> bool:
        return (self.start, self.end, self.offset, self.path) == (
            other.start, other.end, other.offset, other.path
        )


def parse_maps(text: str) -> List[Tuple[Mapping, str]]:
    """Executable mappings of a /proc/PID/maps text, each with its "dev:inode" key."""
    result = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or "x" not in parts[1]:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5].strip() if len(parts) > 5 else ANON
        path = path.removesuffix(" (deleted)")  # replaced since: build-id finds the debug file
        result.append((Mapping(start, end, int(parts[2], 16), path), f"{parts[3]}:{parts[4]}"))
    return result


class _Space:
    """The mappings of one pid: all of them, plus the live ones sorted for bisection, and for
    the lookups at a time an index of which mappings cover each address range (symbolizing
    a whole system's stacks asks millions of times)."""

    def __init__(self) -> None:
        self.all: List[Mapping] = []
        self.live: List[Mapping] = []
        self.starts: List[int] = []
        self._bounds: List[int] = []  # every start and end, sorted
        self._cover: List[List[Mapping]] = []  # [i]: those covering bounds[i]..bounds[i+1]
        self._indexed = 0  # how many of `all` the index holds (it only ever grows)
        self.rows_from: Optional[int] = None  # its first row in the recording, once saved

    def add(self, m: Mapping) -> None:
        self.all.append(m)
        if m.last_ns is None:
            i = bisect.bisect(self.starts, m.start)
            self.live.insert(i, m)
            self.starts.insert(i, m.start)

    def end(self, m: Mapping, ts_ns: int) -> None:
        m.last_ns = ts_ns
        i = self.live.index(m)
        del self.live[i], self.starts[i]

    def find_live(self, addr: int) -> Optional[Mapping]:
        i = bisect.bisect(self.starts, addr) - 1
        if i >= 0 and addr < self.live[i].end:
            return self.live[i]
        return None

    def find(self, addr: int, ts_ns: Optional[int]) -> Optional[Mapping]:
        if ts_ns is None:
            found = self.find_live(addr)
            if found is not None:
                return found
        covering = self._covering(addr)
        if len(covering) == 1:  # most addresses: the rules below, for one mapping
            only = covering[0]
            gone = ts_ns is not None and only.last_ns is not None and only.last_ns <= ts_ns
            return None if gone else only
        alive = [m for m in covering if _alive_at(m, ts_ns)]
        if alive or ts_ns is None:
            return max(alive, key=lambda m: m.first_ns, default=None)
        # Seen only after ts_ns (a snapshot taken late) but not ended before it: the same image.
        later = [m for m in covering if m.last_ns is None or m.last_ns > ts_ns]
        return min(later, key=lambda m: m.first_ns, default=None)


    def _covering(self, addr: int) -> List[Mapping]:
        """The mappings holding `addr`, in the order they were added."""
        if self._indexed != len(self.all):
            bounds = sorted({m.start for m in self.all} | {m.end for m in self.all})
            cover: List[List[Mapping]] = [[] for _ in bounds]
            for m in self.all:
                for i in range(bisect.bisect_left(bounds, m.start),
                               bisect.bisect_left(bounds, m.end)):
                    cover[i].append(m)
            self._bounds, self._cover, self._indexed = bounds, cover, len(self.all)
        i = bisect.bisect_right(self._bounds, addr) - 1
        return self._cover[i] if i >= 0 else []


def _alive_at(m: Mapping, ts_ns: Optional[int]) -> bool:
    if ts_ns is None:
        return True
    return m.first_ns <= ts_ns and (m.last_ns is None or ts_ns < m.last_ns)


class ProcMaps:
    """Executable mappings per pid. `generation(pid)` changes whenever that pid's live
    mappings do, so callers may cache per-address results until then."""

    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self._spaces: Dict[int, _Space] = {}
        self._generation: Dict[int, int] = {}
        self._dirty: Set[int] = set()  # pids whose mappings changed since the last save
        self._build_ids: Dict[str, Optional[str]] = {}
        self._ends: Dict[int, List[int]] = {}  # pid -> sorted times file mappings ended
        self.uids: Dict[int, int] = {}  # pid -> the user it runs as: whose perf map counts

    def _space(self, pid: int) -> _Space:
        space = self._spaces.get(pid)
        if space is None:
            space = self._spaces[pid] = _Space()
        return space

    def _touch(self, pid: int) -> None:
        self._generation[pid] = self._generation.get(pid, 0) + 1
        self._dirty.add(pid)

    def generation(self, pid: int) -> int:
        return self._generation.get(pid, 0)

    def pids(self) -> List[int]:
        return sorted(self._spaces)

    def find(self, pid: int, addr: int, ts_ns: Optional[int] = None) -> Optional[Mapping]:
        """The mapping holding `addr` in `pid`: live now (or at exit), or at time `ts_ns`."""
        space = self._spaces.get(pid)
        return None if space is None else space.find(addr, ts_ns)

    def find_live(self, pid: int, addr: int) -> Optional[Mapping]:
        space = self._spaces.get(pid)
        return None if space is None else space.find_live(addr)

    def mappings(self, pid: int) -> List[Mapping]:
        space = self._spaces.get(pid)
        return list(space.all) if space else []

    def add(self, pid: int, mapping: Mapping) -> None:
        """Record a mapping; one already live at the same place is kept (and its time).
        Records come out of time order (calls are batched, file mappings are not): a live
        mapping it overlaps ends when it starts, unless that one is the newer."""
        space = self._space(pid)
        same = next((m for m in space.live if m.same_place(mapping)), None)
        if same is not None:
            if same.read_late and not mapping.read_late and mapping.first_ns > same.first_ns:
                # A library dlopened before a late snapshot found it: mapped at the probe's
                # time, so an munmap of what was there before does not end it.
                same.first_ns, same.read_late = mapping.first_ns, False
                self._touch(pid)
            return
        overlap = [m for m in space.live if m.start < mapping.end and mapping.start < m.end]
        newer = [m.first_ns for m in overlap if m.first_ns > mapping.first_ns]
        if newer:
            mapping.last_ns = min(newer)  # already replaced: history only
        for old in overlap:
            if old.first_ns <= mapping.first_ns:
                self._end(pid, old, mapping.first_ns)
        space.add(mapping)
        self._touch(pid)

    def _end(self, pid: int, m: Mapping, ts_ns: int) -> None:
        self._space(pid).end(m, ts_ns)
        if is_file(m):
            bisect.insort(self._ends.setdefault(pid, []), ts_ns)

    def epoch(self, pid: int, ts_ns: int) -> int:
        """How many file mappings of `pid` had ended by `ts_ns`: stacks of different epochs
        may hold the same addresses in different files (dlclose, then dlopen of another
        library at the same place), so they are never merged."""
        return bisect.bisect_right(self._ends.get(pid, ()), ts_ns)

    def snapshot(self, pid: int, ts_ns: int) -> bool:
        """Read /proc/PID/maps; mappings gone since the last snapshot are ended at `ts_ns`.
        Returns False when the process is already gone: an exited process (a zombie) has
        an empty maps file, which must not read as "everything was unmapped"."""
        try:
            with open(f"{self.proc_root}/{pid}/maps") as fh:
                parsed = parse_maps(fh.read())
        except OSError:
            return False
        if not parsed:
            return False
        self._note_uid(pid)
        seen = []
        for mapping, inode_key in parsed:
            mapping.first_ns, mapping.read_late = ts_ns, True
            mapping.build_id = self._build_id(pid, mapping, inode_key)
            self.add(pid, mapping)
            seen.append(mapping)
        # What is missing now went away before now, not necessarily before `ts_ns` (the time
        # of the event that asked for the snapshot, read later: a library mapped then may
        # already be gone again, and its calls at ts_ns.. still belong to it).
        self._end_missing(pid, seen, max(ts_ns, time.monotonic_ns()))
        return True

    def _note_uid(self, pid: int) -> None:
        """/proc/PID belongs to the user the process runs as (root if it is not dumpable)."""
        if pid not in self.uids:
            with contextlib.suppress(OSError):
                self.uids[pid] = os.stat(f"{self.proc_root}/{pid}").st_uid

    def refresh(self, pid: int) -> bool:
        """A new snapshot now (say, an address fell in no known mapping while the process
        may still run); True if that changed the live mappings."""
        before = self.generation(pid)
        self.snapshot(pid, time.monotonic_ns())
        return self.generation(pid) != before

    def _end_missing(self, pid: int, seen: List[Mapping], ts_ns: int) -> None:
        space = self._space(pid)
        for m in list(space.live):
            if m.path != ANON and m.first_ns <= ts_ns and not any(m.same_place(s) for s in seen):
                self._end(pid, m, ts_ns)
                self._touch(pid)

    def _build_id(self, pid: int, m: Mapping, inode_key: str) -> Optional[str]:
        """Build-id of a mapped file, read through /proc/PID/map_files (the very file that is
        mapped, even if the path was replaced since) and cached per device and inode."""
        if m.path == ANON or m.path.startswith("["):
            return None
        key = f"{inode_key}:{m.path}"
        if key not in self._build_ids:
            elf = capture(open_elf(f"{self.proc_root}/{pid}/map_files/{m.start:x}-{m.end:x}",
                                   name=m.path))
            # Without map_files (no CAP_SYS_ADMIN): the path, opened as safefile.py says.
            elf = elf or open_elf(m.path)
            self._build_ids[key] = elf.build_id if elf else None
        return self._build_ids[key]

    # Updates from the traced events.

    def on_exec(self, pid: int, ts_ns: int) -> None:
        space = self._space(pid)
        for m in list(space.live):
            self._end(pid, m, ts_ns)
        self._touch(pid)
        self.snapshot(pid, ts_ns)

    def on_fork(self, parent: int, child: int, ts_ns: int) -> None:
        if parent in self.uids:
            self.uids.setdefault(child, self.uids[parent])
        for m in self._space(parent).live:
            copy = Mapping(m.start, m.end, m.offset, m.path, m.build_id, ts_ns)
            self.add(child, copy)

    def on_mmap(
        self, pid: int, ts_ns: int, addr: int, length: int, prot: int, fd: int
    ) -> None:
        """A successful mmap (`addr` is the address it returned)."""
        if not prot & PROT_EXEC:
            return
        if fd >= 0:
            self.snapshot(pid, ts_ns)  # the path is only known through /proc
        else:
            self._note_uid(pid)  # JIT code: its names are in /tmp/perf-PID.map
            self.add(pid, Mapping(addr, addr + length, 0, ANON, None, ts_ns))

    def on_munmap(self, pid: int, ts_ns: int, addr: int, length: int) -> None:
        """An munmap at `ts_ns`; it cannot end a mapping made after it (a library mapped
        at the same place since, whose record came before the batch holding the munmap)."""
        space = self._space(pid)
        gone = [m for m in space.live
                if addr <= m.start and m.end <= addr + length and m.first_ns <= ts_ns]
        for m in gone:
            self._end(pid, m, ts_ns)
        if gone:
            self._touch(pid)

    # The recording.

    def save(self, writer, changed_only: bool = False) -> None:
        """Store every mapping ever seen (of the pids changed since the last save, with
        `changed_only`: the checkpoint of a running recording) in the recording."""
        pids = sorted(self._dirty) if changed_only else self.pids()
        self._dirty.clear()
        if self.uids:
            writer.set_meta(process_uids={str(pid): uid for pid, uid in self.uids.items()})
        for pid in pids:
            self._save_space(writer, pid)

    def _save_space(self, writer, pid: int) -> None:
        """A pid's mappings in place of what it stored before (an earlier process with that
        pid, forgotten since, keeps its rows: they come before this one's)."""
        space = self._space(pid)
        if space.rows_from is not None:
            writer.delete_mappings(pid, space.rows_from)
        space.rows_from = None
        for m in space.all:
            row = writer.add_mapping(pid, m.start, m.end, m.offset, m.path, m.build_id,
                                     m.first_ns, m.last_ns)
            if space.rows_from is None:
                space.rows_from = row

    def forget(self, pids: Iterable[int], writer) -> None:
        """Processes that ended, none of whose records is still to come: their mappings are
        stored (if they changed since the last save) and go from memory. A later process
        with one of their pids starts afresh; symbolizing reads the recording's rows."""
        for pid in pids:
            if pid in self._dirty:
                self._dirty.discard(pid)
                self._save_space(writer, pid)
            self._spaces.pop(pid, None)
            self._generation.pop(pid, None)
            self._ends.pop(pid, None)

    @classmethod
    def from_rows(cls, rows: Iterable[RecordedMapping]) -> ProcMaps:
        """Rebuild from the mappings a recording stored."""
        maps = cls()
        for row in rows:
            mapping = Mapping(row.start, row.end, row.offset, row.path or ANON, row.build_id,
                              row.first_ns)
            mapping.last_ns = row.last_ns
            maps._space(row.pid).add(mapping)
            maps._touch(row.pid)
        return maps

    @classmethod
    def from_maps_text(cls, pid: int, text: str, ts_ns: int = 0) -> ProcMaps:
        """From a saved /proc/PID/maps text (tests, fixtures); build-ids read from the paths."""
        maps = cls()
        for mapping, _key in parse_maps(text):
            mapping.first_ns = ts_ns
            elf = None if mapping.path.startswith("[") or not mapping.path else open_elf(
                mapping.path
            )
            mapping.build_id = elf.build_id if elf else None
            maps.add(pid, mapping)
        return maps


def is_file(mapping: Mapping) -> bool:
    """A mapping of a real file (not anonymous JIT code, [vdso] and the like)."""
    return bool(mapping.path) and not mapping.path.startswith("[") and os.path.isabs(mapping.path)
