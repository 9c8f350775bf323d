"""`heaptrace export`: samples written in the format another tool reads (pprof, speedscope),
to stdout or to a file that appears whole or not at all."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from typing import BinaryIO, Callable, Dict

from heaptrace.analysis.profiles import is_recording
from heaptrace.analysis.samples import Samples
from heaptrace.errors import HeaptraceError, UsageError
from heaptrace.render import pprof, speedscope


def _speedscope(samples: Samples, name: str, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    speedscope.write(samples, name, text)
    text.detach()


def _pprof(samples: Samples, name: str, out: BinaryIO) -> None:
    pprof.write(samples, out)


WRITERS: Dict[str, Callable[[Samples, str, BinaryIO], None]] = {
    "pprof": _pprof,
    "speedscope": _speedscope,
}
FORMATS = tuple(WRITERS)
WITH_LINES = {"pprof"}  # the formats that carry source lines (speedscope's frames do not)


def export(fmt: str, samples: Samples, name: str, output: str) -> None:
    """Write `samples` as `fmt` to `output` ("-": stdout). A file is written beside its
    final name and renamed into place; a heaptrace recording is never overwritten."""
    write = WRITERS[fmt]
    if output == "-":
        if fmt == "pprof" and sys.stdout.isatty():
            raise UsageError("a pprof profile is binary: give -o FILE or redirect stdout")
        write(samples, name, sys.stdout.buffer)
        sys.stdout.flush()
        return
    if os.path.isdir(output):
        raise UsageError(f"{output} is a directory")
    if os.path.isfile(output) and is_recording(output):
        raise UsageError(f"{output} is a heaptrace recording: will not overwrite it with an export")
    directory = os.path.dirname(os.path.abspath(output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".heaptrace-export-", dir=directory)
    except OSError as exc:
        raise HeaptraceError(f"cannot write {output}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            write(samples, name, out)
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would have made it, not mkstemp's 0600
        os.replace(tmp, output)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError):
            raise HeaptraceError(f"cannot write {output}: {exc.strerror}") from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
