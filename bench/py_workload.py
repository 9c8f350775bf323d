"""The Python workload of bench/python.py: the audio server's list of byte strings (the
seed's story), json and zlib, in nested calls; the work times itself.

    python bench/py_workload.py [ROUNDS]

Prints one JSON line: elapsed_s (the work alone, without interpreter start-up) and
main_started (time.time() when the work began).
"""

import json
import random
import sys
import time
import zlib


def receive_chunk(rng, source):
    start = rng.randrange(len(source) - 1500)
    return source[start:start + rng.randint(200, 1500)]  # a new bytes object


def broadcast(streams, rng, source, writes):
    for _ in range(writes):
        for stream in streams:
            stream.append(receive_chunk(rng, source))
            if len(stream) > 100:
                del stream[:50]


def encode(streams):
    text = json.dumps([len(s) for s in streams] * 2000)
    return zlib.decompress(zlib.compress(text.encode() * 8))


def main(rounds):
    rng = random.Random(7)
    source = rng.randbytes(1 << 16)
    streams = [[] for _ in range(200)]
    for _ in range(rounds):
        broadcast(streams, rng, source, 100)
        encode(streams)
        streams[::2] = [[] for _ in streams[::2]]  # half the radios start again


if __name__ == "__main__":
    started, t0 = time.time(), time.perf_counter()
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(json.dumps({"elapsed_s": time.perf_counter() - t0, "main_started": started}))
