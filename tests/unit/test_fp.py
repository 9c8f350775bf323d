"""The frame-pointer walker over a synthetic stack."""

from __future__ import annotations

import struct

from heaptrace.stacks.unwind.fp import fp_step, stack_reader, unwind_fp

SP = 0x7FFF0000


def stack_with_frames(frames):
    """A copied stack holding a chain of (saved rbp, return address) pairs; returns the bytes
    and the leaf's rbp."""
    words = [0] * 64
    slots = [8, 24, 40]
    for i, ((_, ra), slot) in enumerate(zip(frames, slots)):
        nxt = SP + slots[i + 1] * 8 if i + 1 < len(frames) else 0
        words[slot], words[slot + 1] = nxt, ra
    return struct.pack("<64Q", *words), SP + slots[0] * 8


def test_walks_the_chain_to_the_zero_frame():
    stack, bp = stack_with_frames([(0, 0x401111), (0, 0x402222), (0, 0x403333)])
    assert unwind_fp(0x400000, SP, bp, stack) == [0x400000, 0x401111, 0x402222, 0x403333]


def test_stops_when_rbp_leaves_the_copy():
    stack, bp = stack_with_frames([(0, 0x401111)])
    assert unwind_fp(0x400000, SP, SP + 4096, stack) == [0x400000]
    assert fp_step(SP, bp, stack_reader(stack[:bp - SP + 8], SP)) is None


def test_reader_is_bounded():
    read = stack_reader(b"\x01" * 16, SP)
    assert read(SP) == 0x0101010101010101
    assert read(SP + 8) is not None and read(SP + 9) is None and read(SP - 8) is None
