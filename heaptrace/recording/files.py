"""Every file heaptrace writes (recordings, imports, palette maps, exports) is made the same way:
created with O_CREAT, O_EXCL and O_NOFOLLOW under a private name in the output's directory,
filled, then renamed over the output. Nothing is ever written through a link, into a device,
or over a file that is not what the command writes, and a previous output stays whole until the
new one replaces it.

The output's directory may belong to someone else (root writes into users' project
directories): names there are looked up relative to a descriptor of the directory opened once,
and whatever may have changed between a check and its use is checked again on the descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Set, Tuple

from heaptrace.errors import RecordingError

# What an output may replace: nothing, a heaptrace recording, or any regular file (--force);
# an export, any regular file but a recording.
NEVER, RECORDING, ANY_FILE, NOT_A_RECORDING = "never", "recording", "file", "not a recording"
SQLITE_MAGIC = b"SQLite format 3\x00"
DIR_LOCK_SECONDS = 10.0
_OPEN_EXISTING = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class OutputError(RecordingError):
    """An output file that heaptrace will not (or cannot) write."""


def invoking_user() -> Optional[Tuple[int, int]]:
    """(uid, gid) of the user who ran `sudo heaptrace ...`: the owner of what root writes."""
    if os.geteuid() != 0:
        return None
    try:
        uid, gid = int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"])
    except (KeyError, ValueError):
        return None
    return (uid, gid) if uid > 0 and gid >= 0 else None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@dataclass
class Existing:
    """What the output's name holds now."""

    kind: str  # "absent", "recording", "locked" (a heaptrace run is writing it) or "file"
    ident: Optional[Tuple[int, int]] = None  # (st_dev, st_ino) of the file


def application_id(header: bytes) -> Optional[int]:
    """The SQLite application id from a database's first 100 bytes, None if not SQLite."""
    if len(header) < 72 or not header.startswith(SQLITE_MAGIC):
        return None
    return int.from_bytes(header[68:72], "big")


