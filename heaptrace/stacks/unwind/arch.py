"""What the unwinder needs to know of an instruction set: DWARF register numbers, which
registers survive a call, where the return address lives at a leaf.

x86_64: a call pushes the return address, so every CFI row says where it is on the stack.
aarch64: a call leaves it in the link register x30; a function that calls others saves x30
(and x29, the frame pointer) in its frame, a leaf keeps it in x30, which its CFI leaves at
"same value". Pointer authentication (PAC) signs saved return addresses in their top bits;
user-space addresses fit in 48 bits (52-bit ones are handed out only on request), so those
bits are cleared."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Optional, Tuple, Union

EM_X86_64, EM_AARCH64 = 62, 183


@dataclass(frozen=True)
class Arch:
    name: str
    machine: int  # ELF e_machine
    nregs: int  # DWARF registers tracked: 0 .. nregs-1
    sp: int
    fp: int
    ra: int  # the CFI's return-address column
    pc: int  # the register holding the current pc (x86_64: the return-address column)
    lr: Optional[int]  # the link register, which holds the return address at a leaf
    callee_saved: Tuple[int, ...]
    address_mask: int  # applied to recovered return addresses (strips PAC bits)

    @property
    def ra_in_register(self) -> bool:
        """A return address with no CFI rule is still in the link register ("same value")."""
        return self.lr == self.ra


X86_64 = Arch(
    "x86_64", EM_X86_64, 17, sp=7, fp=6, ra=16, pc=16, lr=None,
    callee_saved=(3, 6, 7, 12, 13, 14, 15),  # rbx rbp rsp r12-r15 (SysV)
    address_mask=(1 << 64) - 1,
)
AARCH64 = Arch(
    "aarch64", EM_AARCH64, 33, sp=31, fp=29, ra=30, pc=32, lr=30,
    callee_saved=(*range(19, 30), 31),  # x19-x28, x29 (fp), sp (AAPCS64)
    address_mask=(1 << 48) - 1,
)
ARCHES = {a.name: a for a in (X86_64, AARCH64)}
BY_MACHINE = {a.machine: a for a in (X86_64, AARCH64)}
_MACHINE_NAMES = {"EM_X86_64": EM_X86_64, "EM_AARCH64": EM_AARCH64}


def host() -> Arch:
    return AARCH64 if platform.machine() in ("aarch64", "arm64") else X86_64


def resolve(arch: Union[Arch, str, None]) -> Optional[Arch]:
    """An Arch from itself or its name ("x86_64", "aarch64"); None stays None."""
    if arch is None or isinstance(arch, Arch):
        return arch
    try:
        return ARCHES[arch]
    except KeyError:
        raise ValueError(f"unsupported architecture {arch!r}") from None


def of_machine(machine: Union[int, str, None]) -> Optional[Arch]:
    """The Arch of an ELF e_machine (a number, or pyelftools' "EM_..." name)."""
    if isinstance(machine, str):
        machine = _MACHINE_NAMES.get(machine)
    return None if machine is None else BY_MACHINE.get(machine)
