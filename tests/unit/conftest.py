"""Fixtures shared by the flame graph tests."""

from __future__ import annotations

import pytest

from heaptrace.recording import Recording
from tests.helpers.synth import Synth


@pytest.fixture
def synth(tmp_path):
    """A Synth writing tmp_path/rec.db; `synth.open()` closes it and returns the reader."""
    s = Synth(str(tmp_path / "rec.db"))

    def open_recording() -> Recording:
        s.close()
        return Recording(str(tmp_path / "rec.db"))

    s.open = open_recording
    return s
