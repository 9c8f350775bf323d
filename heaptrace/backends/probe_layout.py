"""The probe's records and constants as user space reads them, declared field by field once
(their C side: probes/heaptrace.h).

Each layout names its fields in C order with a `struct` format code, so the Python decoder
and the C struct can be compared field by field (offset and size): against bcc's own ctypes
types of the maps when the probe is loaded (`check_against`), and against the header's text in
the unit tests. A swapped or resized field is an error there, not a silent misread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from heaptrace.errors import HeaptraceError

# Constants of probes/heaptrace.h.
REC_BATCH, REC_FORK, REC_EXEC, REC_EXIT, REC_STACK, REC_COPY, REC_MAPFILE, REC_RSS = range(1, 9)
REC_PYSTACK, REC_PYCODE = 9, 10
STATE_ACTIVE, STATE_ARMED = 1, 2
NBUCKETS = 64
MAX_FRAMES = 64
BATCH = 32
TASK_COMM_LEN = 16
PATH_BYTES = 256
SLOT_SHIFT = 27  # resident growth is summed per stack in slots of 2^SLOT_SHIFT ns
NMEMBERS = 4
RSS_START, RSS_CHANGE, RSS_END = 1, 2, 3
CAUSE_FAULT, CAUSE_SYSCALL, CAUSE_CONTEXT, CAUSE_USER = 1, 2, 3, 4
MAX_RANGES = 512  # ranges.h: what each page of an address space is, in at most this many ranges
CLASS_SLOTS = 8  # ranges.h CLASS_MASK + 1: class_bytes slots per kind
# STAGE_* in index order: the programs of `stages`.
STAGES = ("range_stage", "call_stage", "py_frames")
# CTR_* in index order: the names the run summary and the recording's counters use.
COUNTERS = ("lost", "stack_short", "stack_fail", "procs_full", "stacks_walked", "stacks_copied",
            "no_stack", "stacks_cut", "ranges_full", "ranges_busy", "resident_lost",
            "spaces_full", "py_stacks", "py_no_thread", "py_cut", "py_codes")
MAX_PY_FRAMES = 128
PY_CODE_BYTES, PY_NAME_BYTES, PY_FILE_BYTES, PY_LINES_BYTES = 256, 128, 512, 16384
PY_ENTRY = 1  # low bit of a Python frame's code address: the first frame of its C eval call
PY_CUT = 1  # py_stack_rec.flags
PY_FRAMES_OBJECT, PY_FRAMES_IS_ENTRY, PY_FRAMES_SHIM = 0, 1, 2
PY_NO_OFFSET = 0xFFFFFFFF


@dataclass(frozen=True)
class Layout:
    """One C struct: (field, struct format) in C order; an array field is "6Q", "16s"."""

    c_name: str
    fields: Tuple[Tuple[str, str], ...]

    @property
    def struct(self) -> struct.Struct:
        return struct.Struct("<" + "".join(code for _, code in self.fields))

    def offsets(self) -> Dict[str, Tuple[int, int]]:
        """field -> (offset, size), with C's natural alignment (the structs need no padding,
        and this says so if one ever does)."""
        result, offset = {}, 0
        for name, code in self.fields:
            size = struct.calcsize("<" + code)
            align = struct.calcsize("<" + code.lstrip("0123456789")[:1])
            align = 1 if code.endswith("s") else align
            if offset % align:
                raise HeaptraceError(f"probe layout {self.c_name}.{name} needs padding")
            result[name] = (offset, size)
            offset += size
        return result


KIND_TOTALS = Layout("kind_totals", (("calls", "Q"), ("failed", "Q"), ("bytes", "Q"),
                                     ("released", "Q")))
CALL_REC = Layout("call_rec", (
    ("kind", "I"), ("tid", "I"), ("ts", "Q"), ("pid", "I"), ("stack_id", "i"), ("args", "6Q"),
    ("ret", "q"), ("size", "q"), ("ip", "Q"), ("stack_ref", "Q"), ("rest_ref", "Q"), ("cls", "I"),
    ("pad", "I"), ("py_ref", "Q")))
BATCH_HEADER = Layout("call_batch", (("type", "I"), ("n", "I"), ("first_ts", "Q")))  # + recs
STACK_REC = Layout("stack_rec", (("type", "I"), ("pid", "I"), ("n", "I"), ("complete", "I"),
                                 ("hash", "Q"), ("ips", f"{MAX_FRAMES}Q")))
COPY_HEADER = Layout("copy_rec", (  # + the stack bytes
    ("type", "I"), ("pid", "I"), ("tid", "I"), ("stack_len", "I"), ("gen", "I"), ("depth", "I"),
    ("id", "Q"), ("ip", "Q"), ("sp", "Q"), ("fp", "Q"), ("lr", "Q")))
PROC_REC = Layout("proc_rec", (("type", "I"), ("pid", "I"), ("ts", "Q"), ("ppid", "I"),
                               ("code", "i"), ("comm", f"{TASK_COMM_LEN}s"),
                               ("filename", "256s")))
MAPFILE_REC = Layout("mapfile_rec", (("type", "I"), ("pid", "I"), ("ts", "Q"), ("addr", "Q"),
                                     ("len", "Q"), ("pgoff", "Q"), ("path", f"{PATH_BYTES}s")))
RULE_KEY = Layout("rule_key", (("tgid", "I"), ("gen", "I"), ("pc", "Q")))
RULE = Layout("rule", (("cfa_off", "i"), ("fp_off", "i"), ("cfa_reg", "B"), ("fp_saved", "B"),
                       ("end", "B"), ("pad", "5s")))
RSS_SPACE = Layout("rss_space", (
    ("tgid", "I"), ("exiting", "I"), ("bytes", f"{NMEMBERS}Q"), ("rss", "q"), ("sent", "q"),
    ("peak", "Q"), ("peak_ts", "Q"), ("peak_bytes", f"{NMEMBERS}Q"), ("debt", f"{NMEMBERS}q")))
RSS_REC = Layout("rss_rec", (
    ("type", "I"), ("pid", "I"), ("space", "I"), ("why", "I"), ("ts", "Q"),
    ("bytes", f"{NMEMBERS}Q"), ("peak", "Q"), ("peak_ts", "Q"), ("peak_bytes", f"{NMEMBERS}Q")))
RSS_TOTAL = Layout("rss_total", (
    ("rss", "q"), ("peak", "Q"), ("peak_ts", "Q"), ("bytes", f"{NMEMBERS}q"),
    ("peak_bytes", f"{NMEMBERS}Q")))
RESIDENT_KEY = Layout("resident_key", (
    ("pid", "I"), ("gen", "I"), ("slot", "I"), ("member", "I"), ("cause", "I"), ("nr", "i"),
    ("stack_id", "i"), ("pad", "I"), ("stack_ref", "Q"), ("rest_ref", "Q"),
    ("comm", f"{TASK_COMM_LEN}s")))
RESIDENT_VAL = Layout("resident_val", (
    ("bytes", "Q"), ("count", "Q"), ("first_ts", "Q"), ("addr", "Q"), ("tid", "I"),
    ("pad", "I")))
RSS_BYTES = Layout("rss_bytes", (("bytes", f"{NMEMBERS}Q"),))
PY_PROC = Layout("py_proc", (
    ("gen", "I"), ("frames", "I"), ("runtime", "Q"), ("interpreters_head", "I"),
    ("threads_head", "I"), ("tstate_next", "I"), ("tstate_tid", "I"), ("task_fsbase", "I"),
    ("tstate_frame", "I"),
    ("cframe_frame", "I"), ("frame_previous", "I"), ("frame_code", "I"), ("frame_instr", "I"),
    ("frame_entry", "I"), ("code_filename", "I"), ("code_name", "I"), ("code_qualname", "I"),
    ("code_linetable", "I"), ("frame_globals", "I"), ("wait_pgoff", "Q"), ("wait_len", "Q"),
    ("wait_delta", "Q")))
PY_STACK_REC = Layout("py_stack_rec", (
    ("type", "I"), ("pid", "I"), ("n", "I"), ("flags", "I"), ("hash", "Q"),
    ("codes", f"{MAX_PY_FRAMES}Q"), ("instrs", f"{MAX_PY_FRAMES}Q"),
    ("scopes", f"{MAX_PY_FRAMES}Q")))
PY_CODE_HEADER = Layout("py_code_rec", (  # + lines_len bytes of the line table
    ("type", "I"), ("pid", "I"), ("ts", "Q"), ("code", "Q"), ("scope", "Q"), ("gen", "I"),
    ("lines_len", "I"),
    ("head", f"{PY_CODE_BYTES}s"), ("name", f"{PY_NAME_BYTES}s"),
    ("qualname", f"{PY_NAME_BYTES}s"), ("filename", f"{PY_FILE_BYTES}s")))
LAYOUTS = (KIND_TOTALS, CALL_REC, BATCH_HEADER, STACK_REC, COPY_HEADER, PROC_REC, MAPFILE_REC,
           RULE_KEY, RULE, RSS_SPACE, RSS_REC, RSS_TOTAL, RESIDENT_KEY, RESIDENT_VAL, RSS_BYTES,
           PY_PROC, PY_STACK_REC, PY_CODE_HEADER)

# Which map's key or value type is each layout (map name, "Key" or "Leaf", array field to enter).
IN_MAPS: Tuple[Tuple[Layout, str, str, Optional[str]], ...] = (
    (KIND_TOTALS, "totals", "Leaf", None),
    (BATCH_HEADER, "batches", "Leaf", None),
    (CALL_REC, "batches", "Leaf", "recs"),
    (STACK_REC, "walks", "Leaf", None),
    (COPY_HEADER, "copies", "Leaf", None),
    (PROC_REC, "proc_scratch", "Leaf", None),
    (MAPFILE_REC, "mapfile_scratch", "Leaf", None),
    (RULE_KEY, "rules", "Key", None),
    (RULE, "rules", "Leaf", None),
    (RSS_SPACE, "spaces", "Leaf", None),
    (RSS_REC, "rss_scratch", "Leaf", None),
    (RSS_TOTAL, "rss_sum", "Leaf", None),
    (RESIDENT_KEY, "resident", "Key", None),
    (RESIDENT_VAL, "resident", "Leaf", None),
    (RSS_BYTES, "attach_rss", "Leaf", None),
    (KIND_TOTALS, "rss_members", "Leaf", None),
    (PY_PROC, "py_procs", "Leaf", None),
    (PY_STACK_REC, "py_stacks", "Leaf", None),
    (PY_CODE_HEADER, "py_code_scratch", "Leaf", None),
)


def ctype_offsets(ctype: type) -> Dict[str, Tuple[int, int]]:
    """field -> (offset, size) of a ctypes Structure (as bcc builds them from the BPF types)."""
    return {name: (getattr(ctype, name).offset, getattr(ctype, name).size)
            for name, *_ in ctype._fields_}  # type: ignore[attr-defined]


def mismatches(layout: Layout, c_fields: Dict[str, Tuple[int, int]]) -> List[str]:
    """Where the Python layout and the C struct's fields disagree (empty when they agree)."""
    ours = layout.offsets()
    wrong = [f"{layout.c_name}.{name}: Python (offset, size) {ours[name]}, C {c_fields.get(name)}"
             for name in ours if c_fields.get(name) != ours[name]]
    extra = [n for n in c_fields if n not in ours and c_fields[n][0] < layout.struct.size]
    return wrong + [f"{layout.c_name}.{name}: in C only" for name in extra]


# (map name, "Key" or "Leaf") -> the ctypes type bcc made for it
TableTypes = Callable[[str, str], type]


def check_against(table_type: TableTypes) -> None:
    """Compare every layout with bcc's ctypes of the loaded maps; raise on any difference."""
    problems: List[str] = []
    for layout, map_name, side, array in IN_MAPS:
        ctype = table_type(map_name, side)
        while not hasattr(ctype, "_fields_"):  # a per-CPU map's value: one struct per CPU
            ctype = ctype._type_  # type: ignore[attr-defined]
        if array is not None:
            ctype = ctype._fields_[[f[0] for f in ctype._fields_].index(array)][1]
            ctype = ctype._type_  # the array's element type
        problems += mismatches(layout, ctype_offsets(ctype))
    if problems:
        raise HeaptraceError("the probe's records differ from heaptrace's: " + "; ".join(problems),
                             "reinstall heaptrace: probes/ and the Python package disagree")

