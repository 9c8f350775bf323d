"""Allocations at known Python call chains, each printed by the program itself.

Every site takes a large block (bytearray, a str, zlib's output buffer: malloc hands it
out with mmap or mremap) on the very line where it records traceback.extract_stack(), and
keeps the block alive so that no mmap threshold moves. One JSON line per site on the file
named by argv[1]: pid, site, and the chain root first as [file, function, line]; the
function is the code object's qualified name where the interpreter has one (3.11+), as
heaptrace names it. `via`: Python frames of a library the call goes through before the
allocation (json's), which the program cannot see from where it stands.

Shapes: nested functions, a method, a generator, a thread, C extension calls (json, zlib),
recursion, a handler after an exception unwound frames, a `finally` while one propagates,
and a child python started by subprocess (argv[2] == "child"), which prints its own sites.
argv[2] == "serve": a server that handles a request every 50 ms until it is killed (for
heaptrace run -p), each request a site. PY_FRAMES_SETTLE=S in the environment: sleep S
seconds before the first site. Runs on Python 3.8 and later.
"""

import json
import os
import subprocess
import sys
import threading
import time
import traceback
import zlib

MIB = 1 << 20
KEEP = []
OUT = sys.argv[1]
MODE = sys.argv[2] if len(sys.argv) > 2 else "main"
CHILD = MODE == "child"
_lock = threading.Lock()
SETTLE = float(os.environ.get("PY_FRAMES_SETTLE", "0"))
# linecache imports tokenize and reads this file on the first extract_stack(): done here, at
# the top, not inside the first (deepest) site, whose import's allocations would come with
# stacks deeper than a copy holds under -X perf's trampolines ([truncated], a flaky test)
traceback.extract_stack()


def site(name, via=()):
    """The caller's chain at the line it is on (call it on the allocating line)."""
    caller = sys._getframe(1)
    summary = traceback.extract_stack(caller)
    frames = []
    frame = caller
    while frame is not None:
        code = frame.f_code
        frames.append(getattr(code, "co_qualname", code.co_name))
        frame = frame.f_back
    frames.reverse()
    chain = [[s.filename, q, s.lineno] for s, q in zip(summary, frames)]
    line = json.dumps({"pid": os.getpid(), "site": name, "chain": chain, "via": list(via)})
    with _lock, open(OUT, "a") as out:
        out.write(line + "\n")
    return name


def size(k):
    """Block sizes 64 KiB apart from 2 MiB up: every site maps its own."""
    return 2 * MIB + (k + (40 if CHILD else 0)) * 65536 + 777


def nested():
    def inner():
        def innermost():
            KEEP.append((site("nested"), bytearray(size(1))))

        innermost()

    inner()


class Radio:
    def __init__(self):
        self.chunks = []

    def receive(self, n):
        self.chunks.append((site("method"), bytearray(n)))


def produce(count):
    for i in range(count):
        KEEP.append((site("generator"), bytearray(size(3 + i))))
        yield i


def recurse(depth):
    if depth == 0:
        KEEP.append((site("recursion"), bytearray(size(6))))
        return
    recurse(depth - 1)


def thrower(depth):
    if depth == 0:
        raise ValueError("unwinds three frames")
    thrower(depth - 1)


def handler():
    try:
        thrower(3)
    except ValueError:
        KEEP.append((site("except"), bytearray(size(7))))


def cleanup():
    try:
        raise KeyError("propagates through the finally")
    finally:
        KEEP.append((site("finally"), bytearray(size(8))))


def propagate():
    try:
        cleanup()
    except KeyError:
        return "caught"
    return "not raised"


def worker():
    KEEP.append((site("thread"), bytearray(size(9))))


def extensions():
    text = ["ab"] * (MIB // 4)  # json.dumps joins 1.5 MiB of output in one str
    KEEP.append((site("json", via=("dumps", "encode")), json.dumps(text)))
    packed = zlib.compress(bytes(8 * MIB))
    KEEP.append((site("zlib"), zlib.decompress(packed)))


def main():
    time.sleep(SETTLE)
    nested()
    Radio().receive(size(2))
    for _ in produce(3):
        pass
    recurse(40)
    handler()
    propagate()
    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join()
    extensions()
    if not CHILD:
        subprocess.run([sys.executable, __file__, OUT, "child"], check=True)


class Server:
    def handle(self, n):
        self.respond(n)

    def respond(self, n):
        KEEP.append((site("serve"), bytearray(256 * 1024 + 4096 * n)))


def serve():
    server, n = Server(), 0
    while True:
        server.handle(n)
        n += 1
        time.sleep(0.05)


if __name__ == "__main__":
    serve() if MODE == "serve" else main()
