"""The CFI reader on hand-built .eh_frame sections: the rules it derives, and malformed
tables, which must give CfiError (when indexing) or no rule (at an address), never another
exception: the reader runs inside the probe's callback. The comparison with readelf on
real files is in the host tier (tests/host/test_cfi_readelf.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.stacks.unwind.cfi import (
    OFFSET,
    RA,
    CfiError,
    CfiTable,
    Rule,
    read_encoded,
    sleb,
    uleb,
)
from tests.helpers.ehframe import FakeElf, cie, eh_frame, eh_frame_hdr, fde

EH, HDR = 0x2000, 0x1F00  # link-time addresses of .eh_frame and .eh_frame_hdr
F, G = 0x1100, 0x1200  # two functions of 0x40 bytes
RSP, RBP = 7, 6
# push rbp at F+1: CFA = rsp + 16, rbp saved at CFA - 16
PROLOGUE = bytes([0x41, 0x0E, 16, 0x86, 2])
ENTRY = Rule(RSP, 8, None, ((RA, OFFSET, -8),))
AFTER_PUSH = Rule(RSP, 16, None, ((RBP, OFFSET, -16), (RA, OFFSET, -8)))


def table(instructions_f=PROLOGUE, instructions_g=b"", hdr=True, mutate=None):
    data, offsets = eh_frame([(F, 0x40, instructions_f), (G, 0x40, instructions_g)], EH)
    blobs = {".eh_frame": data}
    if hdr:
        blobs[".eh_frame_hdr"] = eh_frame_hdr([(F, EH + offsets[0]), (G, EH + offsets[1])],
                                              HDR, EH)
    if mutate:
        mutate(blobs)
    return CfiTable(FakeElf(blobs, {".eh_frame": EH, ".eh_frame_hdr": HDR}))


def test_leb128():
    assert uleb(bytes([0xE5, 0x8E, 0x26]), 0) == (624485, 3)
    assert sleb(bytes([0xC0, 0xBB, 0x78]), 0) == (-123456, 3)
    assert sleb(bytes([0x78]), 0) == (-8, 1)


def test_pointer_encodings():
    data = (-16 & 0xFFFFFFFF).to_bytes(4, "little")
    assert read_encoded(data, 0, 0x1B, 0x1000) == (0x1000 - 16, 4)  # pcrel sdata4
    assert read_encoded(data, 0, 0x3B, 0x2000) == (0x2000 - 16, 4)  # datarel sdata4
    assert read_encoded(b"\x10\x00", 0, 0x02, 0) == (16, 2)  # udata2


@pytest.mark.parametrize("hdr", [True, False], ids=["eh_frame_hdr", "scan"])
def test_rules_of_a_hand_built_table(hdr):
    cfi = table(hdr=hdr)
    assert cfi.rule(F) == ENTRY
    assert cfi.rule(F + 1) == cfi.rule(F + 0x3F) == AFTER_PUSH
    assert cfi.rule(G) == ENTRY
    assert cfi.rule(F - 1) is None and cfi.rule(G + 0x40) is None


def test_remember_and_restore_state():
    # F+1: remember; CFA = rsp + 32. F+2: restore: back to the entry rule.
    cfi = table(bytes([0x0A, 0x41, 0x0E, 32, 0x41, 0x0B]))
    assert cfi.rule(F + 1) == Rule(RSP, 32, None, ((RA, OFFSET, -8),))
    assert cfi.rule(F + 2) == ENTRY


# Each FDE ends at a 4-byte boundary, padded with nops: three bytes of instructions end it.
@pytest.mark.parametrize(("instructions", "why"), [
    (bytes([0x00, 0x41, 0x0E]), "def_cfa_offset without its operand"),
    (bytes([0x41, 0x0E, 0x80]), "an operand whose LEB128 never ends"),
    (bytes([0x41, 0x0B]), "restore_state with nothing remembered"),
    (bytes([0x41, 0x3F]), "an opcode DWARF does not have"),
    (bytes([0x41, 0x01, 0x10]), "set_loc with one byte of its address"),
])
def test_malformed_instructions_give_no_rule_there(instructions, why):
    cfi = table(instructions)
    assert cfi.rule(F + 1) is None
    assert cfi.rule(G) == ENTRY  # the other function is unaffected


def _set(name, pos, raw):
    def mutate(blobs):
        data = bytearray(blobs[name])
        data[pos:pos + len(raw)] = raw
        blobs[name] = bytes(data)
    return mutate


FIRST_FDE = len(cie())


@pytest.mark.parametrize(("hdr", "mutate", "why"), [
    (False, _set(".eh_frame", FIRST_FDE + 4, b"\xff\xff\xff\x7f"),
     "an FDE whose CIE pointer leaves the section"),
    (False, _set(".eh_frame", 0, b"\xff\xff\xff\xff"), "64-bit DWARF"),
    (False, _set(".eh_frame", 9, b"\xff\xfe"), "an augmentation that is not text"),
    (False, lambda blobs: blobs.update({".eh_frame": cie()[:6]}),
     "a section that ends inside its first entry's header"),
    (True, _set(".eh_frame_hdr", 8, b"\xff\xff\x00\x00"),
     "a binary-search table that says it is longer than it is"),
])
def test_malformed_tables_raise_cfi_error(hdr, mutate, why):
    with pytest.raises(CfiError):
        table(hdr=hdr, mutate=mutate)


def test_a_binary_search_entry_pointing_outside_gives_no_rule():
    bad_fde = _set(".eh_frame_hdr", 12 + 4, (0x7FFF0000).to_bytes(4, "little"))
    cfi = table(mutate=bad_fde)  # F's entry in the table points far past .eh_frame
    assert cfi.rule(F + 1) is None
    assert cfi.rule(G) == ENTRY


def test_an_fde_whose_cie_is_garbage_gives_no_rule():
    data, offsets = eh_frame([(F, 0x40, PROLOGUE)], EH)
    # a second "CIE" of 8 bytes that ends before its augmentation string does
    broken = bytes(data[:-4]) + (4).to_bytes(4, "little") + b"\0\0\0\0"
    bad = fde(len(broken), len(broken) - 8, G, 0x40, b"", EH)
    hdr = eh_frame_hdr([(F, EH + offsets[0]), (G, EH + len(broken))], HDR, EH)
    cfi = CfiTable(FakeElf({".eh_frame": broken + bad + b"\0" * 4, ".eh_frame_hdr": hdr},
                           {".eh_frame": EH, ".eh_frame_hdr": HDR}))
    assert cfi.rule(G) is None
    assert cfi.rule(F + 1) == AFTER_PUSH


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(st.tuples(st.integers(0, 200), st.binary(min_size=1, max_size=4)),
                               min_size=1, max_size=4))
def test_any_corruption_gives_cfi_error_or_rules(hdr, writes):
    def mutate(blobs):
        for pos, raw in writes:
            name = ".eh_frame_hdr" if hdr and pos % 2 else ".eh_frame"
            data = bytearray(blobs[name])
            at = pos % len(data)
            data[at:at + len(raw)] = raw
            blobs[name] = bytes(data)
    try:
        cfi = table(hdr=hdr, mutate=mutate)
    except CfiError:
        return
    for vaddr in (F, F + 1, F + 0x20, G, G + 0x3F, 0, 0x7FFFFFFF):
        assert cfi.rule(vaddr) is None or isinstance(cfi.rule(vaddr), Rule)
