"""Memory over time: per time bucket, bytes taken and given back, bytes held, RSS.

"Held" comes from the replay `flame --retained` uses (analysis/retained.py): committed
pages taken by traced calls and not given back (munmap, brk and mremap shrinks, madvise,
mprotect PROT_NONE), page by page. It is what the live process images
hold at the end of a bucket, so it drops when an image execs or exits (the kernel takes
its memory back); `held_at_exit` is the other reading, what every image still held when
it ended, which is the total `flame --retained` shows.

"Taken" is the calls' committed growth (events.growth); "given back" is what the replay
saw each call give back: held pages unmapped, shrunk, replaced, advised away (madvise
DONTNEED/FREE/REMOVE) or made PROT_NONE, page by page; file, shared and reserved pages are
neither. A release of memory no traced call took (mapped before an attach) is given back
but was never held, so held does not always move by taken - given.

RSS is the kernel's own (analysis/rss.py): per bucket the largest summed RSS in it, with its
anon/file/shmem split, exact at each recorded point (and at the run's peak, which the probe
keeps itself); "resident" is the bytes that became resident in the bucket (first touch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from heaptrace.analysis.compact import OWN_FRAMES, own_positions
from heaptrace.analysis.eventsums import stored_sums
from heaptrace.analysis.lifetimes import Lifetimes
from heaptrace.analysis.retained import END_OF_TIME
from heaptrace.analysis.rss import CLASS_NAME, Peak, rss_by_bucket, run_peak
from heaptrace.analysis.stacks import NO_STACK, UNKNOWN_FRAME, run_start_ns
from heaptrace.errors import UsageError
from heaptrace.events import Frame, Rss
from heaptrace.recording import Recording

DEFAULT_BUCKETS = 40
MAX_BUCKETS = 10_000
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)  # bucket widths read well as time labels: 0.25 s, 5 s...
TOP_GROWERS = 3


@dataclass
class Bucket:
    """One time slice [start_s, end_s) in seconds into the run."""

    start_s: float
    end_s: float
    taken: int = 0  # brk growth + mmap + mremap growth
    given: int = 0  # munmap + brk shrink + mremap shrink
    held: int = 0  # held by the live images at the end of the bucket
    rss: Optional[int] = None  # the largest summed RSS in the bucket (None before any)
    rss_split: Optional[Rss] = None  # that RSS by class
    resident: int = 0  # bytes that became resident in the bucket
    resident_split: Rss = field(default_factory=Rss)
    calls: int = 0


@dataclass(frozen=True)
class Grower:
    """A stack (named by its leaf-most own frames) and the held bytes it added."""

    stack: str
    nbytes: int
    parts: List[str] = field(default_factory=list)  # `stack` split: the names it joins


@dataclass
class Timeline:
    buckets: List[Bucket]
    interval_s: float
    pid: Optional[int] = None
    command: str = ""  # what was recorded (meta command_line)
    taken: int = 0
    given: int = 0
    calls: int = 0
    held_at_exit: int = 0  # what `flame --retained` totals
    attached: bool = False  # -p: held_at_exit is what was held at the end of tracing
    peak_rss: Optional[int] = None  # exact
    peak_rss_split: Optional[Rss] = None
    peak_rss_s: Optional[float] = None  # when, in seconds into the run
    resident: int = 0  # bytes made resident over the run
    resident_split: Rss = field(default_factory=Rss)
    growth_bucket: Optional[int] = None  # index of the bucket where held grew most
    growth: int = 0  # how much held grew in it
    growers: List[Grower] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.calls == 0 and self.peak_rss is None and self.resident == 0


class Axis:
    """Maps ts_ns to a bucket index; times outside the run go to the first or last."""

    def __init__(self, origin_ns: int, width_ns: int, count: int) -> None:
        self.origin, self.width, self.count = origin_ns, width_ns, count

    def index(self, ts_ns: int) -> int:
        return min(max((ts_ns - self.origin) // self.width, 0), self.count - 1)

    def sql(self) -> str:
        """index() in SQL, of a column named by {ts}."""
        return (f"MIN(MAX(({{ts}} - {self.origin}) / {self.width}, 0), {self.count - 1})")

    def buckets(self) -> List[Bucket]:
        w = self.width / 1e9
        return [Bucket(round(i * w, 9), round((i + 1) * w, 9)) for i in range(self.count)]


def nice_interval(duration_s: float, buckets: int = DEFAULT_BUCKETS) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k seconds that covers the run in `buckets`."""
    want = max(duration_s / buckets, 1e-3)
    exp = math.floor(math.log10(want))
    for k in (exp, exp + 1):
        for step in NICE_STEPS:
            if step * 10**k >= want * (1 - 1e-9):
                return round(step * 10**k, 9)
    return 10.0 ** (exp + 1)


