"""DWARF unwinding of a copied user stack: registers (ip, sp, bp) and the stack bytes from sp
up, as the BPF program captures them at a syscall, to the whole chain of return addresses.

Cost model: the CFI of a file is parsed once per build-id and only around the addresses
asked for; the rule at each pc is cached per address space, so unwinding a call site seen
before is a dict lookup and a few 8-byte reads per frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from heaptrace.elf import DEBUG_ROOT, open_debug_file, open_mapped
from heaptrace.procmaps import Mapping, ProcMaps, is_file
from heaptrace.unwind.cfi import (
    EXPR,
    OFFSET,
    RA,
    REGISTER,
    UNDEFINED,
    VAL_EXPR,
    VAL_OFFSET,
    CfiError,
    CfiTable,
    Rule,
)
from heaptrace.unwind.expr import ExprError, evaluate
from heaptrace.unwind.fp import Reader, fp_step, stack_reader

RBP, RSP = 6, 7
CALLEE_SAVED = (3, 6, 7, 12, 13, 14, 15)  # rbx rbp rsp r12-r15 survive a call (SysV)
NO_CFI, UNMAPPED, AT_ENTRY = "no-cfi", "unmapped", "at-entry"
# The dynamic loader's _start (and _dl_start_user after it) has no CFI: a pc this close
# past a file's ELF entry point, without CFI, is the outermost frame.
ENTRY_WINDOW = 64

# Why a walk ended. "entry": the outermost frame (_start, a thread's clone) marks its
# return address undefined, or it is 0: the stack is whole. Anything else cuts it short.
ENTRY, TRUNCATED, NO_INFO, BAD_FRAME, MAX_DEPTH = (
    "entry", "truncated", "no-unwind-info", "bad-frame", "max-depth"
)


@dataclass(frozen=True)
class Walk:
    ips: List[int]  # leaf first: the syscall's pc, then return addresses
    stop: str

    @property
    def complete(self) -> bool:
        return self.stop == ENTRY


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Unwinder:
    """Unwinds copied user stacks of the address spaces described by `maps`."""

    def __init__(
        self, maps: ProcMaps, max_frames: int = 128, debug_root: str = DEBUG_ROOT,
        refresh: bool = False,
    ) -> None:
        """`refresh`: when a pc falls in no known mapping, re-read /proc/PID/maps once for
        it (live tracing: a library mapped since the last snapshot)."""
        self.maps = maps
        self.max_frames = max_frames
        self.debug_root = debug_root
        self.refresh = refresh
        self._refreshed: Dict[Tuple[int, int], bool] = {}
        self._tables: Dict[str, Optional[Tuple[object, CfiTable]]] = {}
        self._pcs: Dict[int, Tuple[int, Dict[int, Union[Rule, str]]]] = {}

    def unwind(self, pid: int, ip: int, sp: int, bp: int, stack: bytes) -> List[int]:
        """Leaf-first addresses; stack[0] is the byte at address `sp`."""
        return self.walk(pid, ip, sp, bp, stack).ips

    def walk(
        self, pid: int, ip: int, sp: int, bp: int, stack: bytes, caller: bool = False
    ) -> Walk:
        """Like unwind(), and says why the walk ended. `caller`: ip is a return address (the
        walk starts part-way up a stack), so its rule is the one of the call before it."""
        read = stack_reader(stack, sp)
        rules = self._rules_of(pid)
        regs: List[Optional[int]] = [None] * 17
        regs[RBP], regs[RSP], regs[RA] = bp, sp, ip
        ips, pc = [ip], ip - 1 if caller else ip
        while len(ips) < self.max_frames:
            rule = rules.get(pc)
            if rule is None:
                rule = rules[pc] = self._lookup(pid, pc)
                if rule is UNMAPPED and self._refreshed_for(pid, pc):
                    rules = self._rules_of(pid)
                    rule = rules[pc] = self._lookup(pid, pc)
            try:
                regs, signal = self._step(rule, regs, read)
            except _Stop as stop:
                return Walk(ips, stop.reason)
            ra = regs[RA]
            ips.append(ra)
            pc = ra if signal else ra - 1  # a return address may be past a noreturn call
        return Walk(ips, MAX_DEPTH)

    def rule_at(self, pid: int, pc: int) -> Union[Rule, str]:
        """The (cached) rule for one pc: a Rule, or NO_CFI, UNMAPPED or AT_ENTRY."""
        rules = self._rules_of(pid)
        rule = rules.get(pc)
        if rule is None:
            rule = rules[pc] = self._lookup(pid, pc)
        return rule

    def _step(
        self, rule: Union[Rule, str], regs: List[Optional[int]], read: Reader
    ) -> Tuple[List[Optional[int]], bool]:
        if rule is UNMAPPED:
            raise _Stop(BAD_FRAME)
        if rule is AT_ENTRY:
            raise _Stop(ENTRY)
        if rule is NO_CFI:
            new, signal = _fp(regs, read), False
        else:
            new, signal = _apply(rule, regs, read), rule.signal
        ra = new[RA]
        if ra == 0:
            raise _Stop(ENTRY)
        sp = new[RSP]
        if sp is None or (sp <= regs[RSP] and not signal):
            raise _Stop(BAD_FRAME)  # a frame must be above its callee
        return new, signal

    def _refreshed_for(self, pid: int, pc: int) -> bool:
        if not self.refresh or (pid, pc) in self._refreshed:
            return False
        self._refreshed[(pid, pc)] = True
        return self.maps.refresh(pid)

    def _rules_of(self, pid: int) -> Dict[int, Union[Rule, str]]:
        generation = self.maps.generation(pid)
        cached = self._pcs.get(pid)
        if cached is None or cached[0] != generation:
            cached = self._pcs[pid] = (generation, {})
        return cached[1]

    def _lookup(self, pid: int, pc: int) -> Union[Rule, str]:
        mapping = self.maps.find(pid, pc)
        if mapping is None:
            return UNMAPPED
        loaded = self._table(mapping) if is_file(mapping) else None
        if loaded is None:
            return NO_CFI
        elf, table = loaded
        vaddr = elf.offset_to_vaddr(pc - mapping.start + mapping.offset)
        if vaddr is None:
            return NO_CFI
        rule = table.rule(vaddr)
        if rule is None:
            return AT_ENTRY if 0 <= vaddr - elf.entry < ENTRY_WINDOW else NO_CFI
        return rule

    def _table(self, mapping: Mapping) -> Optional[Tuple[object, CfiTable]]:
        key = mapping.build_id or mapping.path
        if key not in self._tables:
            self._tables[key] = self._load(mapping)
        return self._tables[key]

    def _load(self, mapping: Mapping) -> Optional[Tuple[object, CfiTable]]:
        elf = open_mapped(mapping.path, mapping.build_id, self.debug_root)
        if elf is None:
            return None
        try:
            return elf, CfiTable(elf, open_debug_file(elf, self.debug_root))
        except (CfiError, IndexError, ValueError, struct.error):
            return None  # malformed CFI: the frame-pointer step takes over


def _fp(regs: List[Optional[int]], read: Reader) -> List[Optional[int]]:
    step = fp_step(regs[RSP], regs[RBP], read)
    if step is None:
        raise _Stop(NO_INFO)
    new = _callee_saved(regs)
    new[RA], new[RSP], new[RBP] = step
    return new


def _callee_saved(regs: List[Optional[int]]) -> List[Optional[int]]:
    new: List[Optional[int]] = [None] * 17
    for reg in CALLEE_SAVED:
        new[reg] = regs[reg]
    return new


def _apply(rule: Rule, regs: List[Optional[int]], read: Reader) -> List[Optional[int]]:
    """The caller's registers, from the rule at the callee's pc."""
    try:
        if rule.cfa_expr is None:
            base = regs[rule.cfa_reg] if rule.cfa_reg < 17 else None
            if base is None:
                raise _Stop(BAD_FRAME)
            cfa = base + rule.cfa_off
        else:
            cfa = evaluate(rule.cfa_expr, regs, read)
        new = _callee_saved(regs)
        new[RSP] = cfa
        new[RA] = None
        for reg, kind, arg in rule.saved:
            if reg < 17:
                new[reg] = _recover(kind, arg, cfa, regs, read)
    except ExprError:
        raise _Stop(TRUNCATED) from None
    if new[RA] is None:
        ra_rule = next((k for r, k, _ in rule.saved if r == RA), None)
        raise _Stop(ENTRY if ra_rule == UNDEFINED else TRUNCATED)
    return new


def _recover(kind: int, arg, cfa: int, regs: List[Optional[int]], read: Reader):
    if kind == OFFSET:
        return read(cfa + arg)
    if kind == VAL_OFFSET:
        return cfa + arg
    if kind == REGISTER:
        return regs[arg] if arg < 17 else None
    if kind == EXPR:
        return read(evaluate(arg, regs, read, push=cfa))
    if kind == VAL_EXPR:
        return evaluate(arg, regs, read, push=cfa)
    return None  # UNDEFINED
