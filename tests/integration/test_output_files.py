"""heaptrace run and import as root in directories other users control: planted links, devices,
failed starts, two runs on one output, ownership under sudo. Unprivileged actors run as
nobody through setpriv."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from heaptrace.recording import Recording
from tests.helpers.cli import argv, heaptrace, histogram_json

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
FOLDED = "main;grow;malloc;brk 4096\n"


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory owned by nobody, reachable by nobody (pytest's tmp_path is root's 0700)."""
    top = Path(tempfile.mkdtemp(prefix="heaptrace-nobody-"))
    os.chmod(top, 0o755)
    work = top / "project"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)
    try:
        yield work
    finally:
        shutil.rmtree(top)


def as_nobody(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*AS_NOBODY, *argv], capture_output=True, text=True, **kwargs)


def entries(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


def folded_input(directory: Path) -> Path:
    path = directory / "in.folded"
    path.write_text(FOLDED)
    return path


def test_links_planted_by_another_user_are_never_followed(nobody_dir, tmp_path):
    victim = tmp_path / "victim"  # where root must never write
    for name in ("heaptrace.db", "heaptrace.db-journal"):
        assert as_nobody("ln", "-s", str(victim), str(nobody_dir / name)).returncode == 0
    folded = folded_input(tmp_path)
    for force in ([], ["--force"]):
        proc = heaptrace("import", "folded", str(folded), "-o", str(nobody_dir / "heaptrace.db"),
                         "--event", "brk", *force)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.endswith("heaptrace.db is a symbolic link: heaptrace does not write "
                                    "through links (remove it or choose another output)\n")
    proc = heaptrace("run", "-o", str(nobody_dir / "heaptrace.db"), "--force", "--", "true")
    assert proc.returncode == 1 and "symbolic link" in proc.stderr
    assert not victim.exists()
    assert entries(nobody_dir) == ["heaptrace.db", "heaptrace.db-journal"]


def test_a_file_swapped_for_a_link_during_the_write_is_never_followed(nobody_dir, tmp_path):
    """nobody replaces every new file in its directory by a link to the victim, as fast as it
    can, while root imports there again and again."""
    victim = tmp_path / "victim"
    planter = subprocess.Popen([*AS_NOBODY, sys.executable, "-c", f"""
import os, time
d, victim = {str(nobody_dir)!r}, {str(victim)!r}
end = time.monotonic() + 60
while time.monotonic() < end:
    for name in os.listdir(d):
        path = os.path.join(d, name)
        if os.path.islink(path) or name.endswith(".moved"):
            continue
        try:
            os.rename(path, path + ".moved")
            os.symlink(victim, path)
        except OSError:
            pass
"""])
    folded = folded_input(tmp_path)
    try:
        outcomes = []
        for i in range(40):
            proc = heaptrace("import", "folded", str(folded), "-o", str(nobody_dir / f"r{i}.db"),
                             "--event", "brk")
            assert "Traceback" not in proc.stderr
            assert proc.returncode in (0, 1), proc.stderr
            outcomes.append(proc.returncode)
    finally:
        planter.kill()
        planter.wait()
    assert not victim.exists()
    links = [p for p in nobody_dir.iterdir() if p.is_symlink()]
    assert links and all(os.lstat(p).st_uid == NOBODY for p in links)  # nobody's own links
    assert 1 in outcomes  # the planter did get in the way, and each time it was one line


def test_devices_directories_and_fifos_are_never_an_output(tmp_path):
    device = tmp_path / "null.db"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    (tmp_path / "dir.db").mkdir()
    folded = folded_input(tmp_path)
    # a directory is refused by the option itself (a usage error, before anything starts)
    for out, says, code in ((device, "not a regular file", 1), (fifo, "not a regular file", 1),
                            (tmp_path / "dir.db", "is a directory", 2)):
        for args in (["run", "-o", str(out), "--force", "--", "true"],
                     ["import", "folded", str(folded), "-o", str(out), "--force",
                      "--event", "brk"]):
            proc = heaptrace(*args, timeout=120)
            assert proc.returncode == code and says in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
    assert stat.S_ISCHR(os.stat(device).st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert entries(tmp_path) == ["dir.db", "fifo.db", "in.folded", "null.db"]


def test_a_source_file_is_not_turned_into_a_recording(tmp_path):
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n")
    proc = heaptrace("run", "-o", str(source), "--", "true")
    assert proc.returncode == 1
    assert proc.stderr.endswith(f"{source} exists and is not a heaptrace recording: will not "
                                "replace it without --force\n")
    assert source.read_text() == "int main(void) { return 0; }\n"


def test_a_failed_start_keeps_the_previous_recording(tmp_path):
    out = tmp_path / "r.db"
    proc = heaptrace("import", "folded", str(folded_input(tmp_path)), "-o", str(out),
                     "--event", "brk")
    assert proc.returncode == 0, proc.stderr
    before = out.read_bytes()
    for bad in (["--stack-bytes", "1000"], ["--buffer-mib", "3"]):
        proc = heaptrace("run", "-o", str(out), *bad, "--", "true")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert out.read_bytes() == before
    proc = heaptrace("run", "-o", str(out), "--", "no-such-command-heaptrace")
    assert proc.returncode == 127 and out.read_bytes() == before
    assert entries(tmp_path) == ["in.folded", "r.db"]


def test_ctrl_c_during_start_up_keeps_the_previous_recording(tmp_path):
    out = tmp_path / "r.db"
    assert heaptrace("import", "folded", str(folded_input(tmp_path)), "-o", str(out),
                     "--event", "brk").returncode == 0
    before = out.read_bytes()
    proc = subprocess.Popen(argv("run", "-o", str(out), "--", "true"),
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(entries(tmp_path)) < 3:  # its private file appeared: start-up is under way
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # while bcc compiles the probe
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert out.read_bytes() == before
    assert entries(tmp_path) == ["in.folded", "r.db"]


def test_two_runs_on_one_output_do_not_take_each_others_file(tmp_path, programs):
    out = tmp_path / "r.db"
    ready = tmp_path / "ready"
    first = subprocess.Popen(argv("run", "-o", str(out), "--", sys.executable, "-c",
                              f"import time; b = bytearray(4 << 20); "
                              f"open({str(ready)!r}, 'w').close(); time.sleep(3)"),
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline and first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    second = heaptrace("run", "-o", str(out), "--", "true", timeout=120)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert second.stderr.endswith(f"{out} is being recorded by another heaptrace run "
                                  "(wait for it to end or choose another output)\n")
    doc = histogram_json(out)
    assert doc["recording"]["complete"] is True and doc["recording"]["command"][0] == (
        sys.executable)
    assert entries(tmp_path) == ["r.db", "ready"]


def test_under_sudo_the_recording_is_the_invoking_users_and_private(nobody_dir, tmp_path):
    env = {**os.environ, "SUDO_UID": str(NOBODY), "SUDO_GID": str(NOBODY)}
    out = nobody_dir / "r.db"
    proc = heaptrace("run", "-o", str(out), "--", "true", env=env)
    assert proc.returncode == 0, proc.stderr
    st = os.stat(out)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o600)
    # the invoking user can read and update it (symbolize writes frames in place)
    proc = as_nobody(*argv("symbolize", str(out)), cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert as_nobody(*argv("report", str(out)), cwd="/").returncode == 0
    folded = folded_input(tmp_path)
    imported = nobody_dir / "i.db"
    assert heaptrace("import", "folded", str(folded), "-o", str(imported), "--event", "brk",
                     env=env).returncode == 0
    st = os.stat(imported)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o600)
    other = as_nobody("cat", str(tmp_path / "nothing"))  # nobody is not root: a sanity check
    assert other.returncode != 0


MANY_MAPS = ("import mmap\n"
             "for i in range(60000):\n"
             "    mmap.mmap(-1, 4096 * (i % 64 + 1)).close()\n")


def test_a_full_disk_mid_run_is_an_error_and_the_file_says_what_is_missing(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        out = small / "r.db"
        proc = heaptrace("run", "-o", str(out), "--", "/usr/bin/python3", "-c", MANY_MAPS,
                         timeout=600)
        assert proc.returncode == 1, proc.stderr
        assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"heaptrace: error: writing {out} failed: database or disk is "
                               "full; "), last
        assert "events received were written to" in last and "Wrote" not in proc.stderr
        assert "heaptrace: recording failed: writing" in proc.stderr  # said when it happened
        doc = histogram_json(out)
        meta = doc["recording"]
        assert meta["complete"] is False
        assert "database or disk is full" in meta["incomplete_reason"]
        assert meta["events_unwritten"] > 0
        with Recording(str(out)) as rec:  # what was written, and what is said to be missing
            assert rec.event_count() == meta["events_recorded"] - meta["events_unwritten"]
        # the probe's exact totals when the recording stopped: every event received and more
        calls = sum(kind["calls"] for kind in doc["events"].values())
        assert calls >= meta["events_recorded"]
        report = heaptrace("report", str(out))
        assert report.returncode == 0, report.stderr
        assert "INCOMPLETE: writing" in report.stdout and "complete, no events" not in (
            report.stdout)
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_run_killed_while_writing_leaves_a_file_every_view_reads(tmp_path):
    """SIGKILL at different moments of a run that writes all the time: every file is read
    (rolled back to its last commit when the kill came in the middle of a write)."""
    for attempt, delay in enumerate((0.5, 1.0, 1.7, 2.6)):
        out = tmp_path / f"r{attempt}.db"
        proc = subprocess.Popen(argv("run", "-o", str(out), "--", "/usr/bin/python3",
                                 "-c", "import mmap\nwhile True:\n"
                                       "    mmap.mmap(-1, 8192).close()\n"),
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while not out.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for view in (["histogram", "--json"], ["report"], ["flame", "--folded"],
                     ["timeline"]):
            result = heaptrace(*view, str(out))
            assert result.returncode == 0, (attempt, view, result.stderr)
            assert "Traceback" not in result.stderr
        assert histogram_json(out)["recording"]["complete"] is False


def test_a_reader_of_a_recording_being_written_is_told_so(tmp_path):
    out = tmp_path / "r.db"
    proc = subprocess.Popen(argv("run", "-o", str(out), "--", "/usr/bin/python3", "-c",
                             "import time; time.sleep(4)"), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not out.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    reader = heaptrace("report", str(out))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert reader.returncode == 1
    assert reader.stderr == (f"heaptrace: error: {out} is locked by another process (a heaptrace "
                             "run still recording it?) (wait for it to finish)\n")
    assert heaptrace("report", str(out)).returncode == 0