def run_end_ns(rec: Recording, times: Iterable[int], origin: int) -> int:
    """The end of the run: meta end_ns, or the last event or RSS record if later."""
    end = rec.meta().end_ns
    last = max(times, default=origin)
    return max(end, last) if end is not None else last


def make_axis(rec: Recording, interval_s: Optional[float], times: Sequence[int]) -> Axis:
    origin = run_start_ns(rec)
    duration_ns = max(run_end_ns(rec, times, origin) - origin, 0)
    if interval_s is not None and interval_s <= 0:
        raise UsageError(f"--interval must be more than 0 seconds, not {interval_s:g}")
    width = max(int((interval_s or nice_interval(duration_ns / 1e9)) * 1e9), 1)
    count = max(math.ceil(duration_ns / width), 1)
    if count > MAX_BUCKETS:
        raise UsageError(f"--interval {interval_s:g} makes {count:,} buckets of a "
                         f"{duration_ns / 1e9:.1f} s run; the most is {MAX_BUCKETS:,}")
    return Axis(origin, width, count)


def fill_buckets(rec: Recording, lifetimes: Lifetimes, axis: Axis, buckets: List[Bucket],
                 pid: Optional[int]) -> None:
    """Fill taken, calls (events summed in SQLite), given back and held (the lifetimes'
    changes per bucket, added up)."""
    index = axis.sql()
    for i, calls, taken in rec.sums_by_bucket(index, pid):
        buckets[i].calls, buckets[i].taken = calls, taken
    change, given = lifetimes.per_bucket(index, pid)
    for i, nbytes in given.items():
        if i is not None:  # no end time (a piece of a malformed file)
            buckets[i].given = nbytes
    held = 0
    for i, bucket in enumerate(buckets):
        held += change.get(i, 0)
        bucket.held = held


def add_rss(rec: Recording, buckets: List[Bucket], axis: Axis, pid: Optional[int],
            peak: Optional[Peak]) -> None:
    """Each bucket's largest RSS: the value it starts with (the last before it) or a point
    in it, and the exact peak in its bucket."""
    by_bucket = rss_by_bucket(rec, axis.sql(), pid)
    current: Optional[Rss] = None
    for index, b in enumerate(buckets):
        best = current
        if index in by_bucket:
            top, current = by_bucket[index]
            best = top if best is None or top.total > best.total else best
        if best is not None:
            b.rss, b.rss_split = best.total, best
    if peak is not None and peak.ts_ns is not None:
        b = buckets[axis.index(peak.ts_ns)]
        if b.rss is None or peak.total >= b.rss:
            b.rss, b.rss_split = peak.total, peak.rss


def add_resident(rec: Recording, buckets: List[Bucket], axis: Axis,
                 pid: Optional[int]) -> None:
    """The bytes made resident in each bucket, by class (summed in SQLite)."""
    for index, code, _nbytes, positive in rec.resident_sums(axis.sql(), pid):
        name = CLASS_NAME.get(code)
        if name is None or positive <= 0:
            continue
        b = buckets[index]
        b.resident += positive
        b.resident_split = b.resident_split + Rss(**{name: positive})


def most_growth(buckets: Sequence[Bucket]) -> Tuple[Optional[int], int]:
    """(index, bytes) of the bucket where held grew most; (None, 0) if it never grew."""
    best, grew, before = None, 0, 0
    for i, b in enumerate(buckets):
        if b.held - before > grew:
            best, grew = i, b.held - before
        before = b.held
    return best, grew


