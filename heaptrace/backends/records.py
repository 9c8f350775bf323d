"""What every capture backend delivers: raw syscalls, their stacks, and process changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

STACK_WALKED = 1 << 63
STACK_COPIED = 1 << 62


@dataclass(frozen=True)
class Call:
    """One traced syscall. `stack_ref` names its user stack: a WalkedStack (STACK_WALKED bit),
    a StackCopy (STACK_COPIED bit) delivered before it, or 0 for none."""

    kind: str
    ts_ns: int
    pid: int
    tid: int
    args: tuple
    ret: int
    size: int
    ip: int
    stack_ref: int = 0
    stack_id: int = -1


@dataclass(frozen=True)
class WalkedStack:
    """A user stack the probe walked itself (leaf first), sent once per distinct stack."""

    ref: int
    pid: int
    ips: Tuple[int, ...]


@dataclass(frozen=True)
class StackCopy:
    """Registers and the top of the user stack (stack[0] is at sp), for unwinding here."""

    ref: int
    pid: int
    tid: int
    ip: int
    sp: int
    fp: int
    lr: int
    stack: bytes
    gen: int = 0  # exec generation of the address space, for rules learned from this copy


@dataclass(frozen=True)
class ProcessChange:
    """A traced process forked (`pid` is the child), exec'd or exited."""

    what: str  # "fork", "exec" or "exit"
    ts_ns: int
    pid: int
    ppid: int
    comm: str
    filename: str


Record = Union[Call, WalkedStack, StackCopy, ProcessChange]
