"""What every capture backend delivers: raw syscalls, their stacks, and process changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Tuple, Union

from heaptrace.events import Rss

STACK_WALKED = 1 << 63
STACK_COPIED = 1 << 62
PY_STACK = 1 << 61


class Call(NamedTuple):  # a tuple, not a dataclass: hundreds of thousands a second
    """One traced syscall. Its user stack is the WalkedStack named by `stack_ref` (frames the
    probe walked, leaf first), followed by the frames unwound from the StackCopy named by
    `rest_ref` when the probe could not walk further; both are delivered before the call."""

    kind: str
    ts_ns: int
    pid: int
    tid: int
    args: tuple
    ret: int
    size: int
    ip: int
    stack_ref: int = 0
    rest_ref: int = 0
    stack_id: int = -1
    cls: int = 0  # MemClass code of what the call mapped, moved, committed or released; 0: none
    py_ref: int = 0  # the PyStack of the calling thread's Python frames, or 0


@dataclass(frozen=True)
class WalkedStack:
    """A user stack the probe walked itself (leaf first), sent once per distinct stack."""

    ref: int
    pid: int
    ips: Tuple[int, ...]


@dataclass(frozen=True)
class StackCopy:
    """Registers of one frame and the user stack above it (stack[0] is at sp), for unwinding
    here. `depth` 0: ip is the syscall's own; else ip is a return address (frame `depth`)."""

    ref: int
    pid: int
    tid: int
    ip: int
    sp: int
    fp: int
    lr: int
    stack: bytes
    gen: int = 0  # exec generation of the address space, for rules learned from this copy
    depth: int = 0


@dataclass(frozen=True)
class MappedFile:
    """A file mapped with PROT_EXEC by a traced process (a library, a dlopen)."""

    pid: int
    ts_ns: int
    addr: int
    length: int
    offset: int
    path: str


@dataclass(frozen=True)
class ProcessChange:
    """A traced process forked (`pid` is the child), exec'd or exited."""

    what: str  # "fork", "exec" or "exit"
    ts_ns: int
    pid: int
    ppid: int
    comm: str
    filename: str


@dataclass(frozen=True)
class RssSample:
    """The RSS of one traced address space at one moment, from the kernel's own counters, and
    its peak so far. `why`: "start" (followed from here: its counters after a fork, an exec or
    at attach), "change" (moved by a step), "now" (read at a tick or at the end) or "end"
    (emptied: exit, or the image an exec replaced)."""

    pid: int
    space: int  # the kernel's id of the address space (mm_id)
    why: str
    ts_ns: int
    rss: Rss
    peak: int
    peak_ts_ns: int
    peak_rss: Rss


class ResidentSum(NamedTuple):
    """Bytes that became resident in process `pid` (image `gen`), in one time slot, one class
    and one context, summed by the probe: the user stack (stack_ref/rest_ref, as in Call) of
    the thread that faulted or was in syscall `nr`, or the name `comm` of another task."""

    pid: int
    gen: int
    ts_ns: int  # the first increment
    member: str  # "anon", "file" or "shmem"
    cause: int  # CAUSE_* of probes/heaptrace.h (events.CAUSES)
    nr: int
    stack_ref: int
    rest_ref: int
    comm: str
    bytes: int
    increments: int
    addr: int
    tid: int
    stack_id: int = -1  # the kernel's frame-pointer stack (--unwind fp)


@dataclass(frozen=True)
class PyStack:
    """The Python frames of a calling thread, leaf first, sent once per distinct chain: each
    (code object address, instruction pointer or f_lasti, first frame of its C eval call,
    the frame's globals). A code address of 0 stands for an eval call that runs no Python
    frame yet. `cut`: the chain goes on beyond these frames."""

    ref: int
    pid: int
    frames: Tuple[Tuple[int, int, bool, int], ...]
    cut: bool = False


@dataclass(frozen=True)
class PyCode:
    """Raw copies of a code object seen for the first time in a process, and of its names,
    file name and line table, for user space to decode with the interpreter's layout."""

    pid: int
    ts_ns: int
    addr: int
    scope: int  # the globals of the frame it ran in: with addr, what identifies it
    gen: int
    head: bytes
    name: bytes
    qualname: bytes
    filename: bytes
    lines: bytes


Record = Union[Call, WalkedStack, StackCopy, MappedFile, ProcessChange, RssSample, ResidentSum,
               PyStack, PyCode]
