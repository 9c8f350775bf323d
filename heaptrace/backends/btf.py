"""Offsets of kernel structure members from the kernel's own BTF (/sys/kernel/btf/vmlinux),
for the few places the probe reads the kernel's task_struct: where x86_64 keeps a thread's
fs base, which is what pthread_self() returns in glibc (Python 3.8 to 3.10 know their
threads by it)."""

from __future__ import annotations

import struct
from functools import cache
from typing import List, Optional, Sequence, Tuple

VMLINUX = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F
STRUCT, UNION, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG = 4, 5, 8, 9, 10, 11, 18
# Bytes after each kind's 12-byte header: fixed, and per member (vlen of them).
_EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0),
          15: (0, 12), 17: (4, 0), 19: (0, 12)}
_ALIASES = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)

Member = Tuple[str, int, int]  # name, type id, offset in bits


class Btf:
    """The types of one BTF blob, indexed lazily: where each type's record is, its name
    offset and kind; members are decoded only for the structs asked about."""

    def __init__(self, data: bytes) -> None:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", data)
        if magic != BTF_MAGIC:
            raise ValueError("not BTF")
        self._data = data
        self._strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
        self._records: List[int] = [0]  # type id -> position of its 12-byte header
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = struct.Struct("<I").unpack_from
        while pos < end:
            info = unpack(data, pos + 4)[0]
            self._records.append(pos)
            fixed, each = _EXTRA.get((info >> 24) & 0x1F, (0, 0))
            pos += 12 + fixed + each * (info & 0xFFFF)

    def name(self, offset: int) -> str:
        return self._strings[offset:self._strings.index(b"\0", offset)].decode()

    def _header(self, type_id: int) -> Tuple[int, int, int, int, int]:
        """(name offset, kind, vlen, kind_flag, size or referenced type)."""
        name_off, info, ref = struct.unpack_from("<III", self._data, self._records[type_id])
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, ref

    def _members(self, type_id: int) -> Sequence[Member]:
        _name, _kind, vlen, kind_flag, _ref = self._header(type_id)
        pos = self._records[type_id] + 12
        return [(self.name(n), t, (off & 0xFFFFFF) if kind_flag else off)
                for n, t, off in struct.iter_unpack("<III", self._data[pos:pos + 12 * vlen])]

    def find_struct(self, name: str) -> Optional[int]:
        wanted = self._strings.find(b"\0" + name.encode() + b"\0")
        if wanted < 0:
            return None
        for type_id in range(1, len(self._records)):
            name_off, kind, _vlen, _flag, _ref = self._header(type_id)
            if name_off == wanted + 1 and kind == STRUCT:
                return type_id
        return None

    def member(self, type_id: int, name: str) -> Optional[Tuple[int, int]]:
        """(type id, byte offset) of a member of a struct (through typedefs)."""
        while self._header(type_id)[1] in _ALIASES:
            type_id = self._header(type_id)[4]
        if self._header(type_id)[1] not in (STRUCT, UNION):
            return None
        for member_name, member_type, bits in self._members(type_id):
            if member_name == name:
                return member_type, bits // 8
        return None

    def offset(self, struct_name: str, path: Sequence[str]) -> Optional[int]:
        """Byte offset of struct_name.a.b... (each step a member of the one before)."""
        type_id = self.find_struct(struct_name)
        total = 0
        for step in path:
            found = None if type_id is None else self.member(type_id, step)
            if found is None:
                return None
            type_id, offset = found
            total += offset
        return total


@cache
def fsbase_offset(path: str = VMLINUX) -> Optional[int]:
    """offsetof(struct task_struct, thread.fsbase) in the running kernel (x86_64), or None
    when the kernel has no BTF or no such member."""
    try:
        with open(path, "rb") as fh:
            btf = Btf(fh.read())
    except (OSError, ValueError, struct.error, IndexError):
        return None
    return btf.offset("task_struct", ("thread", "fsbase"))
