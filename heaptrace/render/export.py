"""`heaptrace export`: samples written in the format another tool reads (pprof, speedscope),
to stdout or to a file that appears whole or not at all."""

from __future__ import annotations

import io
import sys
from typing import BinaryIO, Callable, Dict

from heaptrace.analysis.samples import Samples
from heaptrace.errors import UsageError
from heaptrace.recording import APPLICATION_ID
from heaptrace.recording.files import NOT_A_RECORDING, write_file
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
    final name and renamed into place (recording/files.py); a heaptrace recording, a link, a
    directory or a device is never overwritten."""
    write = WRITERS[fmt]
    if output == "-":
        if fmt == "pprof" and sys.stdout.isatty():
            raise UsageError("a pprof profile is binary: give -o FILE or redirect stdout")
        write(samples, name, sys.stdout.buffer)
        sys.stdout.flush()
        return
    write_file(output, lambda stream: write(samples, name, stream), NOT_A_RECORDING,
               f"a {fmt} export", APPLICATION_ID)
