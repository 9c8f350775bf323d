"""Importers: DTrace aggregation output, `perf script` output and folded stacks, each into
the same recording format as `heaptrace run` writes."""

from __future__ import annotations

from typing import List, Optional

from heaptrace.errors import ImportFormatError
from heaptrace.formats.imported import Imported, write_recording
from heaptrace.formats.textinput import fits
from heaptrace.importers import common, dtrace, folded, perf
from heaptrace.recording.files import ANY_FILE, NEVER

FORMATS = ("dtrace", "perf", "folded")


def import_file(fmt: str, path: str, output: str, kind: Optional[str] = None,
                counts: str = "bytes", column: int = 2, force: bool = False) -> List[str]:
    """Parse `path` completely, then write the recording `output` (atomically); returns
    notes for the user on what the input could not say."""
    common.check_kind(kind)
    if fmt == "dtrace":
        imported = dtrace.parse(path, kind, counts)
    elif fmt == "perf":
        imported = perf.parse(path, kind)
    else:
        imported = folded.parse(path, kind, counts, column)
    imported.meta.imported_from = path
    check_fits(imported, path)
    write_recording(imported, output, ANY_FILE if force else NEVER)
    return imported.notes


def check_fits(imported: Imported, path: str) -> None:
    """Each number was checked on its line; their sums must fit the recording too."""
    for kind, t in imported.totals.items():
        for name in ("calls", "failed", "bytes", "released"):
            if not fits(getattr(t, name)):
                raise ImportFormatError(path, 0, f"the {kind} {name} add up to "
                                        f"{getattr(t, name):,}, more than a recording holds "
                                        "(2^63 - 1)")
