"""The few pieces of the protocol buffers wire format that profile.proto needs: varints,
length-delimited fields (strings, nested messages) and packed repeated integers.

A message is built as a list of encoded fields and joined; the pprof writer (render/pprof.py)
declares the field numbers. Fields equal to zero or empty are left out, as proto3 does.
"""

from __future__ import annotations

from typing import Iterable, List

VARINT = 0  # wire types
LENGTH_DELIMITED = 2
U64 = 1 << 64


def varint(value: int) -> bytes:
    """Base-128, low groups first. A negative int64 is sent as its 64-bit two's complement
    (ten bytes), as protobuf does for int64 fields."""
    value %= U64
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def integer(number: int, value: int) -> bytes:
    """An int64, uint64 or bool field; nothing for zero."""
    return tag(number, VARINT) + varint(value) if value else b""


def delimited(number: int, payload: bytes) -> bytes:
    """A string, bytes or nested message field, even empty (a repeated field keeps its
    place: the string table's first entry must be "")."""
    return tag(number, LENGTH_DELIMITED) + varint(len(payload)) + payload


def message(number: int, fields: Iterable[bytes]) -> bytes:
    return delimited(number, b"".join(fields))


def packed(number: int, values: List[int]) -> bytes:
    """A repeated integer field in its packed form; nothing when there are none."""
    if not values:
        return b""
    return delimited(number, b"".join(varint(v) for v in values))
