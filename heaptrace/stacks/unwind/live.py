"""Unwinding while tracing: stack copies from the probe become addresses, and the rules met on
the way are taught back to the probe so that it walks those call paths itself next time."""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Set, Tuple

from heaptrace.backends.records import StackCopy
from heaptrace.stacks.procmaps import ProcMaps
from heaptrace.stacks.procmem import process_reader
from heaptrace.stacks.unwind.bpf_rules import StepRule, rules_along
from heaptrace.stacks.unwind.dwarf import Unwinder

Teach = Callable[[int, int, Sequence[Tuple[int, StepRule]]], None]  # (pid, gen, rules)


class LiveUnwinder:
    """Callable on each StackCopy; counts how many copies unwound to an entry point."""

    def __init__(self, maps: ProcMaps, teach: Teach) -> None:
        self.unwinder = Unwinder(maps, refresh=True, code=process_reader)
        self.teach = teach
        self.copies = 0
        self.complete = 0
        self._taught: Dict[int, Set[Tuple[int, int]]] = {}  # pid -> (gen, pc) taught

    def __call__(self, copy: StackCopy) -> List[int]:
        caller = copy.depth > 0
        lr = None if caller else copy.lr  # the probe's lr is the syscall frame's (aarch64)
        walk = self.unwinder.walk(copy.pid, copy.ip, copy.sp, copy.fp, copy.stack, caller, lr)
        self.copies += 1
        self.complete += walk.complete
        taught = self._taught.setdefault(copy.pid, set())
        new = [(pc, rule) for pc, rule in rules_along(self.unwinder, copy.pid, walk, caller)
               if (copy.gen, pc) not in taught]
        if new:
            taught.update((copy.gen, pc) for pc, _ in new)
            self.teach(copy.pid, copy.gen, new)
        return walk.ips

    def forget(self, pid: int) -> None:
        """A process ended: what was kept for it goes (a rule taught again to a later process
        with its pid is only written once more)."""
        self._taught.pop(pid, None)
        self.unwinder.forget(pid)