def inspect(dirfd: int, name: str, shown: str, recording_id: int) -> Existing:
    """What `name` in the directory is; OutputError for anything no option lets heaptrace
    replace (a link, a directory, a device, a FIFO, a socket)."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return Existing("absent")
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {exc.strerror}") from None
    _refuse_special(st.st_mode, shown)
    try:
        fd = os.open(name, _OPEN_EXISTING, dir_fd=dirfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_special(stat.S_IFLNK, shown)
        raise OutputError(f"cannot read {shown}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        _refuse_special(st.st_mode, shown)
        ident = (st.st_dev, st.st_ino)
        if application_id(os.pread(fd, 100, 0)) != recording_id:
            return Existing("file", ident)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Existing("locked", ident)
        return Existing("recording", ident)
    finally:
        os.close(fd)


def _refuse_special(mode: int, shown: str) -> None:
    if stat.S_ISLNK(mode):
        raise OutputError(f"{shown} is a symbolic link: heaptrace does not write through links",
                          "remove it or choose another output")
    if stat.S_ISDIR(mode):
        raise OutputError(f"{shown} is a directory", "give a file name")
    if not stat.S_ISREG(mode):
        raise OutputError(f"{shown} is not a regular file (a device, FIFO or socket): "
                          "heaptrace writes regular files only")


def allow(existing: Existing, overwrite: str, shown: str, what: str) -> None:
    """OutputError unless the overwrite policy lets the output replace what is there."""
    if existing.kind == "absent":
        return
    if existing.kind == "locked":
        raise OutputError(f"{shown} is being recorded by another heaptrace run",
                          "wait for it to end or choose another output")
    if existing.kind == "recording" and overwrite in (RECORDING, ANY_FILE):
        return
    if existing.kind == "file" and overwrite in (ANY_FILE, NOT_A_RECORDING):
        return
    if overwrite == NOT_A_RECORDING:
        raise OutputError(f"{shown} is a heaptrace recording: will not overwrite it with {what}")
    if existing.kind == "recording" or overwrite == NEVER:
        raise OutputError(f"file already exists, will not overwrite without --force: {shown}")
    raise OutputError(f"{shown} exists and is not {what}: will not replace it without --force")


def open_directory(path: str) -> int:
    directory = os.path.dirname(path) or "."
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {directory}: {exc.strerror}") from None


@contextlib.contextmanager
def directory_locked(dirfd: int, shown: str) -> Iterator[None]:
    """Held while a check of the output and the rename that follows it must not interleave
    with another heaptrace's (two runs on one output)."""
    deadline = time.monotonic() + DIR_LOCK_SECONDS
    while True:
        try:
            fcntl.flock(dirfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise OutputError(f"cannot write {shown}: another process keeps its directory "
                                  "locked") from None
            time.sleep(0.01)
        except OSError:
            break  # a file system without flock: the check and rename stay as close as they can
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(dirfd, fcntl.LOCK_UN)


class PrivateFile:
    """A new file beside `output`, created under a private name (0600, or `mode` less the
    umask; owned by the sudo user when root runs for one) and held open and flock()ed until
    it replaces `output` or is discarded."""

    def __init__(self, output: str, overwrite: str, what: str, recording_id: int,
                 mode: int = 0o600) -> None:
        self.output = output
        self.name = os.path.basename(output)
        if not self.name or self.name in (".", ".."):
            raise OutputError(f"{output} is a directory", "give a file name")
        self.overwrite, self.what, self.recording_id = overwrite, what, recording_id
        self.dirfd = open_directory(output)
        self.fd = -1
        try:
            self.check()
            self.tmp_name = f".{self.name[:200]}.{secrets.token_hex(6)}.tmp"
            self.fd = os.open(self.tmp_name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o600, dir_fd=self.dirfd)
        except OSError as exc:
            os.close(self.dirfd)
            raise OutputError(f"cannot create a file beside {output}: {exc.strerror}") from None
        except BaseException:
            os.close(self.dirfd)
            raise
        self.replaced = False
        try:  # Ctrl-C from here on must not leave the private file behind either
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new inode: nobody holds it
            owner = invoking_user()
            if owner is not None:
                os.fchown(self.fd, *owner)
            os.fchmod(self.fd, mode & ~_umask() if mode != 0o600 else 0o600)
            st = os.fstat(self.fd)
            self.ident = (st.st_dev, st.st_ino)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp_name, dir_fd=self.dirfd)
            self.close()
            raise

    @property
    def tmp_path(self) -> str:
        return os.path.join(os.path.dirname(self.output), self.tmp_name)

    def check(self) -> None:
        allow(inspect(self.dirfd, self.name, self.output, self.recording_id), self.overwrite,
              self.output, self.what)

    def replace_output(self, before: Callable[[], None] = lambda: None) -> None:
        """Rename the private file over the output (checked again, then `before()`, both under
        the directory's lock)."""
        with directory_locked(self.dirfd, self.output):
            self.check()
            before()
            if self.ident_of(self.tmp_name) != self.ident:
                raise OutputError(f"the file being written for {self.output} was moved or "
                                  "replaced by another process")
            try:
                os.rename(self.tmp_name, self.name, src_dir_fd=self.dirfd,
                          dst_dir_fd=self.dirfd)
            except OSError as exc:
                raise OutputError(f"cannot write {self.output}: {exc.strerror}") from None
        self.replaced = True

    def ident_of(self, name: str) -> Optional[Tuple[int, int]]:
        try:
            st = os.stat(name, dir_fd=self.dirfd, follow_symlinks=False)
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None

    def unlink_beside(self, name: str) -> None:
        """Remove `name` from the output's directory if it is a file or a link (a stale
        journal of the recording being replaced); anything else is refused."""
        try:
            st = os.stat(name, dir_fd=self.dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise OutputError(f"{os.path.join(os.path.dirname(self.output), name)} is in the "
                              "way and is not a regular file")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.dirfd)

    def is_ours(self, name: str) -> bool:
        """True if `name` in the output's directory is the file this object created."""
        return self.ident_of(name) == self.ident

    def discard(self) -> None:
        """Remove the private file (if it is still ours) and let go of it."""
        if not self.replaced and self.fd >= 0 and self.is_ours(self.tmp_name):
            with contextlib.suppress(OSError):
                os.unlink(self.tmp_name, dir_fd=self.dirfd)
        self.close()

    def close(self) -> None:
        for fd in (self.fd, self.dirfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = self.dirfd = -1


def open_fds() -> Set[int]:
    """The process's open file descriptors (to find the one SQLite opened)."""
    where = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        return {int(fd) for fd in os.listdir(where)}
    except OSError:
        return set()


def held_by_another_fd(ident: Tuple[int, int], ours: int = -1) -> bool:
    """True if a descriptor other than `ours` is open on the file `ident` (dev, inode): the
    one SQLite opened, when it opened the file heaptrace created."""
    for fd in open_fds() - {ours}:
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ident:
            return True
    return False


def write_file(path: str, write: Callable[[BinaryIO], None], overwrite: str = ANY_FILE,
               what: str = "a file heaptrace wrote", recording_id: int = -1) -> None:
    """Write an output that is not a recording (a palette map, an export) the same way: a
    private file (0666 less the umask) that `write` fills, then renamed over what `overwrite`
    lets it replace at `path` (never through a link, never into a device)."""
    out = PrivateFile(path, overwrite, what, recording_id, mode=0o666)
    try:
        with os.fdopen(os.dup(out.fd), "wb") as stream:
            write(stream)
        out.replace_output()
    except OSError as exc:
        out.discard()
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        out.discard()
        raise
    out.close()


def write_text(path: str, text: str, what: str = "a file heaptrace wrote") -> None:
    """A small text output (a palette map), over any regular file at `path`."""
    def write(stream: BinaryIO) -> None:
        stream.write(text.encode("utf-8"))

    write_file(path, write, ANY_FILE, what)


def notice(message: str) -> None:
    """A note on stderr about a file being read (progress on stderr, results on stdout)."""
    print(f"heaptrace: {message}", file=sys.stderr, flush=True)
