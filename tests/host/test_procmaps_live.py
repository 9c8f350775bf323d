"""Mappings of this very process, read from /proc: build-ids of the host's libc, and the
unwinder re-reading /proc/PID/maps for a pc it has not seen mapped."""

from __future__ import annotations

import os

from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.procmaps import ProcMaps, parse_maps
from heaptrace.stacks.unwind.dwarf import Unwinder


def test_snapshot_of_a_live_process_has_build_ids():
    maps = ProcMaps()
    assert maps.snapshot(os.getpid(), 1)
    libc = next(m for m in maps.mappings(os.getpid()) if "libc.so" in m.path)
    assert libc.build_id == open_elf(libc.path).build_id
    assert maps.find(os.getpid(), libc.start + 16) is libc


def test_unwinder_refreshes_maps_for_an_unknown_pc():
    maps = ProcMaps()  # nothing known about this process yet
    with open("/proc/self/maps") as fh:
        libc = next(m for m, _ in parse_maps(fh.read()) if "libc.so" in m.path)
    stack = bytes(64)
    cold = Unwinder(maps).walk(os.getpid(), libc.start + 0x100, 0x1000, 0, stack)
    assert cold.stop == "bad-frame" and maps.mappings(os.getpid()) == []
    Unwinder(maps, refresh=True).walk(os.getpid(), libc.start + 0x100, 0x1000, 0, stack)
    assert maps.find(os.getpid(), libc.start + 0x100).path == libc.path
