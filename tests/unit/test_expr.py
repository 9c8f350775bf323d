"""The DWARF expression evaluator: the expressions real CFI holds, and malformed ones, which
must end in ExprError (the walk stops there) and never hang or raise anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.stacks.unwind.expr import MASK, MAX_OPERATIONS, ExprError, evaluate

RSP, RBP, RIP = 7, 6, 16
NO_MEMORY = {}.get


def regs(**values):
    out = [None] * 17
    for name, value in values.items():
        out[{"rsp": RSP, "rbp": RBP, "rip": RIP}[name]] = value
    return out


def test_plt_cfa_expression():
    # The expression binutils writes for .plt: rsp + 8 + ((rip & 15) >= 11) * 8.
    code = bytes([0x77, 0x08, 0x80, 0x00, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])
    assert evaluate(code, regs(rsp=0x1000, rip=0x4010), NO_MEMORY) == 0x1008
    assert evaluate(code, regs(rsp=0x1000, rip=0x401B), NO_MEMORY) == 0x1010


def test_expression_deref_reads_memory():
    # breg6 (rbp) -8; deref: the CFA of a function that realigned its stack
    code = bytes([0x76, 0x78, 0x06])
    assert evaluate(code, regs(rbp=0x2000), {0x1FF8: 0x3000}.get) == 0x3000


def test_forward_skip_and_branch():
    # lit1; skip +1 (over lit5); lit2; plus -> 3.  lit0; bra +1 (not taken); lit7 -> 7
    assert evaluate(bytes([0x31, 0x2F, 1, 0, 0x35, 0x32, 0x22]), [], NO_MEMORY) == 3
    assert evaluate(bytes([0x30, 0x28, 1, 0, 0x96, 0x37]), [], NO_MEMORY) == 7


def test_comparisons_are_signed_and_values_64_bits():
    # consts -1; lit0; lt -> 1 (signed); consts -1 alone is 2**64 - 1
    assert evaluate(bytes([0x11, 0x7F, 0x30, 0x2D]), [], NO_MEMORY) == 1
    assert evaluate(bytes([0x11, 0x7F]), [], NO_MEMORY) == MASK
    # lit1; constu 200; shl -> 0 (a shift past 64 bits), not a 200-bit number
    assert evaluate(bytes([0x31, 0x10, 0xC8, 0x01, 0x24]), [], NO_MEMORY) == 0
    # lit1; consts -1; shl: a negative count is a huge unsigned one, also 0
    assert evaluate(bytes([0x31, 0x11, 0x7F, 0x24]), [], NO_MEMORY) == 0


@pytest.mark.parametrize(("code", "why"), [
    (bytes([0x2F, 0xFD, 0xFF]), "skip -3: back onto itself, forever"),
    (bytes([0x31, 0x28, 0xFC, 0xFF]), "lit1; bra -4: a loop whose condition never changes"),
    (bytes([0x31, 0x12, 0x2F, 0xFC, 0xFF]), "dup in a loop: the stack grows forever"),
    (bytes([0x2F, 0xF0, 0xFF]), "skip before the first byte"),
    (bytes([0x2F, 0x10, 0x00]), "skip past the end"),
    (bytes([0x06]), "deref of an empty stack"),
    (bytes([0x31, 0x22]), "plus with one value"),
    (bytes([0x16]), "swap of an empty stack"),
    (bytes([0x14]), "over of an empty stack"),
    (bytes([0x0E, 1, 2]), "const8u with two of its eight bytes"),
    (bytes([0x2F, 0x01]), "skip with half its operand"),
    (bytes([0x10, 0x80]), "constu whose LEB128 never ends"),
    (bytes([0x77]), "breg7 without its offset"),
    (bytes([0x90, 0x01]), "regx: an operation the evaluator does not know"),
    (bytes([0x7F, 0x00]), "breg15 of an unknown register"),
    (b"", "nothing at all"),
])
def test_malformed_expressions_raise_expr_error(code, why):
    with pytest.raises(ExprError):
        evaluate(code, regs(rsp=0x1000), NO_MEMORY)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=24), st.none() | st.integers(0, MASK))
def test_any_bytes_give_a_64_bit_value_or_expr_error(code, push):
    memory = {0x1000: 0x2000}.get
    try:
        value = evaluate(code, regs(rsp=0x1000, rbp=0x1008, rip=0x4000), memory, push=push)
    except ExprError:
        return
    assert 0 <= value <= MASK


def countdown(n: int) -> bytes:
    """constu n; then lit1, minus, dup, bra back while nonzero: 1 + 4n operations."""
    return bytes([0x10, n & 0x7F | 0x80, n >> 7, 0x31, 0x1C, 0x12, 0x28, 0xFA, 0xFF])


def test_a_loop_that_ends_runs_up_to_the_operation_limit():
    n = (MAX_OPERATIONS - 1) // 4
    assert evaluate(countdown(n), [], NO_MEMORY) == 0
    with pytest.raises(ExprError, match="a loop"):
        evaluate(countdown(n + 1), [], NO_MEMORY)
