"""CFI rules in the form the probe can apply, and which frames of a walk it learns."""

from __future__ import annotations

from heaptrace.stacks.unwind.bpf_rules import (
    CFA_FP,
    CFA_SP,
    FRAME_POINTER,
    OUTERMOST,
    StepRule,
    rules_along,
    step_rule,
)
from heaptrace.stacks.unwind.cfi import EXPR, OFFSET, RA, REGISTER, UNDEFINED, Rule
from heaptrace.stacks.unwind.dwarf import AT_ENTRY, NO_CFI, RBP, RSP, UNMAPPED, Walk

RBX = 3


def rule(cfa_reg=RSP, cfa_off=16, saved=((RA, OFFSET, -8),), **kw):
    return Rule(cfa_reg, cfa_off, None, saved, **kw)


def test_plain_rules_translate():
    assert step_rule(rule()) == StepRule(CFA_SP, 16, False, 0)
    assert step_rule(rule(RBP, 16, ((RA, OFFSET, -8), (RBP, OFFSET, -16), (RBX, OFFSET, -24)))) \
        == StepRule(CFA_FP, 16, True, -16)


def test_entry_and_frame_pointer_steps():
    assert step_rule(AT_ENTRY) == OUTERMOST
    assert step_rule(rule(saved=((RA, UNDEFINED, None),))) == OUTERMOST
    assert step_rule(NO_CFI) == FRAME_POINTER


def test_what_only_the_full_unwinder_can_do_is_left_out():
    assert step_rule(UNMAPPED) is None
    assert step_rule(rule(signal=True)) is None
    assert step_rule(Rule(RSP, 0, b"\x77\x08", ((RA, OFFSET, -8),))) is None  # CFA expression
    assert step_rule(rule(cfa_reg=RBX)) is None
    assert step_rule(rule(saved=((RA, OFFSET, -16),))) is None
    assert step_rule(rule(saved=((RA, OFFSET, -8), (RBP, REGISTER, RBX)))) is None
    assert step_rule(rule(saved=((RA, OFFSET, -8), (RBP, EXPR, b"")))) is None


class FakeUnwinder:
    def __init__(self, rules):
        self.rules = rules
        self.asked = []

    def rule_at(self, pid, pc):
        self.asked.append(pc)
        return self.rules[pc]


def test_rules_keyed_as_the_probe_looks_them_up():
    # The leaf by its ip, callers by the raw return address (the unwinder uses ra - 1).
    fake = FakeUnwinder({0x100: rule(), 0x1FF: rule(cfa_off=32), 0x2FF: AT_ENTRY})
    found = rules_along(fake, 1, Walk([0x100, 0x200, 0x300], "entry"))
    assert found == [(0x100, StepRule(CFA_SP, 16)), (0x200, StepRule(CFA_SP, 32)),
                     (0x300, OUTERMOST)]
    assert fake.asked == [0x100, 0x1FF, 0x2FF]


def test_a_walk_started_at_a_caller_and_stopped_at_an_unusable_rule():
    fake = FakeUnwinder({0x1FF: rule(), 0x2FF: rule(signal=True)})
    found = rules_along(fake, 1, Walk([0x200, 0x300, 0x400], "entry"), caller=True)
    assert found == [(0x200, StepRule(CFA_SP, 16))]
