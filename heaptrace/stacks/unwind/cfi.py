"""DWARF call-frame information: from .eh_frame (found through .eh_frame_hdr's sorted table)
and .debug_frame, to the unwind rule in force at one address.

Only the FDE covering an address is parsed, and only when first asked; the resulting Rule is
cached per address, so a call site seen before costs one dict lookup. Register numbers are
the CIE's: x86_64 6 = rbp, 7 = rsp, 16 = the return address column (rip); aarch64 29 = x29,
30 = x30 (the return address column), 31 = sp (heaptrace/unwind/arch.py).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

# Register rules (the kind of a Rule.saved entry).
OFFSET, VAL_OFFSET, REGISTER, EXPR, VAL_EXPR, UNDEFINED = range(6)
RA = 16


class CfiError(Exception):
    """Malformed or unsupported call-frame information."""


# What reading malformed CFI raises on the way (offsets past the end, a bad CIE pointer, an
# augmentation that is not text, restore_state with nothing remembered): all become
# CfiError at the table's edge, so no caller (the probe's callback) sees them.
_MALFORMED = (IndexError, ValueError, struct.error)


@dataclass(frozen=True)
class Rule:
    """How to find the caller's registers at one address.

    CFA = regs[cfa_reg] + cfa_off, or the value of `cfa_expr`; each saved entry is
    (register, kind, offset-or-register-or-expression)."""

    cfa_reg: int
    cfa_off: int
    cfa_expr: Optional[bytes]
    saved: Tuple[Tuple[int, int, object], ...]
    signal: bool = False  # a signal trampoline: the caller's pc is not a return address


def uleb(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def sleb(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos


_FIXED = {2: "<H", 3: "<I", 4: "<Q", 0xA: "<h", 0xB: "<i", 0xC: "<q", 0: "<Q"}


def read_encoded(data: bytes, pos: int, enc: int, section_addr: int) -> Tuple[int, int]:
    """A DW_EH_PE-encoded pointer at data[pos]; pc-relative ones become link-time addresses
    (data is the section whose link-time address is `section_addr`)."""
    fmt = enc & 0x0F
    if fmt == 1:
        value, end = uleb(data, pos)
    elif fmt == 9:
        value, end = sleb(data, pos)
    else:
        code = _FIXED.get(fmt)
        if code is None:
            raise CfiError(f"unsupported pointer encoding {enc:#x}")
        value = struct.unpack_from(code, data, pos)[0]
        end = pos + struct.calcsize(code)
    app = enc & 0x70
    if app == 0x10:  # pcrel
        value += section_addr + pos
    elif app == 0x30:  # datarel: relative to .eh_frame_hdr (the only user of it)
        value += section_addr
    return value & 0xFFFFFFFFFFFFFFFF, end


@dataclass
class Cie:
    code_align: int
    data_align: int
    ra_reg: int
    fde_enc: int
    has_aug_data: bool
    signal: bool
    initial: bytes


class _Section:
    """One CFI section (.eh_frame or .debug_frame) and the index of its FDEs."""

    def __init__(self, data: bytes, addr: int, is_eh: bool) -> None:
        self.data, self.addr, self.is_eh = data, addr, is_eh
        self.cies: Dict[int, Cie] = {}
        self.starts: List[int] = []
        self.offsets: List[int] = []

    def index_all(self) -> None:
        """Walk every entry header (no hdr table, or .debug_frame)."""
        entries, pos, data = [], 0, self.data
        while pos + 4 <= len(data):
            length, body = struct.unpack_from("<I", data, pos)[0], pos + 4
            if length == 0:
                if self.is_eh:
                    break
                pos = body
                continue
            if length == 0xFFFFFFFF:
                raise CfiError("64-bit DWARF CFI is not supported")
            cie_id = struct.unpack_from("<I", data, body)[0]
            is_cie = cie_id == 0 if self.is_eh else cie_id == 0xFFFFFFFF
            if not is_cie:
                start, _ = self._fde_range(pos)
                entries.append((start, pos))
            pos = body + length
        entries.sort()
        self.starts = [s for s, _ in entries]
        self.offsets = [o for _, o in entries]

    def cie_at(self, offset: int) -> Cie:
        cie = self.cies.get(offset)
        if cie is None:
            cie = self.cies[offset] = self._parse_cie(offset)
        return cie

    def _parse_cie(self, offset: int) -> Cie:
        data = self.data
        length = struct.unpack_from("<I", data, offset)[0]
        end, pos = offset + 4 + length, offset + 8
        version = data[pos]
        pos += 1
        aug_end = data.index(b"\0", pos)
        aug = data[pos:aug_end].decode()
        pos = aug_end + 1
        if version >= 4:
            pos += 2  # address_size, segment_selector_size
        code_align, pos = uleb(data, pos)
        data_align, pos = sleb(data, pos)
        if version == 1:
            ra_reg, pos = data[pos], pos + 1
        else:
            ra_reg, pos = uleb(data, pos)
        fde_enc, pos = self._augmentation(aug, pos)
        return Cie(code_align, data_align, ra_reg, fde_enc, aug.startswith("z"), "S" in aug,
                   data[pos:end])

    def _augmentation(self, aug: str, pos: int) -> Tuple[int, int]:
        """Pointer encoding of FDE addresses, and where the initial instructions start."""
        fde_enc = 0 if not self.is_eh else 0x00
        if not aug.startswith("z"):
            if aug not in ("", "eh"):
                raise CfiError(f"unsupported CIE augmentation {aug!r}")
            return fde_enc, pos + (8 if aug == "eh" else 0)
        aug_len, pos = uleb(self.data, pos)
        after, p = pos + aug_len, pos
        for ch in aug[1:]:
            if ch == "R":
                fde_enc, p = self.data[p], p + 1
            elif ch == "P":
                _, p = read_encoded(self.data, p + 1, self.data[p] & 0x7F, self.addr)
            elif ch == "L":
                p += 1
        return fde_enc, after

    def _cie_offset(self, fde: int) -> int:
        ptr = struct.unpack_from("<I", self.data, fde + 4)[0]
        return fde + 4 - ptr if self.is_eh else ptr

    def _fde_range(self, fde: int) -> Tuple[int, int]:
        cie = self.cie_at(self._cie_offset(fde))
        start, pos = read_encoded(self.data, fde + 8, cie.fde_enc, self.addr)
        size, pos = read_encoded(self.data, pos, cie.fde_enc & 0x0F, 0)
        return start, start + size

    def fde_for(self, vaddr: int) -> Optional[int]:
        i = bisect.bisect(self.starts, vaddr) - 1
        if i < 0:
            return None
        fde = self.offsets[i]
        start, end = self._fde_range(fde)
        return fde if start <= vaddr < end else None

    def rule_at(self, fde: int, vaddr: int) -> Rule:
        cie = self.cie_at(self._cie_offset(fde))
        start, pos = read_encoded(self.data, fde + 8, cie.fde_enc, self.addr)
        _, pos = read_encoded(self.data, pos, cie.fde_enc & 0x0F, 0)
        if cie.has_aug_data:
            aug_len, pos = uleb(self.data, pos)
            pos += aug_len
        end = fde + 4 + struct.unpack_from("<I", self.data, fde)[0]
        machine = _Machine(cie, start, vaddr)
        machine.run(cie.initial)
        machine.initial = dict(machine.regs)
        machine.run(self.data[pos:end])
        return machine.rule()


class _Machine:
    """Executes CFA instructions up to (and including the row for) `target`."""

    def __init__(self, cie: Cie, loc: int, target: int) -> None:
        self.cie, self.loc, self.target = cie, loc, target
        self.cfa: Tuple = (7, 0, None)
        self.regs: Dict[int, Tuple[int, object]] = {}
        self.initial: Dict[int, Tuple[int, object]] = {}
        self.stack: List[Tuple] = []

    def rule(self) -> Rule:
        reg, off, expr = self.cfa
        saved = tuple(sorted((r, k, v) for r, (k, v) in self.regs.items()))
        return Rule(reg, off, expr, saved, self.cie.signal)

    def run(self, code: bytes) -> None:
        pos, n = 0, len(code)
        while pos < n:
            if self.loc > self.target:
                return
            op = code[pos]
            pos += 1
            high = op & 0xC0
            if high == 0x40:
                self.loc += (op & 0x3F) * self.cie.code_align
            elif high == 0x80:
                off, pos = uleb(code, pos)
                self.regs[op & 0x3F] = (OFFSET, off * self.cie.data_align)
            elif high == 0xC0:
                self._restore(op & 0x3F)
            else:
                pos = self._extended(op, code, pos)

    def _restore(self, reg: int) -> None:
        if reg in self.initial:
            self.regs[reg] = self.initial[reg]
        else:
            self.regs.pop(reg, None)

    def _advance(self, delta: int) -> None:
        self.loc += delta * self.cie.code_align

    def _extended(self, op: int, code: bytes, pos: int) -> int:  # noqa: C901 - one opcode table
        da = self.cie.data_align
        if op == 0x00:  # nop
            pass
        elif op == 0x01:  # set_loc
            self.loc, pos = read_encoded(code, pos, self.cie.fde_enc & 0x0F, 0)
        elif op in (0x02, 0x03, 0x04):  # advance_loc1/2/4
            size = {2: 1, 3: 2, 4: 4}[op]
            self._advance(int.from_bytes(code[pos:pos + size], "little"))
            pos += size
        elif op in (0x05, 0x11, 0x14, 0x15, 0x2F):  # offset_extended(_sf), val_offset(_sf)
            reg, pos = uleb(code, pos)
            off, pos = sleb(code, pos) if op in (0x11, 0x15) else uleb(code, pos)
            off = -off if op == 0x2F else off
            kind = VAL_OFFSET if op in (0x14, 0x15) else OFFSET
            self.regs[reg] = (kind, off * da)
        elif op == 0x06:  # restore_extended
            reg, pos = uleb(code, pos)
            self._restore(reg)
        elif op == 0x07:  # undefined
            reg, pos = uleb(code, pos)
            self.regs[reg] = (UNDEFINED, None)
        elif op == 0x08:  # same_value
            reg, pos = uleb(code, pos)
            self.regs.pop(reg, None)
        elif op == 0x09:  # register
            reg, pos = uleb(code, pos)
            other, pos = uleb(code, pos)
            self.regs[reg] = (REGISTER, other)
        elif op == 0x0A:  # remember_state
            self.stack.append((dict(self.regs), self.cfa))
        elif op == 0x0B:  # restore_state
            self.regs, self.cfa = self.stack.pop()
        elif op in (0x0C, 0x12):  # def_cfa(_sf)
            reg, pos = uleb(code, pos)
            off, pos = sleb(code, pos) if op == 0x12 else uleb(code, pos)
            self.cfa = (reg, off * da if op == 0x12 else off, None)
        elif op == 0x0D:  # def_cfa_register
            reg, pos = uleb(code, pos)
            self.cfa = (reg, self.cfa[1], None)
        elif op in (0x0E, 0x13):  # def_cfa_offset(_sf)
            off, pos = sleb(code, pos) if op == 0x13 else uleb(code, pos)
            self.cfa = (self.cfa[0], off * da if op == 0x13 else off, None)
        elif op == 0x0F:  # def_cfa_expression
            size, pos = uleb(code, pos)
            self.cfa = (None, 0, bytes(code[pos:pos + size]))
            pos += size
        elif op in (0x10, 0x16):  # expression, val_expression
            reg, pos = uleb(code, pos)
            size, pos = uleb(code, pos)
            self.regs[reg] = (EXPR if op == 0x10 else VAL_EXPR, bytes(code[pos:pos + size]))
            pos += size
        elif op == 0x2E:  # GNU_args_size
            _, pos = uleb(code, pos)
        elif op == 0x2D:  # AARCH64_negate_ra_state: return address signed (PAC) from here on
            pass  # the unwinder strips the signature bits from every aarch64 return address
        else:
            raise CfiError(f"unsupported CFA instruction {op:#x}")
        return pos


class CfiTable:
    """The CFI of one ELF file (and its debug file): `rule(vaddr)`, cached per address."""

    def __init__(self, elf, debug=None) -> None:
        """Raises CfiError when the CFI cannot be indexed."""
        self._sections: List[_Section] = []
        self._rules: Dict[int, Optional[Rule]] = {}
        try:
            self._index(elf, debug)
        except _MALFORMED as exc:
            raise CfiError(f"malformed CFI: {exc!r}") from None

    def _index(self, elf, debug) -> None:
        eh = elf.data(".eh_frame")
        if eh:
            sec = _Section(eh, elf.sections[".eh_frame"].addr, True)
            hdr = elf.data(".eh_frame_hdr")
            if not (hdr and self._index_from_hdr(sec, hdr, elf.sections[".eh_frame_hdr"].addr)):
                sec.index_all()
            self._sections.append(sec)
        for source in (elf, debug):
            raw = source.data(".debug_frame") if source is not None else None
            if raw:
                sec = _Section(raw, 0, False)
                sec.index_all()
                self._sections.append(sec)

    @staticmethod
    def _index_from_hdr(sec: _Section, hdr: bytes, hdr_addr: int) -> bool:
        """Use the binary-search table of .eh_frame_hdr (sorted initial locations)."""
        version, ptr_enc, count_enc, table_enc = hdr[0], hdr[1], hdr[2], hdr[3]
        if version != 1 or table_enc != 0x3B:  # datarel | sdata4: what every linker writes
            return False
        _, pos = read_encoded(hdr, 4, ptr_enc, hdr_addr)
        count, pos = read_encoded(hdr, pos, count_enc, hdr_addr)
        table = struct.unpack_from(f"<{2 * count}i", hdr, pos)
        sec.starts = [hdr_addr + v for v in table[0::2]]
        sec.offsets = [hdr_addr + v - sec.addr for v in table[1::2]]
        return True

    def rule(self, vaddr: int) -> Optional[Rule]:
        """The unwind rule at link-time address `vaddr`, or None if no CFI covers it."""
        try:
            return self._rules[vaddr]
        except KeyError:
            pass
        rule = None
        for sec in self._sections:
            try:
                fde = sec.fde_for(vaddr)
                if fde is None:
                    continue
                rule = sec.rule_at(fde, vaddr)
            except (CfiError, *_MALFORMED):
                rule = None  # a malformed entry: no rule at this address
            break
        self._rules[vaddr] = rule
        return rule
