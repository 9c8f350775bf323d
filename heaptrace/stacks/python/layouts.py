"""Where CPython keeps what the probe reads, version by version: the thread states, the frame
chain, code objects and the str/bytes objects that name them.

3.8 to 3.12 from a table (offsets measured with offsetof() against each version's internal
headers: tests/python/offsets.c recomputes them from the headers it finds); 3.13 publishes
them itself in `_PyRuntime.debug_offsets`, read from the interpreter's file. Layouts are
stable within a minor version (the size of `_PyRuntime` is checked against the symbol's)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional, Tuple

from heaptrace.backends.probe_layout import PY_FRAMES_IS_ENTRY, PY_FRAMES_OBJECT, PY_FRAMES_SHIM

# How frames chain, as the probe distinguishes them.
FRAMES_OBJECT, FRAMES_IS_ENTRY, FRAMES_SHIM = PY_FRAMES_OBJECT, PY_FRAMES_IS_ENTRY, PY_FRAMES_SHIM
# How a frame's instruction position reads: f_lasti in bytes (3.8, 3.9), f_lasti in 2-byte
# code units (3.10), or a pointer into the code object's bytecode (3.11+).
LASTI_BYTES, LASTI_UNITS, INSTR_POINTER = "lasti-bytes", "lasti-units", "pointer"
# Line-number tables: co_lnotab (3.8, 3.9), 3.10's co_linetable, 3.11+'s location table.
LNOTAB, LINETABLE_310, LOCATIONS = "lnotab", "linetable-3.10", "locations"


@dataclass(frozen=True)
class PyLayout:
    version: Tuple[int, int]
    runtime_size: int  # sizeof(_PyRuntimeState): what the _PyRuntime symbol's size must be
    frames: int  # FRAMES_*
    interpreters_head: int  # _PyRuntime.interpreters.head
    threads_head: int  # PyInterpreterState: first PyThreadState
    tstate_next: int
    tstate_tid: int  # native_thread_id (3.11+) or thread_id (pthread_self(), before)
    tstate_frame: int  # the current frame, or the _PyCFrame that holds it
    cframe_frame: Optional[int]  # _PyCFrame.current_frame (3.11, 3.12)
    frame_previous: int
    frame_code: int
    frame_instr: int
    frame_entry: Optional[int]  # is_entry (3.11) or owner (3.12+)
    frame_globals: int  # f_globals: with the code object, what tells code objects apart
    code_filename: int
    code_name: int
    code_qualname: Optional[int]  # 3.11+
    code_linetable: int  # co_linetable, co_lnotab before 3.10
    code_firstlineno: int
    code_adaptive: Optional[int]  # co_code_adaptive: the bytecode (3.11+)
    code_firsttraceable: Optional[int]  # _co_firsttraceable (3.11+)
    ascii_size: int  # sizeof(PyASCIIObject): where a compact ASCII str's text starts
    compact_size: int  # sizeof(PyCompactUnicodeObject): where other compact strs' does
    instr: str  # LASTI_BYTES, LASTI_UNITS, INSTR_POINTER
    lines: str  # LNOTAB, LINETABLE_310, LOCATIONS

    @property
    def tid_is_pthread(self) -> bool:
        """Before 3.11 a thread state knows its thread by pthread_self(), not by tid."""
        return self.version < (3, 11)


UNICODE_STATE, UNICODE_LENGTH = 32, 16  # PyASCIIObject.state and .length, every version
BYTES_SIZE, BYTES_DATA = 16, 32  # PyBytesObject.ob_size and .ob_sval, every version

_BEFORE_311: Dict[str, Any] = dict(
    frames=FRAMES_OBJECT, interpreters_head=32, threads_head=8, tstate_next=8, tstate_tid=176,
    tstate_frame=24, cframe_frame=None, frame_previous=24, frame_code=32, frame_entry=None,
    frame_globals=48,
    code_filename=104, code_name=112, code_qualname=None, code_linetable=120,
    code_firstlineno=40, code_adaptive=None, code_firsttraceable=None, ascii_size=48,
    compact_size=72)
TABLE: Dict[Tuple[int, int], PyLayout] = {
    (3, 8): PyLayout((3, 8), 1464, frame_instr=104, instr=LASTI_BYTES, lines=LNOTAB,
                     **_BEFORE_311),
    (3, 9): PyLayout((3, 9), 656, frame_instr=104, instr=LASTI_BYTES, lines=LNOTAB,
                     **_BEFORE_311),
    (3, 10): PyLayout((3, 10), 672, frame_instr=96, instr=LASTI_UNITS, lines=LINETABLE_310,
                      **_BEFORE_311),
    (3, 11): PyLayout((3, 11), 166688, FRAMES_IS_ENTRY, interpreters_head=40, threads_head=16,
                      tstate_next=8, tstate_tid=160, tstate_frame=56, cframe_frame=8,
                      frame_previous=48, frame_code=32, frame_instr=56, frame_entry=68,
                      frame_globals=8,
                      code_filename=112, code_name=120, code_qualname=128, code_linetable=136,
                      code_firstlineno=72, code_adaptive=184, code_firsttraceable=168,
                      ascii_size=48, compact_size=72, instr=INSTR_POINTER, lines=LOCATIONS),
    (3, 12): PyLayout((3, 12), 459944, FRAMES_SHIM, interpreters_head=40, threads_head=72,
                      tstate_next=8, tstate_tid=144, tstate_frame=56, cframe_frame=0,
                      frame_previous=8, frame_code=0, frame_instr=56, frame_entry=70,
                      frame_globals=24,
                      code_filename=112, code_name=120, code_qualname=128, code_linetable=136,
                      code_firstlineno=68, code_adaptive=192, code_firsttraceable=176,
                      ascii_size=40, compact_size=56, instr=INSTR_POINTER, lines=LOCATIONS),
    (3, 13): PyLayout((3, 13), 283320, FRAMES_SHIM, interpreters_head=632, threads_head=7344,
                      tstate_next=8, tstate_tid=160, tstate_frame=72, cframe_frame=None,
                      frame_previous=8, frame_code=0, frame_instr=56, frame_entry=70,
                      frame_globals=24,
                      code_filename=112, code_name=120, code_qualname=128, code_linetable=136,
                      code_firstlineno=68, code_adaptive=200, code_firsttraceable=184,
                      ascii_size=40, compact_size=56, instr=INSTR_POINTER, lines=LOCATIONS),
}
OLDEST, NEWEST = min(TABLE), max(TABLE)

DEBUG_COOKIE = b"xdebugpy"
# _Py_DebugOffsets of 3.13 (Include/internal/pycore_runtime.h): after the cookie, the
# version and free_threaded, groups of u64 offsets, each group's first being its struct size.
DEBUG_GROUPS = (
    ("runtime_state", ("size", "finalizing", "interpreters_head")),
    ("interpreter_state", ("size", "id", "next", "threads_head", "gc", "imports_modules",
                           "sysdict", "builtins", "ceval_gil", "gil_runtime_state",
                           "gil_runtime_state_enabled", "gil_runtime_state_locked",
                           "gil_runtime_state_holder")),
    ("thread_state", ("size", "prev", "next", "interp", "current_frame", "thread_id",
                      "native_thread_id", "datastack_chunk", "status")),
    ("interpreter_frame", ("size", "previous", "executable", "instr_ptr", "localsplus",
                           "owner")),
    ("code_object", ("size", "filename", "name", "qualname", "linetable", "firstlineno",
                     "argcount", "localsplusnames", "localspluskinds", "co_code_adaptive")),
    ("pyobject", ("size", "ob_type")),
    ("type_object", ("size", "tp_name", "tp_repr", "tp_flags")),
    ("tuple_object", ("size", "ob_item", "ob_size")),
    ("list_object", ("size", "ob_item", "ob_size")),
    ("dict_object", ("size", "ma_keys", "ma_values")),
    ("float_object", ("size", "ob_fval")),
    ("long_object", ("size", "lv_tag", "ob_digit")),
    ("bytes_object", ("size", "ob_size", "ob_sval")),
    ("unicode_object", ("size", "state", "length", "asciiobject_size")),
)
DEBUG_OFFSETS_SIZE = 8 * (3 + sum(len(fields) for _, fields in DEBUG_GROUPS))


def parse_debug_offsets(raw: bytes) -> Optional[Dict[str, int]]:
    """`group.field` -> offset from the head of a 3.13 `_PyRuntime` ("version" and
    "free_threaded" too), or None when it does not start with the cookie."""
    if len(raw) < DEBUG_OFFSETS_SIZE or not raw.startswith(DEBUG_COOKIE):
        return None
    words = struct.unpack_from(f"<{DEBUG_OFFSETS_SIZE // 8 - 1}Q", raw, 8)
    result = {"version": words[0], "free_threaded": words[1]}
    i = 2
    for group, fields in DEBUG_GROUPS:
        for name in fields:
            result[f"{group}.{name}"] = words[i]
            i += 1
    return result


def from_debug_offsets(offsets: Dict[str, int]) -> Optional[PyLayout]:
    """The 3.13 layout as the interpreter itself describes it (the table fills in what the
    debug offsets leave out: _co_firsttraceable, the str object sizes of non-ASCII text)."""
    hexversion = offsets["version"]
    version = (hexversion >> 24, (hexversion >> 16) & 0xFF)
    base = TABLE.get(version)
    if base is None or version != (3, 13) or offsets["free_threaded"]:
        return None
    return replace(
        base, runtime_size=offsets["runtime_state.size"],
        interpreters_head=offsets["runtime_state.interpreters_head"],
        threads_head=offsets["interpreter_state.threads_head"],
        tstate_next=offsets["thread_state.next"],
        tstate_tid=offsets["thread_state.native_thread_id"],
        tstate_frame=offsets["thread_state.current_frame"],
        frame_previous=offsets["interpreter_frame.previous"],
        frame_code=offsets["interpreter_frame.executable"],
        frame_instr=offsets["interpreter_frame.instr_ptr"],
        frame_entry=offsets["interpreter_frame.owner"],
        code_filename=offsets["code_object.filename"], code_name=offsets["code_object.name"],
        code_qualname=offsets["code_object.qualname"],
        code_linetable=offsets["code_object.linetable"],
        code_firstlineno=offsets["code_object.firstlineno"],
        code_adaptive=offsets["code_object.co_code_adaptive"],
        ascii_size=offsets["unicode_object.asciiobject_size"],
    )
