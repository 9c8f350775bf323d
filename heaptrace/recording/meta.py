"""What a recording says about its run: one typed record that every source writes (an eBPF or
DTrace run, every importer) and every view reads.

Stored in the `meta` table as one row per field, the value as JSON. Reading checks each value
against the field's type: a malformed one is an error naming its row, never a traceback in a
view. Rows a reader does not know (written by another version) are ignored.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Dict, Iterable, List, Optional, Tuple


@dataclass
class RunMeta:
    """Every field has a default: a source fills in what it knows."""

    # Where the recording came from.
    source: str = ""  # "ebpf" or "dtrace" for a run; "dtrace", "perf" or "folded" for an import
    imported_from: Optional[str] = None  # the input file of `heaptrace import`
    heaptrace_version: Optional[str] = None
    # What ran, and how it ended.
    command: List[str] = field(default_factory=list)
    command_line: str = ""
    cwd: Optional[str] = None
    kernel: Optional[str] = None
    page_size: Optional[int] = None
    root_pid: Optional[int] = None
    target_pid: Optional[int] = None  # DTrace's $target
    attached: bool = False  # `run --pid`: a running process, not a command heaptrace started
    attach_end: Optional[str] = None  # with --pid: "exited", "interrupted" or "duration"
    exit_code: Optional[int] = None
    # When: start_ns and end_ns are on the events' clock (CLOCK_MONOTONIC); started_at is the
    # wall clock (seconds since the epoch).
    started_at: Optional[float] = None
    start_ns: Optional[int] = None
    end_ns: Optional[int] = None
    duration_s: Optional[float] = None
    # What was traced.
    kinds: List[str] = field(default_factory=list)
    unwind: Optional[str] = None  # "dwarf" or "fp"
    # How whole it is. complete: True once heaptrace finished the file with every event
    # received either written or counted lost; False while a run is recording (so a run cut
    # short says so) or when a run failed (incomplete_reason says why); None when the source
    # cannot tell (imports).
    complete: Optional[bool] = None
    incomplete_reason: Optional[str] = None
    lost_events: int = 0  # dropped before heaptrace received them (the probe's ring buffer full)
    events_recorded: Optional[int] = None  # received from the probe
    events_unwritten: int = 0  # received but not written: a write error ended the run
    events_with_stack: Optional[int] = None
    probe_counters: Dict[str, int] = field(default_factory=dict)
    aggregation_drops: int = 0  # DTrace's own drop reports
    dynvar_drops: int = 0
    stack_copies_unwound: Optional[int] = None
    stack_copies_whole: Optional[int] = None
    # What the recorder still kept when the events ended, every exited process forgotten
    # (capture/rows.py Recorder.kept: stack parts, stack ids, processes, mapped pids...)
    recorder_kept: Dict[str, int] = field(default_factory=dict)
    python_interpreters: List[Dict[str, object]] = field(default_factory=list)  # read, with how
    python_notes: List[str] = field(default_factory=list)  # interpreters that could not be read
    bytes_with_whole_stack_share: Optional[float] = None
    frames_unsymbolized_share: Optional[float] = None
    peak_rss: Optional[int] = None  # exact: the summed RSS of the traced processes at its peak
    peak_rss_ns: Optional[int] = None  # when
    peak_rss_classes: Dict[str, int] = field(default_factory=dict)  # anon, file, shmem, swap
    resident_classes: Dict[str, List[int]] = field(default_factory=dict)  # class -> [calls,
    # bytes, released] of the resident kind (the kernel's counters)
    resident_sums: int = 0  # resident events written
    stopped_by: Optional[str] = None  # a second SIGINT or SIGTERM stopped tracing: its name
    # What finishing the file (naming stacks, lifetimes, coverage) has not done yet: set
    # while it runs, None once done; left set when a signal cut it short.
    unfinished: Optional[str] = None
    process_uids: Dict[str, int] = field(default_factory=dict)  # pid -> the uid it ran as
    # What an imported input could and could not tell.
    counts: Dict[str, str] = field(default_factory=dict)  # kind -> "bytes" or "calls"
    unknown_totals: Dict[str, List[str]] = field(default_factory=dict)  # kind -> absent totals
    other_totals: Dict[str, List[Tuple[str, int]]] = field(default_factory=dict)  # printa() lines
    titles: Dict[str, str] = field(default_factory=dict)  # kind -> the input's table title
    header: List[str] = field(default_factory=list)  # the input's lines before its first table
    folded_column: Optional[int] = None
    addresses: bool = False  # each imported call has its addresses: frees match allocations
    brk_growth_unknown: int = 0  # processes whose first brk growth the input cannot tell

    @property
    def imported(self) -> bool:
        return self.imported_from is not None

    def to_json(self) -> Dict[str, object]:
        """Every field as JSON-ready values (`histogram --json` prints this)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def rows(self, names: Optional[Iterable[str]] = None) -> List[Tuple[str, str]]:
        """(key, JSON value) rows of the meta table, of every field or of `names`."""
        wanted = [f.name for f in fields(self)] if names is None else list(names)
        return [(name, json.dumps(_plain(getattr(self, name)))) for name in wanted]


FIELD_NAMES = frozenset(f.name for f in fields(RunMeta))


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class MalformedValue(ValueError):
    """A stored value that does not have its field's type; the message says what was expected."""


def _types() -> Dict[str, object]:
    hints = typing.get_type_hints(RunMeta)
    return {name: hints[name] for name in FIELD_NAMES}


_TYPES = _types()
_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def check_type(value: object, tp: object) -> object:
    """`value` (decoded JSON) as type `tp` (lists of pairs become tuples), or MalformedValue."""
    if tp is object:  # any JSON value (a list of records whose fields vary)
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return check_type(value, next(a for a in args if a is not type(None)))
    if origin is list:
        if not isinstance(value, list):
            raise MalformedValue("expected a list")
        return [check_type(v, args[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise MalformedValue("expected an object")
        return {k: check_type(v, args[1]) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise MalformedValue(f"expected a list of {len(args)}")
        return tuple(check_type(v, a) for v, a in zip(value, args))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not tp or (tp is float and not math.isfinite(value)):  # type: ignore[arg-type]
        raise MalformedValue(f"expected {_NAMES.get(tp, tp)}")  # type: ignore[call-overload]
    return value


def decode_field(key: str, text: object) -> object:
    """The value of meta row `key` (a known field) from its stored JSON text."""
    if not isinstance(text, str):
        raise MalformedValue("expected JSON text")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedValue("not valid JSON") from None
    return check_type(value, _TYPES[key])


def from_rows(rows: Iterable[Tuple[object, object]]) -> Tuple[RunMeta, List[str]]:
    """The RunMeta of a meta table's rows, and the keys it did not know. Raises
    MalformedValue (with the key in its args) for a value of the wrong type."""
    meta, unknown = RunMeta(), []
    for key, text in rows:
        if not isinstance(key, str) or key not in FIELD_NAMES:
            unknown.append(str(key))
            continue
        try:
            setattr(meta, key, decode_field(key, text))
        except MalformedValue as exc:
            raise MalformedValue(f"meta row {key!r}: {exc}") from None
    return meta, unknown
