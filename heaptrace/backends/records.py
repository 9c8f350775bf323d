"""What every capture backend delivers: raw syscalls and process lifecycle changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Call:
    """One traced syscall as the BPF program saw it."""

    kind: str
    ts_ns: int
    pid: int
    tid: int
    args: tuple
    ret: int
    size: int
    ip: int
    sp: int
    fp: int
    lr: int
    stack_id: int
    stack: bytes


@dataclass(frozen=True)
class ProcessChange:
    """A traced process forked (`pid` is the child), exec'd or exited."""

    what: str  # "fork", "exec" or "exit"
    ts_ns: int
    pid: int
    ppid: int
    comm: str
    filename: str


Record = Union[Call, ProcessChange]
