"""audiostream: the Python audio server story in miniature (python-bytearray-fragmentation).

Each radio keeps the last 128 KiB of its audio for late listeners. `--list` is the story's first
design: a list of variable-size bytes chunks (200-1500 bytes), the oldest popped when the list is
over its limit. `--ring` is the fix: one preallocated bytearray per radio, written in a circle.

Peak hour: 240 radios stream. Night: all but one radio in eight stop and are dropped. With the
list the freed chunks are scattered between the survivors' chunks in the heap, so the heap cannot
shrink and RSS stays up; with the ring each radio's buffer is one block (mmap'd by malloc, above
its mmap threshold) and goes back to the kernel whole when its radio stops.

It prints its RSS (from /proc/self/statm) at the end of the peak hour and at night:
    rss peak kib=K
    rss night kib=K radios=N
"""

import os
import random
import sys

LIMIT = 128 * 1024
RADIOS = 240
WRITES = 600  # chunks written per radio in the peak hour
NIGHT_KEEP = 8  # one radio in NIGHT_KEEP keeps streaming at night


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE") // 1024


class ListStream:
    """The story's AudioStream: a list of chunks, oldest popped over the limit."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.chunks: list = []
        self.total = 0

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.total += len(chunk)
        while self.total > self.limit:
            self.total -= len(self.chunks.pop(0))


class RingStream:
    """The fix: one bytearray of the limit's size, written in a circle."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.buffer = bytearray(limit)
        self.offset = 0

    def write(self, chunk: bytes) -> None:
        n = len(chunk)
        end = self.offset + n
        if end <= len(self.buffer):
            self.buffer[self.offset : end] = chunk
        else:
            first = len(self.buffer) - self.offset
            self.buffer[self.offset :] = chunk[:first]
            self.buffer[: n - first] = chunk[first:]
        self.offset = end % len(self.buffer)


SOURCE = random.Random(0).randbytes(1 << 16)  # the encoder's output, read in slices


def receive_chunk(rng: random.Random) -> bytes:
    """Audio from the source: a new bytes object of 200 to 1500 bytes."""
    start = rng.randrange(len(SOURCE) - 1500)
    return SOURCE[start : start + rng.randint(200, 1500)]


def peak_hour(streams: list, rng: random.Random) -> None:
    for _ in range(WRITES):
        for stream in streams:
            stream.write(receive_chunk(rng))


def night(streams: list, rng: random.Random) -> list:
    survivors = streams[::NIGHT_KEEP]
    streams.clear()
    for _ in range(WRITES // 4):
        for stream in survivors:
            stream.write(receive_chunk(rng))
    return survivors


def main(argv: list) -> int:
    if argv not in (["--list"], ["--ring"]):
        print("usage: audiostream.py --list | --ring", file=sys.stderr)
        return 2
    kind = ListStream if argv[0] == "--list" else RingStream
    rng = random.Random(13)
    streams = [kind() for _ in range(RADIOS)]
    peak_hour(streams, rng)
    print(f"rss peak kib={rss_kib()}", flush=True)
    survivors = night(streams, rng)
    print(f"rss night kib={rss_kib()} radios={len(survivors)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
