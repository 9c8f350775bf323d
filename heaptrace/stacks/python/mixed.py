"""Mixed stacks: each C call of the interpreter's evaluation loop in a native stack stands for
the Python frames it ran, so the Python frames go there, named `qualname (file.py:line)`,
and native extension and allocator frames stay where they are.

    ...;main (radio.py:93);broadcast (radio.py:75);receive_audio (radio.py:68);bytes_repeat;...
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from heaptrace.events import TRUNCATED, Frame, is_python_name
from heaptrace.stacks.python.linetable import line_of

EVAL_FRAME = "_PyEval_EvalFrameDefault"  # also its compiler-split parts (.cold)


@dataclass(frozen=True)
class CodeRow:
    """A code object as the recording keeps it (table pycode)."""

    first_ns: int
    name: str
    qualname: str
    filename: str
    firstlineno: int
    first_traceable: int
    lines_format: str
    lines: bytes


class CodeNames:
    """The code objects of a recording by (pid, address, globals); an address reused by
    another code object of the same module later is told apart by when each was first
    seen."""

    def __init__(self, rows: Iterable[Tuple[int, int, int, CodeRow]]) -> None:
        self._rows: Dict[Tuple[int, int, int], List[CodeRow]] = {}
        for pid, addr, scope, row in rows:
            self._rows.setdefault((pid, addr, scope), []).append(row)
        for versions in self._rows.values():
            versions.sort(key=lambda r: r.first_ns)

    def __bool__(self) -> bool:
        return bool(self._rows)

    def get(self, pid: int, addr: int, scope: int, ts_ns: Optional[int]) -> Optional[CodeRow]:
        versions = self._rows.get((pid, addr, scope))
        if not versions:
            return None
        if ts_ns is None:
            return versions[-1]
        i = bisect.bisect_right([r.first_ns for r in versions], ts_ns) - 1
        return versions[max(i, 0)]


def is_python(frame: Frame) -> bool:
    return is_python_name(frame.name)


def is_eval(frame: Frame) -> bool:
    return frame.name.startswith(EVAL_FRAME)


@lru_cache(maxsize=1 << 16)  # a hot line runs in many stacks: its line table read once
def python_frame(row: CodeRow, offset: int) -> Optional[Frame]:
    """The frame of a code object running the instruction at byte `offset`; None for a frame
    not started yet (before its first traceable instruction: tracebacks leave it out)."""
    if offset < row.first_traceable:
        return None
    line = line_of(row.lines, row.lines_format, row.firstlineno, offset)
    where = f"{os.path.basename(row.filename)}:{'?' if line is None else line}"
    return Frame(f"{row.qualname} ({where})", row.filename)


def eval_groups(frames: Sequence[Tuple[int, int, bool, int]], codes: CodeNames, pid: int,
                ts_ns: Optional[int]) -> List[List[Frame]]:
    """The Python frames of a chain (leaf first) split by C eval call, leaf-most call first:
    a call's frames end with the one it was entered with."""
    groups: List[List[Frame]] = []
    current: List[Frame] = []
    for addr, offset, entry, scope in frames:
        if addr:
            row = codes.get(pid, addr, scope, ts_ns)
            frame = (python_frame(row, offset) if row is not None
                     else Frame(f"<code {addr:#x}> (?:?)", None))
            if frame is not None:
                current.append(frame)
        if entry:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def merge(native: Sequence[Frame], groups: Sequence[List[Frame]],
          cut: bool = False) -> List[Frame]:
    """The native stack (leaf first) with the i-th evaluation frame from the leaf replaced by
    the i-th group of Python frames (an empty group keeps the native frame). Groups left over
    (a native stack cut short, or an evaluation loop without symbols) go after the last one
    placed, so the Python frames stay in order. `cut`: the Python chain went on beyond its
    groups; a [truncated] frame follows the outermost one."""
    out: List[Frame] = []
    g, after = 0, None
    for frame in native:
        if g < len(groups) and is_eval(frame):
            out.extend(groups[g] or [frame])
            g += 1
            after = len(out)
        else:
            out.append(frame)
    leftover = [f for group in groups[g:] for f in group]
    if cut:
        leftover.append(Frame(TRUNCATED))
    if leftover:
        at = len(out) if after is None else after
        out[at:at] = leftover
    return out
