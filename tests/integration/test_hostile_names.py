"""Names a traced program controls (its file name and so its comm and command line, the
path of a library it maps, the symbols in it) never reach the viewer's terminal as escape
sequences: OSC 52 would write the clipboard, OSC 0 the window title, ESC [2J clear the
screen. Every text output shows them escaped; JSON keeps them exact."""

from __future__ import annotations

import json

from tests.helpers.cli import heaptrace
from tests.helpers.programs import compile_own as cc

SYMBOL = "\x1b]52;c;cHduZWQ=\x07grow\x1b[2J"  # the function's name in evil_lib.c
RAW = ("\x1b", "\x07", "\x9b")


def test_escape_sequences_in_names_are_shown_escaped(tmp_path):
    lib = cc("evil_lib.c", tmp_path / "\x1b[31mlib\x07.so", "-shared", "-fPIC")
    program = cc("evil_main.c", tmp_path / "\x1b]0;pwn\x07", "-ldl")
    db = tmp_path / "r.db"
    run = heaptrace("run", "-o", str(db), "--", str(program), str(lib))
    assert run.returncode == 0, run.stderr
    # The truth, exactly as recorded: JSON escapes it for the reader to decode.
    doc = json.loads(heaptrace("report", str(db), "--json").stdout)
    top = doc["growth"]["rows"][0]
    assert top["bytes"] == 8 << 20 and SYMBOL in top["stack"], top
    texts = {"run": run.stderr}
    for args in (("report",), ("timeline",), ("histogram",), ("flame", "--folded"),
                 ("report", "--pid", "99999")):
        proc = heaptrace(*args, str(db))
        texts[" ".join(args)] = proc.stdout + proc.stderr
    texts["error"] = heaptrace("report", str(tmp_path / "\x1b]52;c;eA==\x07.db")).stderr
    for what, text in texts.items():
        assert not any(c in text for c in RAW), (what, text)
    assert "\\x1b]52;c;cHduZWQ=\\x07grow\\x1b[2J" in texts["report"]
    assert "\\x1b]0;pwn\\x07" in texts["report"]  # the command line and the process name
    assert "\\x1b]52;c;eA==\\x07.db" in texts["error"]
