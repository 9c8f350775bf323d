"""py_alloc: a Python program that takes and gives back memory in the ways CPython does.

Run it as `/usr/bin/python3 -I -B tests/programs/py_alloc.py` with PYTHONHASHSEED=0 so two runs make
the same calls (-B: no .pyc written on the first run; a fixed hash seed: same dict sizes).
Syscalls besides the interpreter's start-up:
  mmap/munmap  bytearray(64 MiB) and its release: one mapping of ~64 MiB, then munmap
  mmap         200,000 small objects: pymalloc arenas (256 KiB mappings) and list growth
  mremap       growing a 16 MiB bytearray by appending: glibc realloc of an mmapped block
               moves it with mremap
  munmap       everything dropped at the end (pymalloc frees empty arenas)
"""

import sys


def main() -> int:
    big = bytearray(64 * 1024 * 1024)
    big[-1] = 1
    del big
    small = [(i, str(i)) for i in range(200_000)]
    grown = bytearray(16 * 1024 * 1024)
    for _ in range(8):
        grown += bytes(4 * 1024 * 1024)
    total = len(small) + len(grown)
    del small, grown
    sys.stderr.write(f"py_alloc: {total} items and bytes allocated and dropped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
