"""`heaptrace symbolize` refuses what is not a recording (it names a real recording's stacks
in the host tier, where the captured stack's libc is at hand)."""

from __future__ import annotations

from tests.helpers.cli import heaptrace


def test_symbolize_refuses_what_is_not_a_recording(tmp_path):
    bogus = tmp_path / "x.db"
    bogus.write_text("hello")
    proc = heaptrace("symbolize", str(bogus))
    assert proc.returncode == 1
    assert "not a heaptrace recording" in proc.stderr
