"""What the tests of every tier share, imported as `tests.helpers.NAME`:

    cli            running heaptrace as a user does (the one way tests invoke it)
    synth          synthetic recordings written event by event
    fullrecording  a small recording with every table filled, as a run writes one
    exportdata     the synthetic recording the export tests add up
    importing      the importers' data files and the folding they are compared with
    strace_oracle  the same program under strace: what heaptrace's totals must be
    programs       the C/C++ test programs of tests/programs, compiled on demand
    stackfixtures  the gdb-captured stacks of tests/data/stacks(-aarch64); stackcapture
                   captures them again
    ehframe        hand-built .eh_frame sections, well-formed or broken
    pprof_oracle   protoc and `go tool pprof` reading a profile; speedscope_app: the app
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
DATA = TESTS / "data"
