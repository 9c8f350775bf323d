"""What an importer or the DTrace backend found, ready to be written as a recording, and the
atomic write.

A parser reads its input completely into an `Imported` before anything is written; the
recording is then written to a temporary file next to the output and renamed into place, so a
malformed input never leaves a half-imported recording behind.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from heaptrace.analysis.quantize import quantize
from heaptrace.errors import RecordingError
from heaptrace.events import Event, Frame, KindTotals
from heaptrace.formats.textinput import LineError  # noqa: F401  (the parsers' error)
from heaptrace.recording import RecordingWriter


@dataclass
class Sample:
    """One imported row: an aggregated stack or one traced call, frames leaf first."""

    frames: Optional[Tuple[Frame, ...]]
    event: Event


@dataclass
class Imported:
    """Everything an importer found, ready to be written as a recording."""

    samples: List[Sample] = field(default_factory=list)
    totals: Dict[str, KindTotals] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)  # JSON values, as Recording.meta()
    # (pid, ppid, comm, start_ns, end_ns, exit_code): only the DTrace backend knows these
    processes: List[Tuple[int, Optional[int], Optional[str], int, Optional[int],
                          Optional[int]]] = field(default_factory=list)
    # What the user should know about this input (printed by `import`, not stored)
    notes: List[str] = field(default_factory=list)


def totals_from_samples(samples: Iterable[Sample], with_buckets: bool) -> Dict[str, KindTotals]:
    """Per-kind totals of imported rows. With `with_buckets`, each row is one call whose
    size is quantized (per-call data); aggregated rows have no per-call sizes."""
    totals: Dict[str, KindTotals] = {}
    sizes: Dict[str, List[int]] = {}
    for s in samples:
        e = s.event
        t = totals.setdefault(e.kind, KindTotals())
        t.calls += e.calls
        if e.size > 0:
            t.bytes += e.size
            sizes.setdefault(e.kind, []).append(e.size)
        elif e.size < 0:
            t.released += -e.size
    if with_buckets:
        for kind, values in sizes.items():
            totals[kind].buckets = quantize(values)
    return totals


def write_recording(imported: Imported, output: str, force: bool) -> None:
    """Write the recording to a temporary file beside `output`, then rename it into place."""
    if os.path.exists(output) and not force:
        raise RecordingError(f"file already exists, will not overwrite without --force: {output}")
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".heaptrace-import-", suffix=".db", dir=directory)
    os.close(fd)
    try:
        _fill(RecordingWriter(tmp, force=True), imported)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fill(writer: RecordingWriter, imported: Imported) -> None:
    with writer:
        writer.set_meta(**imported.meta)
        events = []
        for s in imported.samples:
            stack_id = writer.add_stack(frames=s.frames) if s.frames is not None else None
            events.append(_with_stack(s.event, stack_id))
        writer.add_events(events)
        writer.set_totals(imported.totals)
        for pid, ppid, comm, start_ns, end_ns, exit_code in imported.processes:
            writer.add_process(pid, ppid, comm, start_ns)
            if end_ns is not None or exit_code is not None:
                writer.end_process(pid, end_ns or 0, exit_code)


def _with_stack(event: Event, stack_id: Optional[int]) -> Event:
    if stack_id is None:
        return event
    values = dict(event.__dict__)
    values["stack_id"] = stack_id
    return Event(**values)
