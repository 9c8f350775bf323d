"""A DWARF expression evaluator, for the CFI expressions found in practice: PLT entries
(CFA from rsp and the low bits of rip), realigned stacks (CFA read through rbp) and signal
trampolines (every register read from the ucontext on the stack)."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

from heaptrace.stacks.unwind.cfi import sleb, uleb

MASK = 0xFFFFFFFFFFFFFFFF
Reader = Callable[[int], Optional[int]]
# CFI expressions are straight-line code of a few operations; a branch may loop, so the
# evaluation stops after this many (it runs in the probe's callback: it must not hang).
MAX_OPERATIONS = 1000


class ExprError(Exception):
    """Unsupported operation, unknown register, unreadable memory or a malformed
    expression (truncated, popping an empty stack, branching outside itself, looping)."""


def _signed(value: int) -> int:
    """A stack value (64 bits) as the signed number DWARF compares."""
    return value - (1 << 64) if value >> 63 else value


# Every value on the stack is kept as an unsigned 64-bit number.
_BINARY = {
    0x1A: lambda a, b: a & b,
    0x1B: lambda a, b: a // b if b else 0,
    0x1C: lambda a, b: a - b,
    0x1D: lambda a, b: a % b if b else 0,
    0x1E: lambda a, b: a * b,
    0x21: lambda a, b: a | b,
    0x22: lambda a, b: a + b,
    0x24: lambda a, b: a << b if b < 64 else 0,  # masked after: never a huge integer
    0x25: lambda a, b: a >> b,
    0x27: lambda a, b: a ^ b,
    0x29: lambda a, b: int(a == b),
    0x2A: lambda a, b: int(_signed(a) >= _signed(b)),
    0x2B: lambda a, b: int(_signed(a) > _signed(b)),
    0x2C: lambda a, b: int(_signed(a) <= _signed(b)),
    0x2D: lambda a, b: int(_signed(a) < _signed(b)),
    0x2E: lambda a, b: int(a != b),
}
_FIXED = {0x08: (1, False), 0x09: (1, True), 0x0A: (2, False), 0x0B: (2, True),
          0x0C: (4, False), 0x0D: (4, True), 0x0E: (8, False), 0x0F: (8, True)}


def evaluate(
    code: bytes, regs: Sequence[Optional[int]], read: Reader, push: Optional[int] = None
) -> int:
    """The value left on top of the stack (`push`, e.g. the CFA, starts the stack)."""
    stack: List[int] = [] if push is None else [push & MASK]
    pos = 0
    for _ in range(MAX_OPERATIONS):
        if pos == len(code):
            break
        try:
            pos = _step(code[pos], code, pos + 1, stack, regs, read)
        except IndexError:  # an operand past the end, or an operation on too short a stack
            raise ExprError("truncated expression or stack underflow") from None
        if not 0 <= pos <= len(code):
            raise ExprError(f"branch to {pos}, outside the {len(code)}-byte expression")
    else:
        raise ExprError(f"more than {MAX_OPERATIONS} operations: a loop")
    if not stack:
        raise ExprError("empty expression")
    return stack[-1] & MASK


def _register(regs: Sequence[Optional[int]], reg: int) -> int:
    value = regs[reg] if reg < len(regs) else None
    if value is None:
        raise ExprError(f"register {reg} unknown")
    return value


def _step(  # noqa: C901 - one opcode table
    op: int, code: bytes, pos: int, stack: List[int], regs: Sequence[Optional[int]], read: Reader
) -> int:
    if 0x30 <= op <= 0x4F:  # lit0..lit31
        stack.append(op - 0x30)
    elif 0x70 <= op <= 0x8F:  # breg0..breg31
        off, pos = sleb(code, pos)
        stack.append((_register(regs, op - 0x70) + off) & MASK)
    elif op == 0x92:  # bregx
        reg, pos = uleb(code, pos)
        off, pos = sleb(code, pos)
        stack.append((_register(regs, reg) + off) & MASK)
    elif op in _BINARY:
        b, a = stack.pop(), stack.pop()
        stack.append(_BINARY[op](a, b) & MASK)
    elif op in _FIXED:
        size, signed = _FIXED[op]
        stack.append(_operand(code, pos, size, signed) & MASK)
        pos += size
    elif op == 0x10:  # constu
        value, pos = uleb(code, pos)
        stack.append(value & MASK)
    elif op == 0x11:  # consts
        value, pos = sleb(code, pos)
        stack.append(value & MASK)
    elif op == 0x23:  # plus_uconst
        value, pos = uleb(code, pos)
        stack.append((stack.pop() + value) & MASK)
    elif op == 0x06:  # deref
        word = read(stack.pop())
        if word is None:
            raise ExprError("memory outside the copied stack")
        stack.append(word)
    elif op == 0x12:  # dup
        stack.append(stack[-1])
    elif op == 0x13:  # drop
        stack.pop()
    elif op == 0x14:  # over
        stack.append(stack[-2])
    elif op == 0x16:  # swap
        stack[-1], stack[-2] = stack[-2], stack[-1]
    elif op == 0x1F:  # neg
        stack.append(-stack.pop() & MASK)
    elif op == 0x20:  # not
        stack.append(~stack.pop() & MASK)
    elif op == 0x2F:  # skip
        pos += _operand(code, pos, 2, True) + 2
    elif op == 0x28:  # bra
        delta = _operand(code, pos, 2, True)
        pos += 2 + (delta if stack.pop() else 0)
    elif op != 0x96:  # nop
        raise ExprError(f"unsupported DWARF operation {op:#x}")
    return pos


def _operand(code: bytes, pos: int, size: int, signed: bool) -> int:
    if pos + size > len(code):
        raise IndexError(pos + size)
    return int.from_bytes(code[pos:pos + size], "little", signed=signed)
