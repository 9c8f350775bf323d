"""The DTrace backend, tested through a stand-in `dtrace` that prints recorded illumos output
(there is no DTrace on Linux): the argv it gets, the recording it leaves, drops, exit status."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest

from heaptrace.backends.dtrace import SCRIPT, SIGNALS, dtrace_argv, record_with_dtrace
from heaptrace.backends.probefiles import probe_path
from heaptrace.errors import PrivilegeError, UsageError
from heaptrace.recording import Recording
from tests.helpers.importing import data

FAKE = """#!{python}
import json, subprocess, sys
argv = sys.argv[1:]
json.dump(argv, open({argv_file!r}, "w"))
out = argv[argv.index("-o") + 1]
sys.stderr.write({stderr!r})
if {events!r}:
    open(out, "a").write(open({events!r}).read())
    subprocess.run(argv[argv.index("-c") + 1].split())
sys.exit({rc})
"""


def fake_dtrace(tmp_path, events, stderr="", rc=0):
    path = tmp_path / "dtrace"
    path.write_text(FAKE.format(python=sys.executable, argv_file=str(tmp_path / "argv.json"),
                                stderr=stderr, events=events, rc=rc))
    path.chmod(0o755)
    return str(path)


def test_records_events_totals_processes_and_drops(tmp_path):
    drops = "dtrace: 5 drops on CPU 1\ndtrace: 1 drop on CPU 0\nhello from the target\n"
    dtrace = fake_dtrace(tmp_path, data("dtrace", "events-illumos.txt"), drops)
    out, err = str(tmp_path / "run.db"), io.StringIO()
    status = record_with_dtrace(["true", "-x"], out, dtrace=dtrace, stderr=err)
    assert status == 3  # the target's own exit code (proc exitcode 4242 3)
    assert err.getvalue() == drops  # dtrace's (and the target's) stderr is passed through
    with Recording(out) as rec:
        meta, totals = rec.meta(), rec.totals()
        events = list(rec.events())
        processes = rec.processes()
    assert meta.lost_events == 6 and meta.source == "dtrace" and meta.complete
    assert (totals["brk"].calls, totals["brk"].failed, totals["brk"].bytes) == (6, 1, 131072)
    assert sum(totals["brk"].buckets.values()) == 3
    brk = [e for e in events if e.kind == "brk" and e.ret >= 0]
    assert sum(e.size for e in brk) == totals["brk"].bytes  # growth rebuilt in time order
    assert [e.ret for e in events if e.ret < 0] == [-12]  # ENOMEM
    assert [(p.pid, p.ppid, p.comm, p.exit_code) for p in processes] == [(4242, None, None, 3),
                                                             (4243, 4242, "gzip", 0)]


def test_dtrace_argv_runs_the_shipped_script_without_a_shell(tmp_path):
    dtrace = fake_dtrace(tmp_path, data("dtrace", "events-illumos.txt"))
    record_with_dtrace(["true", "a", "b"], str(tmp_path / "r.db"), dtrace=dtrace,
                       stderr=io.StringIO())
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:4] == ["-x", "evaltime=exec", "-x", "bufsize=16m"]
    scripts = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-s"]
    assert scripts == [str(probe_path(SCRIPT)), str(probe_path(SIGNALS))]
    assert argv[-2:] == ["-c", "true a b"]
    assert os.path.isfile(probe_path(SCRIPT))


def test_arguments_with_blanks_are_refused():
    with pytest.raises(UsageError, match="blanks"):
        dtrace_argv("dtrace", ["echo", "two words"], "/tmp/x")


def test_privilege_failure_is_one_clear_error(tmp_path):
    dtrace = fake_dtrace(tmp_path, "", "dtrace: failed to initialize dtrace: DTrace requires "
                         "additional privileges\n", rc=1)
    with pytest.raises(PrivilegeError, match="requires additional privileges"):
        record_with_dtrace(["true"], str(tmp_path / "r.db"), dtrace=dtrace,
                           stderr=io.StringIO())
    assert not os.path.exists(tmp_path / "r.db")


def test_every_probe_has_a_run_line_and_uses_target():
    probes = os.path.dirname(probe_path(SCRIPT))
    names = sorted(n for n in os.listdir(probes) if n.endswith(".d"))
    assert {"brkquantize.d", "brkbytes.d", "mmapbytes.d", "munmapbytes.d", "mremapbytes.d",
            SCRIPT, SIGNALS} <= set(names)
    for name in names:
        text = (probe_path(SCRIPT).parent / name).read_text()
        runs = [line for line in text.splitlines() if "dtrace -x evaltime=exec -qs" in line]
        assert any(f"s {name} " in line and " -c " in line for line in runs), name
        assert "$target" in text
        assert "-o appends" in text or name == SIGNALS, name
    events = (probe_path(SCRIPT).parent / SCRIPT).read_text()
    # DTrace for Linux cannot enable proc:::signal-send without kprobes and then refuses
    # the whole script: heaptrace-events.d must not use it.
    assert "signal-send" not in events.split("*/", 1)[1]
