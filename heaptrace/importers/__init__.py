"""Importers: DTrace aggregation output, `perf script` output and folded stacks, each into
the same recording format as `heaptrace run` writes."""

from __future__ import annotations

from typing import Optional

from heaptrace.formats.imported import write_recording
from heaptrace.importers import common, dtrace, folded, perf

FORMATS = ("dtrace", "perf", "folded")


def import_file(fmt: str, path: str, output: str, kind: Optional[str] = None,
                counts: str = "bytes", column: int = 2, force: bool = False) -> None:
    """Parse `path` completely, then write the recording `output` (atomically)."""
    common.check_kind(kind)
    if fmt == "dtrace":
        imported = dtrace.parse(path, kind, counts)
    elif fmt == "perf":
        imported = perf.parse(path, kind)
    else:
        imported = folded.parse(path, kind, counts, column)
    imported.meta["imported_from"] = path
    write_recording(imported, output, force)
