"""The unwinder on aarch64 stacks captured under qemu-user by gdb-multiarch at libc's brk and
mmap syscalls (tests/data/stacks-aarch64): gdb's frames exactly, whole down to _start or the
thread's clone; the return address in x30 at a leaf, the frame-record step where no CFI
covers the program, and no rules for the probe."""

from __future__ import annotations

import pytest

from heaptrace.backends.records import StackCopy
from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.symbols import Symbolizer
from heaptrace.stacks.unwind.arch import AARCH64, X86_64
from heaptrace.stacks.unwind.bpf_rules import rules_along, step_rule
from heaptrace.stacks.unwind.dwarf import ENTRY, NO_CFI, TRUNCATED, Unwinder
from heaptrace.stacks.unwind.live import LiveUnwinder
from tests.helpers.stackfixtures import Stop, aarch64_stops, all_stops

STOPS = aarch64_stops()
OWN = ("grow_heap", "level3", "level2", "level1", "main", "map_chain", "thread_work",
       "thread_main")


def walk(stop: Stop, **kw):
    return Unwinder(stop.procmaps(), **kw).walk(
        stop.pid, stop.ip, stop.sp, stop.bp, stop.stack, lr=stop.lr)


def names(stop: Stop):
    maps = stop.procmaps()
    return [f.name for f in Symbolizer(maps).stack(stop.pid, walk(stop).ips)]


@pytest.mark.parametrize("stop", STOPS, ids=lambda s: f"{s.program}-{s.tid - s.pid}-{s.sp:x}")
def test_same_frames_as_gdb_and_whole(stop):
    result = walk(stop)
    assert result.ips == stop.gdb_pcs
    assert result.stop == ENTRY


def test_architecture_from_the_mapped_files_or_given():
    aarch = STOPS[0]
    assert Unwinder(aarch.procmaps()).arch_of(aarch.pid) is AARCH64
    x86 = all_stops()[0]
    assert Unwinder(x86.procmaps()).arch_of(x86.pid) is X86_64
    assert walk(aarch, arch="aarch64").ips == aarch.gdb_pcs
    assert walk(aarch, arch="x86_64").ips != aarch.gdb_pcs


def test_fixtures_cover_threads_leaves_and_short_copies():
    assert {s.program for s in STOPS} == {"chain", "chain-fp"}
    assert any(s.tid != s.pid for s in STOPS)
    assert any(len(s.stack) < 16384 for s in STOPS)
    assert {s.syscall for s in STOPS} == {"brk", "mmap"}


def test_leaf_return_address_is_the_link_register():
    """libc's brk and mmap never push a frame: their caller is only known from x30."""
    for stop in STOPS:
        assert walk(stop).ips[1] == stop.lr
        without = Unwinder(stop.procmaps()).walk(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
        assert without.ips == [stop.ip] and without.stop == TRUNCATED


def test_main_thread_chain_named_like_gdb():
    stop = next(s for s in STOPS if s.program == "chain" and s.syscall == "brk")
    frames = names(stop)
    assert [f for f in frames if f in OWN] == ["grow_heap", "level3", "level2", "level1", "main"]
    assert frames[:3] == ["brk", "sbrk", "__default_morecore"]
    assert frames[-2:] == ["__libc_start_main", "_start"]


def test_every_frame_gdb_names_gets_that_name_or_an_alias_at_its_address():
    for stop in STOPS:
        maps = stop.procmaps()
        ours = Symbolizer(maps).stack(stop.pid, walk(stop).ips)
        for frame, gdb_name in zip(ours, stop.gdb_names):
            assert not frame.name.startswith("$")  # Arm mapping symbols are no names
            if gdb_name and frame.name != gdb_name:
                path = maps.find(stop.pid, frame.addr).path
                symbols = {n: a for a, _, n in open_elf(path).functions()}
                assert symbols[frame.name] == symbols[gdb_name]  # e.g. mmap and mmap64


def test_second_thread_ends_at_its_start_routine_and_clone():
    for stop in (s for s in STOPS if s.tid != s.pid):
        frames = names(stop)
        assert frames[-5:-2] == ["level1", "thread_work", "thread_main"]
        assert all(f.startswith("libc.so.6+0x") for f in frames[-2:])  # stripped libc


def test_program_without_cfi_goes_by_frame_records():
    stop = next(s for s in STOPS if s.program == "chain-fp" and s.syscall == "brk")
    unwinder = Unwinder(stop.procmaps())
    ips = unwinder.unwind(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack, lr=stop.lr)
    own = [ip for ip, name in zip(ips, stop.gdb_names) if name in OWN]
    assert len(own) == 5 and all(unwinder.rule_at(stop.pid, ip - 1) is NO_CFI for ip in own)
    assert ips == stop.gdb_pcs  # main's caller found again from the frame record


def test_copy_shorter_than_the_frames_stops_as_truncated():
    stop = next(s for s in STOPS if s.program == "chain" and s.syscall == "brk")
    full = walk(stop)
    short = Unwinder(stop.procmaps()).walk(stop.pid, stop.ip, stop.sp, stop.bp,
                                           stop.stack[:256], lr=stop.lr)
    assert short.stop == TRUNCATED
    assert 1 < len(short.ips) < len(full.ips)
    assert short.ips == full.ips[: len(short.ips)]


def test_signed_return_addresses_are_stripped():
    """Pointer authentication puts a signature in the top bits of saved return addresses."""
    stop = next(s for s in STOPS if s.program == "chain" and s.syscall == "brk")
    stack = bytearray(stop.stack)
    for ra in stop.gdb_pcs[2:]:
        word, signed = ra.to_bytes(8, "little"), (ra | 0x002A << 48).to_bytes(8, "little")
        stack = bytearray(bytes(stack).replace(word, signed))
    assert bytes(stack) != stop.stack
    result = Unwinder(stop.procmaps()).walk(stop.pid, stop.ip, stop.sp, stop.bp, bytes(stack),
                                            lr=stop.lr)
    assert result.ips == stop.gdb_pcs


def test_probe_gets_no_aarch64_rules():
    stop = next(s for s in STOPS if s.program == "chain-fp")
    unwinder = Unwinder(stop.procmaps())
    result = unwinder.walk(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack, lr=stop.lr)
    rules = [unwinder.rule_at(stop.pid, pc - 1 if i else pc) for i, pc in enumerate(result.ips)]
    assert any(step_rule(r) is not None for r in rules)  # x86_64's frame-pointer step
    assert all(step_rule(r, AARCH64) is None for r in rules)
    assert rules_along(unwinder, stop.pid, result) == []


def test_live_unwinder_passes_the_link_register():
    taught = []
    for stop in STOPS:
        live = LiveUnwinder(stop.procmaps(), lambda *args: taught.append(args))
        copy = StackCopy(1, stop.pid, stop.tid, stop.ip, stop.sp, stop.bp, stop.lr, stop.stack)
        assert live(copy) == stop.gdb_pcs
    assert taught == []
