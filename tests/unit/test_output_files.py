"""Every file heaptrace writes is created under a private name with O_EXCL|O_NOFOLLOW and
renamed over the output at the end: never written through a link, into a directory, a FIFO
or a device, nor over a file that is not a recording (without --force)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import List

import pytest

from heaptrace.errors import HeaptraceError, RecordingError
from heaptrace.events import Event
from heaptrace.importers import import_file
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.recording.files import ANY_FILE, NEVER, RECORDING, write_text
from heaptrace.render.palettes import read_palette_map, write_palette_map
from tests.helpers.cli import heaptrace


def entries(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


def recording(path: Path, note: str = "old") -> bytes:
    with RecordingWriter(str(path)) as w:
        w.set_meta(command_line=note)
    return path.read_bytes()


@pytest.mark.parametrize("policy", [NEVER, RECORDING, ANY_FILE])
def test_a_dangling_link_at_the_output_is_refused_and_never_followed(tmp_path, policy):
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    (tmp_path / "heaptrace.db").symlink_to(victim)
    with pytest.raises(RecordingError, match="is a symbolic link"):
        RecordingWriter(str(tmp_path / "heaptrace.db"), policy)
    assert not victim.exists() and entries(tmp_path) == ["elsewhere", "heaptrace.db"]


def test_a_link_to_a_recording_is_refused_and_the_recording_untouched(tmp_path):
    target = tmp_path / "real.db"
    before = recording(target)
    (tmp_path / "link.db").symlink_to(target)
    with pytest.raises(RecordingError, match="symbolic link"):
        RecordingWriter(str(tmp_path / "link.db"), ANY_FILE)
    assert target.read_bytes() == before


def test_directories_and_fifos_are_refused_without_blocking(tmp_path):
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(RecordingError, match="is a directory"):
        RecordingWriter(str(tmp_path / "dir.db"), ANY_FILE)
    os.mkfifo(tmp_path / "fifo.db")
    with pytest.raises(RecordingError, match="not a regular file"):
        RecordingWriter(str(tmp_path / "fifo.db"), ANY_FILE)
    with pytest.raises(RecordingError, match="is a directory"):
        RecordingWriter(str(tmp_path) + "/", ANY_FILE)
    assert entries(tmp_path) == ["dir.db", "fifo.db"]


def test_a_file_that_is_not_a_recording_needs_force(tmp_path):
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n")
    for policy in (NEVER, RECORDING):
        with pytest.raises(RecordingError):
            RecordingWriter(str(source), policy)
    assert source.read_text() == "int main(void) { return 0; }\n"
    RecordingWriter(str(source), ANY_FILE).close()
    with Recording(str(source)):
        pass


def test_a_previous_recording_is_replaced_only_as_the_policy_says(tmp_path):
    out = tmp_path / "r.db"
    before = recording(out)
    with pytest.raises(RecordingError, match="will not overwrite without --force"):
        RecordingWriter(str(out), NEVER)
    w = RecordingWriter(str(out), RECORDING)
    assert out.read_bytes() == before  # untouched until the new one is published
    w.set_meta(command_line="new")
    w.close()
    with Recording(str(out)) as rec:
        assert rec.meta().command_line == "new"
    assert entries(tmp_path) == ["r.db"]


def test_discarding_leaves_the_previous_recording_and_no_private_file(tmp_path):
    out = tmp_path / "r.db"
    before = recording(out)
    w = RecordingWriter(str(out), RECORDING)
    w.add_events([Event("brk", 4096)])
    w.commit()
    w.discard()
    assert out.read_bytes() == before and entries(tmp_path) == ["r.db"]
    # an exception inside `with` discards as well
    with pytest.raises(ValueError), RecordingWriter(str(out), RECORDING):
        raise ValueError
    assert out.read_bytes() == before and entries(tmp_path) == ["r.db"]


def test_the_private_file_is_new_hidden_and_private(tmp_path):
    w = RecordingWriter(str(tmp_path / "r.db"))
    private, journal = entries(tmp_path)  # SQLite's journal stays open beside it
    assert private.startswith(".r.db.") and private.endswith(".tmp")
    assert journal == private + "-journal"
    assert stat.S_IMODE(os.stat(tmp_path / private).st_mode) == 0o600
    w.close()
    assert entries(tmp_path) == ["r.db"]
    assert stat.S_IMODE(os.stat(tmp_path / "r.db").st_mode) == 0o600


def test_a_second_writer_on_a_recording_being_written_is_refused(tmp_path):
    out = tmp_path / "r.db"
    first = RecordingWriter(str(out), RECORDING)
    first.publish()
    with pytest.raises(RecordingError, match="being recorded by another heaptrace run"):
        RecordingWriter(str(out), ANY_FILE)
    first.add_events([Event("mmap", 8192)])
    first.close()
    with Recording(str(out)) as rec:
        assert rec.event_count() == 1
    RecordingWriter(str(out), RECORDING).close()  # once it is finished, it may be replaced


def test_a_second_writer_that_publishes_last_is_refused_and_leaves_the_first(tmp_path):
    out = tmp_path / "r.db"
    first = RecordingWriter(str(out), RECORDING)
    second = RecordingWriter(str(out), RECORDING)  # both start before either publishes
    first.publish()
    with pytest.raises(RecordingError, match="being recorded by another heaptrace run"):
        second.publish()
    second.discard()
    first.add_events([Event("mmap", 8192)])
    first.close()
    with Recording(str(out)) as rec:
        assert rec.event_count() == 1
    assert entries(tmp_path) == ["r.db"]


def test_a_planted_journal_link_is_removed_not_followed(tmp_path):
    victim = tmp_path / "victim"
    out = tmp_path / "r.db"
    (tmp_path / "r.db-journal").symlink_to(victim)
    with RecordingWriter(str(out)) as w:
        w.publish()
        w.add_events([Event("brk", 4096)])
    assert not victim.exists()
    assert entries(tmp_path) == ["r.db"]
    with Recording(str(out)) as rec:
        assert rec.event_count() == 1


def test_the_journal_of_a_replaced_recording_is_not_applied_to_the_new_one(tmp_path):
    out = tmp_path / "r.db"
    recording(out)
    (tmp_path / "r.db-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + b"\0" * 504)
    with RecordingWriter(str(out), RECORDING) as w:
        w.set_meta(command_line="new")
    with Recording(str(out)) as rec:
        assert rec.meta().command_line == "new"


def test_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(RecordingError, match="cannot write .*: No such file or directory"):
        RecordingWriter(str(tmp_path / "nowhere" / "r.db"))


def test_import_never_writes_through_a_link(tmp_path):
    folded = tmp_path / "in.folded"
    folded.write_text("main;malloc;brk 4096\n")
    victim = tmp_path / "victim"
    (tmp_path / "out.db").symlink_to(victim)
    for force in (False, True):
        with pytest.raises(RecordingError, match="symbolic link"):
            import_file("folded", str(folded), str(tmp_path / "out.db"), force=force)
    assert not victim.exists()
    assert entries(tmp_path) == ["in.folded", "out.db"]


def test_import_over_an_unwritable_directory_is_one_line(tmp_path):
    folded = tmp_path / "in.folded"
    folded.write_text("main;malloc;brk 4096\n")
    proc = heaptrace("import", "folded", str(folded), "-o", "/proc/x.db")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("heaptrace: error: cannot create a file beside /proc/x.db")


def test_the_palette_map_is_replaced_never_written_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    link = tmp_path / "palette.map"
    link.symlink_to(victim)
    with pytest.raises(HeaptraceError, match="symbolic link"):
        write_palette_map(str(link), {"main": "rgb(1,2,3)"})
    with pytest.raises(HeaptraceError, match="symbolic link"):
        read_palette_map(str(link))
    assert not victim.exists()
    real = tmp_path / "real.map"
    real.write_text("old->rgb(9,9,9)\n")
    write_palette_map(str(real), {"main": "rgb(1,2,3)", "a\nb": "rgb(0,0,0)"})
    assert read_palette_map(str(real)) == {"main": "rgb(1,2,3)"}
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o666 & ~_umask()


def test_reading_a_palette_map_fifo_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "palette.map")
    with pytest.raises(HeaptraceError, match="not a regular file"):
        read_palette_map(str(tmp_path / "palette.map"))


def test_write_text_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(HeaptraceError, match="not a regular file"):
        write_text(str(tmp_path / "fifo"), "x")
    assert entries(tmp_path) == ["fifo"]


def test_an_export_is_written_like_every_output(tmp_path):
    rec = tmp_path / "r.db"
    before = recording(rec)
    victim = tmp_path / "victim"
    (tmp_path / "link.pb.gz").symlink_to(victim)
    os.mkfifo(tmp_path / "fifo")
    for out, says in (("link.pb.gz", "symbolic link"), ("fifo", "not a regular file"),
                      ("r.db", "is a heaptrace recording: will not overwrite it")):
        proc = heaptrace("export", "speedscope", str(rec), "-o", str(tmp_path / out))
        assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and says in proc.stderr, (
            out, proc.stderr)
    assert not victim.exists() and rec.read_bytes() == before
    assert entries(tmp_path) == ["fifo", "link.pb.gz", "r.db"]
    other = tmp_path / "old.json"
    other.write_text("replaced by the export")
    heaptrace("export", "speedscope", str(rec), "-o", str(other), check=True)
    assert other.read_text().startswith("{") and stat.S_IMODE(os.stat(other).st_mode) == (
        0o666 & ~_umask())
    assert entries(tmp_path) == ["fifo", "link.pb.gz", "old.json", "r.db"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_last_commit_leaves_no_private_file(tmp_path, monkeypatch):
    out = tmp_path / "r.db"
    before = recording(out)
    w = RecordingWriter(str(out), RECORDING)
    w.add_events([Event("brk", 4096)])

    def full(self) -> None:
        self._failed(sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(RecordingWriter, "commit", full)
    with pytest.raises(RecordingError, match="disk is full"):
        w.close()
    assert out.read_bytes() == before and entries(tmp_path) == ["r.db"]
