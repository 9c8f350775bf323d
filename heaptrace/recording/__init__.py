"""The recording file: one SQLite database, the single owner of heaptrace's on-disk format.

Every source (eBPF, DTrace, imports) writes the same tables and the same typed run metadata, so
analysis and rendering never care where a recording came from. docs/recording.md describes
the format; files.py how every output file is created.
"""

from heaptrace.recording.meta import RunMeta
from heaptrace.recording.reader import DEFAULT_PATH, Recording
from heaptrace.recording.rows import (
    RecordedMapping,
    RecordedProcess,
    RecordedRss,
    RecordedStack,
    pack_ips,
    unpack_ips,
)
from heaptrace.recording.schema import APPLICATION_ID, FORMAT_VERSION
from heaptrace.recording.writer import EVENT_COLUMNS, RecordingWriteError, RecordingWriter

__all__ = [
    "APPLICATION_ID", "DEFAULT_PATH", "EVENT_COLUMNS", "FORMAT_VERSION", "RecordedMapping",
    "RecordedProcess", "RecordedRss", "RecordedStack", "Recording", "RecordingWriteError",
    "RecordingWriter", "RunMeta", "pack_ips", "unpack_ips",
]
