"""What /proc says about a running process (alive, kernel thread, start time, command line),
and the checks before `run -p` attaches to one: a pid that names no user process is refused
with the reason, and a pid reused by another process during start-up is caught by its start
time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

from heaptrace.errors import UsageError

PF_KTHREAD = 0x00200000  # include/linux/sched.h


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat heaptrace uses."""

    comm: str
    state: str
    ppid: int
    flags: int
    start_ticks: int  # since boot: a pid and its start time name one process

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")  # a zombie has finished

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)


def proc_stat(pid: int, proc_root: str = "/proc") -> Optional[ProcStat]:
    """/proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            raw = f.read()
        head, tail = raw.rsplit(b")", 1)
        fields = tail.split()
        comm = head.split(b"(", 1)[1].decode(errors="replace")
        return ProcStat(comm, fields[0].decode(), int(fields[1]), int(fields[6]),
                        int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """True while pid runs (a zombie has finished)."""
    stat = proc_stat(pid)
    return stat is not None and stat.alive


def start_ticks(pid: int) -> Optional[int]:
    stat = proc_stat(pid)
    return stat.start_ticks if stat is not None and stat.alive else None


@dataclass(frozen=True)
class AttachTarget:
    """A running user process `run -p` may attach to, as it was when checked."""

    pid: int
    comm: str
    command: List[str]
    start_ticks: int

    def still_the_same(self) -> bool:
        """False once the process ended, even if its pid now names another one."""
        return start_ticks(self.pid) == self.start_ticks


def attach_target(pid: int) -> AttachTarget:
    """The process `pid`, or a UsageError saying why it cannot be traced."""
    if pid == 0:
        raise UsageError("PID 0 is the kernel's idle task, not a process")
    if pid < 0:
        raise UsageError(f"a PID is a positive number, not {pid}")
    if pid == os.getpid():
        raise UsageError(f"PID {pid} is heaptrace itself")
    stat = proc_stat(pid)
    if stat is None or not stat.alive:
        raise UsageError(f"no running process with pid {pid}")
    if stat.kernel_thread:
        raise UsageError(f"PID {pid} ({stat.comm}) is a kernel thread: it makes no memory "
                         "syscalls of its own to trace")
    command = _command_line(pid) or [stat.comm]  # a process may have cleared its argv
    if start_ticks(pid) != stat.start_ticks:
        raise UsageError(f"no running process with pid {pid}")
    return AttachTarget(pid, stat.comm, command, stat.start_ticks)


def _command_line(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.rstrip(b"\0").split(b"\0")] if raw else []
