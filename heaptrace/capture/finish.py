"""Finishing a recording whose events are all written: naming its stacks, storing its lifetimes
and its stack coverage. All of it can be done again later (`heaptrace symbolize` names the
stacks, a view builds missing lifetimes when it needs them), so a stop signal may cut it short:
the file then says what it still lacks (meta `unfinished`) instead of being lost or waited for."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Optional, Tuple

from heaptrace.capture.signals import FinishWatch, signal_name
from heaptrace.errors import HeaptraceError
from heaptrace.recording import RecordingWriter
from heaptrace.stacks.elf import DEBUG_ROOT
from heaptrace.stacks.symbols import symbolize_into

if TYPE_CHECKING:
    from heaptrace.analysis.coverage import StackCoverage

# What a recording lacks until finish() is over (RunMeta.unfinished)
UNFINISHED = ("its stacks may not all be named, its lifetimes and stack coverage not stored: "
              "`heaptrace symbolize` finishes it")


class FinishingStopped(HeaptraceError):
    """SIGINT or SIGTERM while a recording was being finished: its events are all there, or
    (`unwritten`) the signal cut the drain of the records buffered when tracing ended."""

    def __init__(self, signum: int, path: str, unwritten: Optional[int] = None) -> None:
        name = signal_name(signum)
        if unwritten is None:
            what = f"while finishing {path}: every event is in it"
        else:
            what = (f"while writing the records buffered when tracing ended: {unwritten:,} "
                    f"events were not written to {path} (it says it is incomplete)")
        super().__init__(f"stopped by {name} {what}, but {UNFINISHED}")
        self.signum = signum
        self.exit_code = 128 + signum


def drain_cut_reason(signum: int, unwritten: int) -> str:
    """Why a recording whose drain a stop signal cut short is incomplete (meta)."""
    return (f"stopped by {signal_name(signum)} while the records buffered when tracing ended "
            f"were written: {unwritten:,} events taken from the probe were not written "
            "(events_unwritten); the totals are exact")


def finish(writer: RecordingWriter, watch: Optional[FinishWatch] = None,
           debug_root: str = DEBUG_ROOT, named: Callable[[], None] = lambda: None,
           lifetimes: bool = True) -> Tuple[Tuple[int, int, int], StackCoverage]:
    """Name the stacks (then call `named`, for what the caller adds to the file), store the
    lifetimes (unless `lifetimes` is False, or they are current already) and the coverage,
    each committed; returns (stacks, frames, frames without a symbol) and the coverage.
    Under `watch`, a stop signal cuts it short: FinishingStopped, with what was committed
    kept and `unfinished` left saying what the file lacks."""
    # Imported here, when the traced command has ended: not in the time before it starts
    from heaptrace.analysis.coverage import coverage
    from heaptrace.analysis.lifetimes import current as lifetimes_current
    from heaptrace.analysis.lifetimes import store as store_lifetimes

    writer.set_meta(unfinished=UNFINISHED)
    writer.commit()
    db = writer.reader().connection()
    try:
        with watch.cuttable(db) if watch is not None else contextlib.nullcontext():
            counts = symbolize_into(writer, debug_root)
            named()
            if lifetimes and not lifetimes_current(db, writer.reader()):
                writer.store_derived(store_lifetimes)
            stacks = coverage(writer.reader())
            writer.set_meta(bytes_with_whole_stack_share=round(stacks.whole_share, 6),
                            frames_unsymbolized_share=round(stacks.unsymbolized_share, 6),
                            unfinished=None)
            writer.commit()
    except Exception:  # FinishingCut, or the error of a statement the signal cut
        if watch is None or watch.signum is None:
            raise
        writer.rollback()  # the statement or batch the signal cut
        raise FinishingStopped(watch.signum, writer.path) from None
    return counts, stacks



def symbolize_recording(path: str, debug_root: str = DEBUG_ROOT) -> Tuple[int, int, int]:
    """`heaptrace symbolize`: name the stacks of the recording at `path` in place (and finish
    what else a run cut short while finishing left undone); returns (stacks, frames, frames
    without a symbol)."""
    with RecordingWriter.open_existing(path) as writer:
        if writer.meta.unfinished is None:
            return symbolize_into(writer, debug_root)
        counts, _coverage = finish(writer, debug_root=debug_root)
        return counts