def own_frames(frames: Sequence[Frame]) -> str:
    """The leaf-most frames of the program itself (not of a shared library), root first,
    joined like folded names; ";..." marks library frames below them (malloc...)."""
    return ";".join(own_frame_parts(frames))


def own_frame_parts(frames: Sequence[Frame]) -> List[str]:
    """own_frames() as a list of names ("..." last for the library frames below)."""
    if not frames:
        return [NO_STACK]
    own = own_positions(frames)
    if not own:
        return [f.name or UNKNOWN_FRAME for f in reversed(frames[:OWN_FRAMES])]
    picked = [frames[i].name or UNKNOWN_FRAME for i in own[:OWN_FRAMES]]
    return list(reversed(picked)) + (["..."] if own[0] > 0 else [])


def growers(rec: Recording, lifetimes: Lifetimes, axis: Axis, index: int,
            pid: Optional[int]) -> List[Grower]:
    """The stacks whose held bytes grew most during bucket `index`: what the live images
    held at its start and at its end, by stack."""
    stacks = rec.stacks()
    named: Dict[Optional[int], List[str]] = {}  # only the stacks that held bytes: named once
    parts: Dict[str, List[str]] = {}

    def held_at(moment: Optional[int]) -> Dict[str, int]:
        out: Dict[str, int] = {}
        if moment is None:
            return out
        for stack_id, nbytes in lifetimes.held_by_stack(pid, moment):
            if stack_id not in named:
                named[stack_id] = own_frame_parts(stacks[stack_id]) if stack_id in stacks \
                    else [NO_STACK]
                parts.setdefault(";".join(named[stack_id]), named[stack_id])
            label = ";".join(named[stack_id])
            out[label] = out.get(label, 0) + nbytes
        return out

    # Times before the first bucket and after the last are counted in them (Axis.index).
    start = axis.origin + index * axis.width - 1 if index > 0 else None
    end = axis.origin + (index + 1) * axis.width - 1 if index < axis.count - 1 else END_OF_TIME
    before, after = held_at(start), held_at(end)
    grown = [Grower(s, n - before.get(s, 0), parts.get(s, [s])) for s, n in after.items()
             if n > before.get(s, 0)]
    return sorted(grown, key=lambda g: (-g.nbytes, g.stack))[:TOP_GROWERS]


def timeline(rec: Recording, interval_s: Optional[float] = None,
             pid: Optional[int] = None) -> Timeline:
    """The recording (or one pid of it) in time buckets."""
    sums = stored_sums(rec)  # the recording's own: its last event without reading them all
    last = sums.last_event_ns(pid) if sums is not None else rec.last_event_ns(pid)
    times = [t for t in (last, rec.last_rss_ns(pid)) if t is not None]
    axis = make_axis(rec, interval_s, times)
    buckets = axis.buckets()
    with Lifetimes(rec) as lifetimes:
        fill_buckets(rec, lifetimes, axis, buckets, pid)
        index, grew = most_growth(buckets)
        grown = growers(rec, lifetimes, axis, index, pid) if index is not None else []
        held_at_exit = lifetimes.held_at_exit(pid)
    peak = run_peak(rec, pid)
    add_rss(rec, buckets, axis, pid, peak)
    add_resident(rec, buckets, axis, pid)
    return Timeline(
        buckets, axis.width / 1e9, pid, rec.meta().command_line,
        taken=sum(b.taken for b in buckets), given=sum(b.given for b in buckets),
        calls=sum(b.calls for b in buckets), held_at_exit=held_at_exit,
        peak_rss=peak.total if peak else None, peak_rss_split=peak.rss if peak else None,
        peak_rss_s=(peak.ts_ns - axis.origin) / 1e9 if peak and peak.ts_ns else None,
        resident=sum(b.resident for b in buckets),
        resident_split=sum((b.resident_split for b in buckets), Rss()),
        growth_bucket=index, growth=grew, growers=grown,
        attached=rec.meta().attached)
