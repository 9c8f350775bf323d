"""A stack in a few frames: the leaf-most frames of the program's own code, the library
function it called (the allocator entry: malloc, realloc...) and the syscall frame.

Which frames are the program's own: its Python frames when it has any (the interpreter's C
frames are not the program's), else those of its executable (and of any non-shared module),
except the process entry and the C++ or Rust standard library that templates put there. An
`inlined` module (perf's mark for inlined frames, resolved where the importer can) or a
bracketed one (`[unknown]`, `[vdso]`) is not the program's.
"""

from __future__ import annotations

import os
from typing import List, Sequence

from heaptrace.analysis.names import is_library_code
from heaptrace.analysis.stacks import NO_STACK, UNKNOWN_FRAME
from heaptrace.events import ENTRY_POINTS, Frame, is_python_name

OWN_FRAMES = 3  # how many of the program's own frames a compact stack names
# GCC's names for clones of a function: download_package.constprop.0 is download_package.
CLONE_KINDS = frozenset({"constprop", "isra", "part", "cold", "lto_priv", "llvm"})


def without_clone_suffix(name: str) -> str:
    """`name` without trailing `.constprop.0`, `.isra.0`, `.cold`... (any number of them),
    taken off part by part from the end: no regular expression to rescan long names."""
    parts = name.split(".")
    keep = len(parts)
    while keep > 1:
        if parts[keep - 1] in CLONE_KINDS:
            keep -= 1
        elif keep > 2 and parts[keep - 1].isdigit() and parts[keep - 2] in CLONE_KINDS:
            keep -= 2
        else:
            break
    return ".".join(parts[:keep])


def function_name(name: str) -> str:
    """The function alone: no DTrace "module`" prefix, no GCC clone suffix."""
    if not name:
        return UNKNOWN_FRAME
    return without_clone_suffix(name.rsplit("`", 1)[-1]) or name


def short_name(frame: Frame) -> str:
    return function_name(frame.name)


def is_own(frame: Frame) -> bool:
    """A frame of the program itself: not a shared library, not the process entry, not the
    standard library's templates."""
    module = os.path.basename(frame.module or "")
    if not module or ".so" in module or module.startswith("[") or module == "inlined":
        return False
    name = function_name(frame.name)
    return name not in ENTRY_POINTS and not is_library_code(name)


def own_positions(frames: Sequence[Frame]) -> List[int]:
    """Indexes (leaf first, as `frames`) of the program's own frames: its Python frames when
    it has any (the interpreter's C frames are not the program's), else is_own() frames."""
    python = [i for i, f in enumerate(frames) if is_python_name(f.name)]
    if python:
        return python
    return [i for i, f in enumerate(frames) if is_own(f)]


def compact_indices(frames: Sequence[Frame], own: int = OWN_FRAMES) -> List[int]:
    """Which frames (indices into the leaf-first `frames`) a compact stack shows, root
    first. A stack with no frame of the program's own shows its leaf-most frames."""
    mine = own_positions(frames)
    if not mine:
        return list(reversed(range(min(own, len(frames)))))
    picked = list(reversed(mine[:own]))
    below = mine[0]  # frames[:below] are library frames under the program's leaf-most one
    if below > 0:
        picked.append(below - 1)
    if below > 1:
        picked.append(0)
    return picked


def compact_names(frames: Sequence[Frame], own: int = OWN_FRAMES) -> List[str]:
    """The function names of compact_indices(), root first."""
    return [short_name(frames[i]) for i in compact_indices(frames, own)]


def compact_stack(frames: Sequence[Frame], own: int = OWN_FRAMES) -> str:
    """`main > download_package > buffer_append > realloc > mremap` (full names)."""
    if not frames:
        return NO_STACK
    return " > ".join(compact_names(frames, own))
