"""File plumbing of the embedded journal: a directory lock, whole-or-nothing fsync'd appends that
cut off a torn last line first, and atomic rewrites. Blocking; callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...log import get_logger

__all__ = [
    "Appended",
    "Fsync",
    "Held",
    "Identity",
    "Write",
    "append_synced",
    "append_whole",
    "fsync_dir",
    "identity_of",
    "locked",
    "replace_file",
    "split_lines",
    "write_synced",
]

_log = get_logger("journal")

#: ``os.fsync`` and ``os.write``, injectable so that tests can count fsyncs or fill the disk.
Fsync = Callable[[int], None]
Write = Callable[[int, memoryview], int]
#: (device, inode): which file a path named when it was read; a rewrite makes a new one.
Identity = tuple[int, int]

_CHUNK = 1 << 16


@contextlib.contextmanager
def locked(lock_path: Path, *, exclusive: bool, block: bool = True) -> Iterator[bool]:
    """Hold ``flock`` on ``lock_path``: shared to read, exclusive to append or rewrite (every
    process using the directory, the gateway and the CLI, takes it). Yields False, holding
    nothing, when ``block`` is off and another process has it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode if block else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True, slots=True)
class Appended:
    """What :func:`append_whole` found and did."""

    #: Complete lines between the caller's offset and the append (another process wrote them).
    unread: bytes
    #: File offset of ``unread``.
    unread_at: int
    #: Offset just past the appended data: everything before it has been returned or written.
    end: int
    identity: Identity
    #: Bytes of a torn last line cut off before appending (0: none).
    torn: int


class Held:
    """A journal file and its lock kept open between the appends of a process's one writer.

    Every system call in the writer's thread gives up the interpreter and takes it back,
    waiting for the event loop to let go of it: opening and closing the lock and the file on
    every append were five more such waits per batch than the append needs (lock, one stat,
    write, fsync, unlock). The path is looked at on every append: a file replaced meanwhile
    (a compaction, here or in another process) is opened again.
    """

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path
        self._fd: int | None = None
        self._identity: Identity | None = None
        self._lock_fd: int | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The directory's exclusive lock (as :func:`locked`), through the lock file kept open."""
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def open(self) -> tuple[int, os.stat_result, bool]:
        """(fd, its stat, whether the file was just created) for an append; the lock is held."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if (
            self._fd is not None
            and stat is not None
            and (stat.st_dev, stat.st_ino) == self._identity
        ):
            return self._fd, stat, False
        self._close_file()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        found = os.fstat(fd)
        self._fd, self._identity = fd, (found.st_dev, found.st_ino)
        return fd, found, stat is None

    def close(self) -> None:
        self._close_file()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._identity = None


def append_whole(
    path: Path,
    data: bytes,
    *,
    offset: int | None,
    identity: Identity | None,
    write: Write = os.write,
    fsync: Fsync = os.fsync,
    held: Held | None = None,
) -> Appended:
    """Append ``data`` (whole lines) to ``path`` and fsync it; the caller holds the exclusive lock.

    The complete lines after ``offset`` that the caller has not read are returned (``offset``
    ``None``: the caller does not follow the file; a changed ``identity``: it is read again from
    the start). A last line without its newline was torn by a crash mid-write, so never
    acknowledged: it is cut off (logged) so the new line does not continue it. On any failure the
    file is cut back to its size before the append and ``OSError`` raised: an append is whole and
    durable, or not there at all. ``held``: the file kept open there (not closed here).
    """
    if held is None:
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        stat = os.fstat(fd)
    else:
        fd, stat, created = held.open()
    try:
        size = stat.st_size
        found: Identity = (stat.st_dev, stat.st_ino)
        if offset is not None and (found != identity or size < offset):
            offset = 0
        if offset is None:
            unread, start = b"", _after_last_newline(fd, size)
            unread_at = start
        else:
            unread = os.pread(fd, size - offset, offset) if size > offset else b""
            unread = unread[: unread.rfind(b"\n") + 1]
            unread_at, start = offset, offset + len(unread)
        torn = size - start
        if torn:
            _log.error(
                "%s: an unfinished line at byte %d (%d bytes, never acknowledged) is cut off "
                "before the next append",
                path,
                start,
                torn,
            )
            os.ftruncate(fd, start)
        try:
            _write_all(fd, data, write)
            fsync(fd)
        except OSError:
            _cut_back(path, fd, start, fsync)
            raise
    finally:
        if held is None:
            os.close(fd)
    if created:
        # A new file's name lives in its directory: without this, a power cut can lose the
        # first payment ever acknowledged along with the file.
        fsync_dir(path.parent)
    return Appended(unread, unread_at, start + len(data), found, torn)


def replace_file(path: Path, data: bytes, *, fsync: Fsync = os.fsync) -> Identity:
    """Write ``data`` to a temporary file, fsync it, rename it over ``path``, fsync the
    directory: readers see the old file or the new one, whole."""
    temporary = path.with_name(path.name + ".tmp")
    identity = write_synced(temporary, data, fsync=fsync)
    os.replace(temporary, path)
    fsync_dir(path.parent)
    return identity


def write_synced(path: Path, data: bytes, *, fsync: Fsync = os.fsync) -> Identity:
    """``path`` (created or emptied) holding ``data``, fsync'd; removed again on a failure."""
    return _synced(path, data, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, fsync)


def append_synced(path: Path, data: bytes, *, fsync: Fsync = os.fsync) -> Identity:
    """``data`` added to the end of the existing ``path``, fsync'd (a file made by
    :func:`write_synced` and not yet in place: removed on a failure)."""
    return _synced(path, data, os.O_WRONLY | os.O_APPEND, fsync)


def _synced(path: Path, data: bytes, flags: int, fsync: Fsync) -> Identity:
    fd = os.open(path, flags, 0o600)
    try:
        _write_all(fd, data, os.write)
        fsync(fd)
        stat = os.fstat(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return stat.st_dev, stat.st_ino


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def identity_of(path: Path) -> tuple[Identity, int] | None:
    """(identity, size) of ``path``, None when it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino), stat.st_size


def split_lines(data: bytes, at: int) -> Iterator[tuple[int, bytes]]:
    """(file offset, line) for each complete, non-blank line of ``data`` read at offset ``at``."""
    position = 0
    while (newline := data.find(b"\n", position)) >= 0:
        line = data[position:newline]
        if line.strip():
            yield at + position, line
        position = newline + 1


def _write_all(fd: int, data: bytes, write: Write) -> None:
    # os.write may write less than asked (a full disk fills up mid-buffer): what it says it
    # wrote is all that is there.
    view = memoryview(data)
    written = 0
    while written < len(data):
        count = write(fd, view[written:])
        if count <= 0:
            raise OSError(errno.ENOSPC, "nothing written")
        written += count


def _cut_back(path: Path, fd: int, size: int, fsync: Fsync) -> None:
    try:
        os.ftruncate(fd, size)
        fsync(fd)
    except OSError:
        # The partial bytes stay behind for now; the next append finds them as a torn line and
        # cuts them off before writing.
        _log.error("%s: a failed append could not be cut back to %d bytes", path, size)


def _after_last_newline(fd: int, size: int) -> int:
    """Offset just past the file's last newline (0 when it has none)."""
    end = size
    while end > 0:
        start = max(end - _CHUNK, 0)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0
