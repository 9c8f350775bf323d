"""Per-PC unwinding rules in the simple form the BPF program can apply by itself.

User space unwinds the first copy of a stack with the full CFI machinery; the rules it met on
the way, when they only say "CFA = sp or fp + k, return address at CFA-8, fp saved at CFA+m
(or unchanged)", are handed to the probe. From then on the probe walks that call path itself
and sends only the addresses, which is what keeps stacks whole at high event rates.

x86_64 only: the probe's step reads the return address at CFA-8. On aarch64 it sits in x30
at a leaf and wherever the CFI says above it, so the probe walks nothing there and every
aarch64 stack is unwound here from its copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from heaptrace.stacks.unwind.arch import X86_64, Arch
from heaptrace.stacks.unwind.cfi import OFFSET, RA, UNDEFINED, Rule
from heaptrace.stacks.unwind.dwarf import AT_ENTRY, NO_CFI, RBP, RSP, Unwinder, Walk

CFA_SP, CFA_FP = 0, 1


@dataclass(frozen=True)
class StepRule:
    """CFA = (sp if cfa_reg == CFA_SP else fp) + cfa_off; return address at CFA - 8; the
    caller's fp at CFA + fp_off when fp_saved; `end`: the outermost frame."""

    cfa_reg: int = CFA_SP
    cfa_off: int = 0
    fp_saved: bool = False
    fp_off: int = 0
    end: bool = False


OUTERMOST = StepRule(end=True)
# Where no CFI covers the pc, the unwinder takes a frame-pointer step: the same in BPF.
FRAME_POINTER = StepRule(CFA_FP, 16, True, -16)


def step_rule(rule: Union[Rule, str], arch: Arch = X86_64) -> Optional[StepRule]:
    """The BPF form of a rule, or None when only the full unwinder can apply it (always
    on aarch64)."""
    if arch is not X86_64:
        return None
    if rule is AT_ENTRY:
        return OUTERMOST
    if rule is NO_CFI:
        return FRAME_POINTER
    if not isinstance(rule, Rule) or rule.signal or rule.cfa_expr is not None:
        return None
    if rule.cfa_reg not in (RSP, RBP):
        return None
    saved = {reg: (kind, arg) for reg, kind, arg in rule.saved}
    if saved.get(RA, (None,))[0] == UNDEFINED:
        return OUTERMOST
    if saved.get(RA) != (OFFSET, -8):
        return None
    fp_kind, fp_off = saved.get(RBP, (None, 0))
    if fp_kind not in (None, OFFSET) or not isinstance(fp_off, int):
        return None
    cfa_reg = CFA_SP if rule.cfa_reg == RSP else CFA_FP
    return StepRule(cfa_reg, rule.cfa_off, fp_kind is not None, fp_off)


def rules_along(
    unwinder: Unwinder, pid: int, walk: Walk, caller: bool = False
) -> List[Tuple[int, StepRule]]:
    """(pc as the probe sees it, rule) for every frame of a walk that BPF can step over.

    The probe looks rules up by the leaf's ip and by raw return addresses; the unwinder keyed
    them by the call instruction (return address - 1). `caller`: the walk started at a
    return address rather than at the syscall's ip."""
    found = []
    arch = unwinder.arch_of(pid) if hasattr(unwinder, "arch_of") else X86_64
    for i, pc in enumerate(walk.ips):
        is_return = caller or i > 0
        rule = step_rule(unwinder.rule_at(pid, pc - 1 if is_return else pc), arch)
        if rule is None:
            break  # the probe could not get past this frame anyway
        found.append((pc, rule))
        if rule.end:
            break
    return found
