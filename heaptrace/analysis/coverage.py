"""How good a recording's stacks are: the share of bytes whose stack is whole (reaches a
process or thread entry point) and the share of frames without a symbol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from heaptrace.analysis.eventsums import EventSums, stored_sums
from heaptrace.events import ENTRY_POINTS, SYSCALL_KINDS, TRUNCATED, Frame
from heaptrace.recording import Recording
from heaptrace.stacks.symbols import is_symbolized

__all__ = ["ENTRY_POINTS", "StackCoverage", "coverage", "is_whole"]


@dataclass(frozen=True)
class StackCoverage:
    bytes_total: int
    bytes_whole: int
    events_total: int
    events_with_stack: int
    frames: int
    frames_unsymbolized: int
    stacks_cut: int = 0  # distinct stacks with a [truncated] frame (a cut native or Python chain)

    @property
    def whole_share(self) -> float:
        return self.bytes_whole / self.bytes_total if self.bytes_total else 1.0

    @property
    def unsymbolized_share(self) -> float:
        return self.frames_unsymbolized / self.frames if self.frames else 0.0


def is_whole(stack: Tuple[Frame, ...]) -> bool:
    """The stack reaches an entry point: its outermost frame, or the one under it when the
    outermost names the process (the root frame of `perf script` and folded imports). An
    imported DTrace frame carries its module (`pkgin`_start`)."""
    return any(f.name.rsplit("`", 1)[-1] in ENTRY_POINTS for f in stack[-2:])


def coverage(rec: Recording, sums: Optional[EventSums] = None) -> StackCoverage:
    """Bytes are the |size| of every syscall event (resident growth, pages rather than calls,
    would outweigh them); frames are counted once per distinct stack. The stacks are read
    a batch at a time (those the reader holds already, if it does). The bytes per stack come
    from the events' sums (`sums`, or those the recording stores) if there are any."""
    sums = sums or stored_sums(rec)
    per_stack = (sums.bytes_by_stack(SYSCALL_KINDS) if sums is not None
                 else rec.bytes_by_stack(SYSCALL_KINDS))
    events = sum(n for n, _ in per_stack.values())
    total = sum(b for _, b in per_stack.values())
    with_stack = events - per_stack.get(None, (0, 0))[0]
    whole = frames = unsymbolized = cut = 0
    held = rec.loaded_stacks()
    for batch in [held] if held is not None else rec.stack_batches():
        for row in batch:
            stack = row.shown()
            if row.id in per_stack and is_whole(stack):
                whole += per_stack[row.id][1]
            frames += len(stack)
            unsymbolized += sum(not is_symbolized(f) for f in stack)
            cut += any(f.name == TRUNCATED for f in stack)
    return StackCoverage(total, whole, events, with_stack, frames, unsymbolized, cut)
