"""Giving back the compile's memory: which mappings are dropped (the real drop: tests/host)."""

from __future__ import annotations

from heaptrace.backends.release import text_mappings

SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 400 kB
Private_Dirty:         0 kB
7f0000100000-7f0000900000 r-xp 00100000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                5000 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000900000-7f0000a00000 rw-p 00900000 08:01 11 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 100 kB
Private_Dirty:       100 kB
7f0001000000-7f0001100000 r-xp 00000000 08:01 12 /usr/lib/llvm-14/lib/libclang-cpp.so.14
Rss:                3000 kB
Private_Dirty:         4 kB
Anonymous:             4 kB
7f0002000000-7f0002100000 r-xp 00000000 08:01 13 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 900 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  40 kB
VmFlags: rd wr mr mw me gd ac
"""


def test_only_the_code_of_the_libraries_named_is_found_with_its_written_pages():
    found = text_mappings(SMAPS, ("libLLVM", "libclang"))
    assert [(m.start, m.end, m.rss_kb, m.private_kb) for m in found] == [
        (0x7f0000100000, 0x7f0000900000, 5000, 0),
        (0x7f0001000000, 0x7f0001100000, 3000, 8),  # a written page: it is kept
    ]
    assert text_mappings(SMAPS, ("libfoo",)) == []
