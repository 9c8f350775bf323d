"""What an importer or the DTrace backend found, ready to be written as a recording, and the
atomic write.

A parser reads its input completely into an `Imported` before anything is written; the
recording is then written to a private file next to the output and renamed into place
(recording/files.py), so a malformed input never leaves a half-imported recording behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Optional, Tuple

from heaptrace.analysis.quantize import quantize
from heaptrace.events import Event, Frame, KindTotals
from heaptrace.formats.textinput import LineError  # noqa: F401  (the parsers' error)
from heaptrace.recording import RecordedProcess, RecordingWriter, RunMeta
from heaptrace.recording.files import NEVER


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
    meta: RunMeta = field(default_factory=RunMeta)
    processes: List[RecordedProcess] = field(default_factory=list)  # the DTrace backend's
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


def write_recording(imported: Imported, output: str, overwrite: str = NEVER) -> None:
    """Write the recording to a private file beside `output`, renamed into place at the end:
    a malformed input or a failed write leaves whatever was at `output` as it was.
    `overwrite` says what it may replace there (recording/files.py: NEVER, RECORDING,
    ANY_FILE; never a link, a directory or a device)."""
    with RecordingWriter(output, overwrite, imported.meta) as writer:
        events = []
        for s in imported.samples:
            stack_id = writer.add_stack(frames=s.frames) if s.frames is not None else None
            events.append(_with_stack(s.event, stack_id))
        writer.add_events(events)
        writer.set_totals(imported.totals)
        for p in imported.processes:
            writer.add_process(p.pid, p.ppid, p.comm, p.start_ns)
            if p.end_ns is not None or p.exit_code is not None:
                writer.end_process(p.pid, p.end_ns or 0, p.exit_code)


def _with_stack(event: Event, stack_id: Optional[int]) -> Event:
    return event if stack_id is None else replace(event, stack_id=stack_id)
