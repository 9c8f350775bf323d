"""Every option a user can get wrong is one line on stderr and exit code 2, never a traceback;
`-p` says why a number is no pid (tests/host: why a process cannot be traced); output cut
short by the reader (`| head`) is success."""

from __future__ import annotations

import os
import subprocess

import pytest

from heaptrace.analysis.replay import DEFAULT_PAGE_SIZE as PAGE
from tests.helpers.cli import argv, heaptrace


@pytest.fixture
def recording(synth):
    synth.process(1, "prog")
    synth.mmap(1_000_000, 0x10000, 64 * PAGE, stack=["main", "grow"])
    synth.munmap(2_000_000, 0x10000, 8 * PAGE)
    synth.open().close()
    return synth.writer.path


def one_line_usage_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("heaptrace: error: ")
    for word in words:
        assert word in proc.stderr


@pytest.mark.parametrize("args, words", [
    (("timeline", "--interval", "1e-12"), ("--interval", "at least")),
    (("timeline", "--interval", "nan"), ("--interval", "finite")),
    (("timeline", "--interval", "inf"), ("--interval", "finite")),
    (("timeline", "--interval", "-1"), ("--interval",)),
    (("timeline", "--pid", "0"), ("--pid",)),
    (("flame", "--from", "nan"), ("--from", "finite")),
    (("flame", "--to", "-inf"), ("--to", "finite")),
    (("flame", "--fontsize", "inf"), ("--fontsize", "finite")),
    (("flame", "--fontsize", "1e9"), ("--fontsize", "at most")),
    (("flame", "--minwidth", "nan"), ("--minwidth",)),
    (("flame", "--minwidth", "-3%"), ("--minwidth",)),
    (("flame", "--width", "99999999999"), ("--width",)),
    (("flame", "--pid", "-5"), ("--pid",)),
    (("diff", "--from", "nan"), ("--from",)),
    (("report", "--pid", "-1"), ("--pid",)),
])
def test_bad_numbers_are_one_line_usage_errors(recording, args, words):
    command, *options = args
    extra = [recording] if command == "diff" else []
    one_line_usage_error(heaptrace(command, recording, *extra, *options), *words)


def test_a_directory_as_output_is_refused_before_anything_runs(tmp_path):
    one_line_usage_error(heaptrace("run", "-o", str(tmp_path), "--", "true"), "is a directory")
    folded = tmp_path / "in.folded"
    folded.write_text("a;b 1\n")
    one_line_usage_error(heaptrace("import", "folded", str(folded), "-o", str(tmp_path)),
                         "is a directory")


def test_an_empty_command_gets_a_message(tmp_path):
    proc = heaptrace("run", "-o", str(tmp_path / "r.db"), "--", "")
    one_line_usage_error(proc, "the command to run is an empty string")
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("pid, reason", [
    ("0", "PID 0 is the kernel's idle task, not a process"),
    ("-3", "a PID is a positive number, not -3"),
])
def test_pids_that_are_no_process_are_refused_with_the_reason(tmp_path, pid, reason):
    proc = heaptrace("run", "-o", str(tmp_path / "r.db"), "-p", pid)
    one_line_usage_error(proc, reason)
    assert "tracing" not in proc.stderr  # refused before the start line
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("command", [("histogram",), ("report",), ("flame",), ("timeline",),
                                     ("flame", "--folded")])
def test_a_reader_that_goes_away_is_not_an_error(recording, command):
    read, write = os.pipe()
    os.close(read)  # `heaptrace ... | head -0`: every write fails with EPIPE
    try:
        proc = subprocess.run(argv(*command, recording), stdout=write,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
