"""DWARF unwinding of a copied user stack: registers (x86_64: ip, sp, bp; aarch64: pc, sp,
x29, x30) and the stack bytes from sp up, as the BPF program captures them at a syscall, to
the whole chain of return addresses. The instruction set is the one of the ELF files mapped
in the address space (e_machine), or the one given.

Cost model: the CFI of a file is parsed once per build-id and only around the addresses
asked for; the rule at each pc is cached per address space, so unwinding a call site seen
before is a dict lookup and a few 8-byte reads per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

from heaptrace.stacks.elf import DEBUG_ROOT, ElfFile, open_debug_file, open_mapped
from heaptrace.stacks.procmaps import Mapping, ProcMaps, is_file
from heaptrace.stacks.procmem import MemoryReader
from heaptrace.stacks.symbols import SymbolTable, perf_map_owners, read_perf_map
from heaptrace.stacks.unwind.arch import X86_64, Arch, host, of_machine, resolve
from heaptrace.stacks.unwind.cfi import (
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
from heaptrace.stacks.unwind.expr import ExprError, evaluate
from heaptrace.stacks.unwind.fp import Reader, fp_step, stack_reader

RBP, RSP = X86_64.fp, X86_64.sp
CALLEE_SAVED = X86_64.callee_saved
NO_CFI, UNMAPPED, AT_ENTRY = "no-cfi", "unmapped", "at-entry"
# The dynamic loader's _start (and _dl_start_user after it) has no CFI: a pc this close
# past a file's ELF entry point, without CFI, is the outermost frame.
ENTRY_WINDOW = 64

# CPython's perf trampoline (Python/asm_trampoline.S, x86_64): its call's return address is
# TRAMPOLINE_CALL_END bytes in; at that call CFA = rsp + 16 and the return address is at
# CFA - 8, rbp untouched.
PERF_TRAMPOLINE_X86_64 = bytes.fromhex("4883ec08" "ffd1" "4883c408" "c3")
TRAMPOLINE_CALL_END = 6
PERF_TRAMPOLINE_RULE = Rule(RSP, 16, None, ((RA, OFFSET, -8),))
CodeReader = Callable[[int], MemoryReader]  # pid -> a reader of its memory

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
        self, maps: ProcMaps, max_frames: int = 256, debug_root: str = DEBUG_ROOT,
        refresh: bool = False, arch: Union[Arch, str, None] = None,
        code: Optional[CodeReader] = None, perf_map_dir: str = "/tmp",
    ) -> None:
        """`refresh`: when a pc falls in no known mapping, re-read /proc/PID/maps once for
        it (live tracing: a library mapped since the last snapshot). `arch` ("x86_64",
        "aarch64"): the instruction set of every address space; by default each one's is
        read from the e_machine of its mapped files. `code(pid)`: reads the live process's
        memory, to recognize JIT code whose shape is known (perf trampolines)."""
        self.maps = maps
        self.code = code
        self.perf_map_dir = perf_map_dir
        self._perf_maps: Dict[int, SymbolTable] = {}
        self.arch = resolve(arch)
        self.max_frames = max_frames
        self.debug_root = debug_root
        self.refresh = refresh
        self._refreshed: Dict[Tuple[int, int], bool] = {}
        self._tables: Dict[str, Optional[Tuple[ElfFile, CfiTable]]] = {}
        self._pcs: Dict[int, Tuple[int, Dict[int, Union[Rule, str]], Arch]] = {}

    def unwind(
        self, pid: int, ip: int, sp: int, bp: int, stack: bytes, lr: Optional[int] = None
    ) -> List[int]:
        """Leaf-first addresses; stack[0] is the byte at address `sp`. `bp` is the frame
        pointer (rbp, x29); `lr` the link register (aarch64's x30, ignored on x86_64)."""
        return self.walk(pid, ip, sp, bp, stack, lr=lr).ips

    def walk(
        self, pid: int, ip: int, sp: int, bp: int, stack: bytes, caller: bool = False,
        lr: Optional[int] = None,
    ) -> Walk:
        """Like unwind(), and says why the walk ended. `caller`: ip is a return address (the
        walk starts part-way up a stack), so its rule is the one of the call before it."""
        read = stack_reader(stack, sp)
        rules = self._rules_of(pid)
        arch = self.arch_of(pid)
        regs: List[Optional[int]] = [None] * arch.nregs
        regs[arch.fp], regs[arch.sp], regs[arch.pc] = bp, sp, ip
        if arch.lr is not None:
            regs[arch.lr] = lr
        ips, pc = [ip], ip - 1 if caller else ip
        # aarch64: a leaf without a frame has its caller's sp (CFA = sp); x86_64's call
        # always pushes. Only the syscall's own frame may be such a leaf.
        leaf = not caller and arch.ra_in_register
        after_fp = False
        while len(ips) < self.max_frames:
            rule = rules.get(pc)
            if rule is None:
                rule = rules[pc] = self._lookup(pid, pc)
                if rule is UNMAPPED and self._refreshed_for(pid, pc):
                    rules = self._rules_of(pid)
                    rule = rules[pc] = self._lookup(pid, pc)
            try:
                if after_fp and arch.lr is not None:
                    regs = _sp_from_frame_record(arch, rule, regs)
                regs, ra, signal = _step(arch, rule, regs, read, leaf and len(ips) == 1)
            except _Stop as stop:
                return Walk(ips, stop.reason)
            after_fp = rule is NO_CFI
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

    def arch_of(self, pid: int) -> Arch:
        """The instruction set of an address space: the one given, else its files'."""
        self._rules_of(pid)
        return self._pcs[pid][2]

    def forget(self, pid: int) -> None:
        """Drop what is cached for a process that ended (found again if the pid comes back)."""
        self._pcs.pop(pid, None)
        self._perf_maps.pop(pid, None)
        for key in [key for key in self._refreshed if key[0] == pid]:
            del self._refreshed[key]

    def _refreshed_for(self, pid: int, pc: int) -> bool:
        if not self.refresh or (pid, pc) in self._refreshed:
            return False
        self._refreshed[(pid, pc)] = True
        return self.maps.refresh(pid)

    def _rules_of(self, pid: int) -> Dict[int, Union[Rule, str]]:
        generation = self.maps.generation(pid)
        cached = self._pcs.get(pid)
        if cached is None or cached[0] != generation:
            cached = self._pcs[pid] = (generation, {}, self.arch or self._machine(pid))
        return cached[1]

    def _machine(self, pid: int) -> Arch:
        """The e_machine of the first mapped file that opens (the host's when none does)."""
        for mapping in self.maps.mappings(pid):
            if is_file(mapping):
                loaded = self._table(mapping)
                arch = of_machine(loaded[0].machine) if loaded else None
                if arch is not None:
                    return arch
        return host()

    def _lookup(self, pid: int, pc: int) -> Union[Rule, str]:
        mapping = self.maps.find(pid, pc)
        if mapping is None:  # JIT code made executable by mprotect, which is not traced
            jit = self._jit_rule(pid, pc)
            return UNMAPPED if jit is NO_CFI else jit
        loaded = self._table(mapping) if is_file(mapping) else None
        if loaded is None:
            return self._jit_rule(pid, pc) if not is_file(mapping) else NO_CFI
        elf, table = loaded
        vaddr = elf.offset_to_vaddr(pc - mapping.start + mapping.offset)
        if vaddr is None:
            return NO_CFI
        rule = table.rule(vaddr)
        if rule is None:
            return AT_ENTRY if 0 <= vaddr - elf.entry < ENTRY_WINDOW else NO_CFI
        return rule

    def _jit_rule(self, pid: int, pc: int) -> Union[Rule, str]:
        """Anonymous code without CFI (or in no known mapping): a perf trampoline of CPython
        3.12+ (`python -X perf`: `sub $8,%rsp; call *%rcx; add $8,%rsp; ret`, no frame
        pointer) has CFA = rsp + 16 at its call; anything else gets the frame-pointer step.
        `pc` is the return address minus one, inside the call. Known by its code while the
        process runs, else by its entry in /tmp/perf-PID.map (a `py::` function of the
        trampoline's size)."""
        if self.arch_of(pid) is not X86_64:
            return NO_CFI
        start = pc - TRAMPOLINE_CALL_END + 1
        code = self.code(pid)(start, len(PERF_TRAMPOLINE_X86_64)) if self.code else None
        if code is None:
            entry = self._perf_map(pid, pc)
            size = len(PERF_TRAMPOLINE_X86_64)
            if entry is not None and entry[:2] == (start, size) and entry[2].startswith("py::"):
                return PERF_TRAMPOLINE_RULE
        return PERF_TRAMPOLINE_RULE if code == PERF_TRAMPOLINE_X86_64 else NO_CFI

    def _perf_map(self, pid: int, pc: int) -> Optional[Tuple[int, int, str]]:
        """The perf map entry holding pc (the map is read again when it has none: JIT
        code is added to it as the process runs)."""
        table = self._perf_maps.get(pid)
        entry = table.entry(pc) if table is not None else None
        if entry is None:
            table = self._perf_maps[pid] = read_perf_map(
                f"{self.perf_map_dir}/perf-{pid}.map", perf_map_owners(pid, self.maps.uids))
            entry = table.entry(pc)
        return entry

    def _table(self, mapping: Mapping) -> Optional[Tuple[ElfFile, CfiTable]]:
        key = mapping.build_id or mapping.path
        if key not in self._tables:
            self._tables[key] = self._load(mapping)
        return self._tables[key]

    def _load(self, mapping: Mapping) -> Optional[Tuple[ElfFile, CfiTable]]:
        elf = open_mapped(mapping.path, mapping.build_id, self.debug_root)
        if elf is None:
            return None
        try:
            return elf, CfiTable(elf, open_debug_file(elf, self.debug_root))
        except CfiError:
            return None  # malformed CFI: the frame-pointer step takes over


def _step(
    arch: Arch, rule: Union[Rule, str], regs: List[Optional[int]], read: Reader, leaf: bool
) -> Tuple[List[Optional[int]], int, bool]:
    """The caller's registers, its return address and whether the callee is a signal
    frame; `leaf`: the syscall's own frame, which may have no frame."""
    if isinstance(rule, Rule):
        new, signal = _apply(arch, rule, regs, read), rule.signal
    elif rule is NO_CFI:
        new, signal = _fp(arch, regs, read), False
    elif rule is AT_ENTRY:
        raise _Stop(ENTRY)
    else:  # UNMAPPED
        raise _Stop(BAD_FRAME)
    ra = new[arch.ra]
    if ra is None:  # _apply and _fp stop before that; a guard for the type
        raise _Stop(TRUNCATED)
    if ra == 0:
        raise _Stop(ENTRY)
    if arch is not X86_64:
        ra = new[arch.ra] = ra & arch.address_mask
    sp, old = new[arch.sp], regs[arch.sp]
    if sp is None or old is None or (sp <= old and not signal and not (leaf and sp == old)):
        raise _Stop(BAD_FRAME)  # a frame must be above its callee
    return new, ra, signal


def _sp_from_frame_record(
    arch: Arch, rule: Union[Rule, str], regs: List[Optional[int]]
) -> List[Optional[int]]:
    """aarch64, after a frame-pointer step: the caller's sp is only known to be above the
    frame record. A function whose CFI has its frame record at the bottom of its frame
    (CFA = sp + n, x29 saved at CFA - n: `stp x29, x30, [sp, -n]!; mov x29, sp`, gcc's
    frame-pointer prologue) has sp == x29, and x29 came exactly from the frame record."""
    if not isinstance(rule, Rule) or rule.cfa_expr is not None or rule.cfa_reg != arch.sp:
        return regs
    fp, sp = regs[arch.fp], regs[arch.sp]
    if (arch.fp, OFFSET, -rule.cfa_off) not in rule.saved or fp is None or sp is None or fp < sp:
        return regs
    regs = list(regs)
    regs[arch.sp] = fp
    return regs


def _fp(arch: Arch, regs: List[Optional[int]], read: Reader) -> List[Optional[int]]:
    """One frame-pointer step: x86_64's [rbp] = caller's rbp, [rbp+8] = return address;
    aarch64's frame record is the same: [x29] = caller's x29, [x29+8] = saved x30."""
    sp = regs[arch.sp]
    step = None if sp is None else fp_step(sp, regs[arch.fp], read)
    if step is None:
        raise _Stop(NO_INFO)
    new = _callee_saved(arch, regs)
    new[arch.ra], new[arch.sp], new[arch.fp] = step
    return new


def _callee_saved(arch: Arch, regs: List[Optional[int]]) -> List[Optional[int]]:
    new: List[Optional[int]] = [None] * arch.nregs
    for reg in arch.callee_saved:
        new[reg] = regs[reg]
    return new


def _apply(
    arch: Arch, rule: Rule, regs: List[Optional[int]], read: Reader
) -> List[Optional[int]]:
    """The caller's registers, from the rule at the callee's pc."""
    n = arch.nregs
    try:
        if rule.cfa_expr is None:
            base = regs[rule.cfa_reg] if rule.cfa_reg < n else None
            if base is None:
                raise _Stop(BAD_FRAME)
            cfa = base + rule.cfa_off
        else:
            cfa = evaluate(rule.cfa_expr, regs, read)
        new = _callee_saved(arch, regs)
        new[arch.sp] = cfa
        new[arch.ra] = regs[arch.ra] if arch.ra_in_register else None  # "same value"
        for reg, kind, arg in rule.saved:
            if reg < n:
                new[reg] = _recover(kind, arg, cfa, regs, read)
    except ExprError:
        raise _Stop(TRUNCATED) from None
    if new[arch.ra] is None:
        ra_rule = next((k for r, k, _ in rule.saved if r == arch.ra), None)
        raise _Stop(ENTRY if ra_rule == UNDEFINED else TRUNCATED)
    return new


def _recover(kind: int, arg, cfa: int, regs: List[Optional[int]], read: Reader):
    if kind == OFFSET:
        return read(cfa + arg)
    if kind == VAL_OFFSET:
        return cfa + arg
    if kind == REGISTER:
        return regs[arg] if arg < len(regs) else None
    if kind == EXPR:
        return read(evaluate(arg, regs, read, push=cfa))
    if kind == VAL_EXPR:
        return evaluate(arg, regs, read, push=cfa)
    return None  # UNDEFINED
