"""Files that appear whole or not at all, and output directories one run writes at a time.

A writer killed half-way (a batch system's time limit, an out-of-memory kill) must not leave a
file that looks complete: :func:`atomicPath` hands out a temporary name beside the target, and
renames it onto the target only when the writing succeeded. ``os.replace`` within one directory
is atomic on POSIX file systems, so a reader sees either the old file, or the new one whole. A
writer killed before its ``finally`` ran leaves its hidden temporary file; its name holds the
writer's PID, and :func:`removeStalePartials` removes those whose writer is gone.

Two runs writing one directory at once would each replace the other's files and both report
success: :func:`lockDirectory` lets one hold the directory, and refuses the other
(:class:`OutputLockedError`, naming the holder).

Examples
--------
>>> import pathlib, tempfile
>>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
>>> with atomicPath(target) as temporary:
...     _ = temporary.write_text("done")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('done', ['out.txt'])
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path

__all__ = ["LOCK_NAME", "OutputLockedError", "atomicPath", "lockDirectory", "removeStalePartials", "writeTextAtomic"]

#: The temporary names of :func:`atomicPath`: ``.<stem>.partial-<PID><suffix>``.
_PARTIAL_NAME = re.compile(r"^\..*\.partial-(?P<pid>[0-9]+)(\.[^/]*)?$")

#: The lock file :func:`lockDirectory` creates in the directory it holds.
LOCK_NAME = ".madness-lock"


@contextlib.contextmanager
def atomicPath(path: str | PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds, else delete it.

    The temporary name keeps the target's suffixes (``.x.fits`` stays a FITS name for writers
    that look at it) and starts with a dot, so directory listings and globs skip it.
    """
    path = Path(path)
    # The PID in the name tells removeStalePartials whether the writer is still alive.
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def writeTextAtomic(path: str | PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomicPath`."""
    with atomicPath(path) as temporary:
        temporary.write_text(text)


def _isRunning(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def removeStalePartials(directory: str | PathLike) -> list[Path]:
    """Remove the temporary files of :func:`atomicPath` in ``directory`` whose writer is no longer running.

    Returns
    -------
    list of Path
        The files removed. Those of a live process (this one included) are left alone.

    Examples
    --------
    >>> import pathlib, subprocess, sys, tempfile
    >>> directory = pathlib.Path(tempfile.mkdtemp())
    >>> gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
    ...                       text=True).stdout.strip()
    >>> _ = (directory / f".catalog.partial-{gone}.fits").write_text("half")
    >>> _ = (directory / f".catalog.partial-{os.getpid()}.fits").write_text("being written")
    >>> [p.name for p in removeStalePartials(directory)] == [f".catalog.partial-{gone}.fits"]
    True
    """
    removed: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for path in sorted(directory.iterdir()):
        match = _PARTIAL_NAME.match(path.name)
        if match is None or not path.is_file() or _isRunning(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


class OutputLockedError(RuntimeError):
    """Another run holds the output directory (:func:`lockDirectory`); the message names it."""


def _readHolder(fd: int) -> dict:
    text = os.pread(fd, 4096, 0).decode(errors="replace")
    try:
        holder = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        holder = {"unreadable": text[:200]}
    return holder if isinstance(holder, dict) else {"unreadable": text[:200]}


def _describe(holder: dict) -> str:
    if "pid" not in holder:
        return "a run that left no details"
    return f"PID {holder.get('pid')} on host {holder.get('host')!r}, started {holder.get('started')}"


@contextlib.contextmanager
def lockDirectory(directory: str | PathLike, warn: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold ``directory`` (which must exist) for one writer; yield the lock file's path.

    The lock is the file :data:`LOCK_NAME` in the directory, holding the PID, host and start time
    of its holder, with an exclusive ``flock`` on it for as long as the holder runs; it is removed
    when the block ends. A lock file whose ``flock`` is free was left by a run that ended without
    removing it (killed): one of this host is taken over, with a warning, as its PID no longer
    holds it (on a file system without ``flock``, only if that PID is not running); one of another
    host is refused, as whether it still runs cannot be told from here.

    Parameters
    ----------
    directory
        The directory to hold.
    warn
        Called with the message when a stale lock is taken over (default: ``warnings.warn``).

    Raises
    ------
    OutputLockedError
        If another run holds the directory, naming it (PID, host, start time) and the lock file.
    OSError
        If the lock file cannot be created (a read-only directory).

    Examples
    --------
    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> with lockDirectory(directory) as lock:
    ...     try:
    ...         with lockDirectory(directory):
    ...             pass
    ...     except OutputLockedError as error:
    ...         print(error)  # doctest: +ELLIPSIS
    /...: another run is writing this directory (PID ... on host ..., started ...); wait for it to end, ...
    >>> lock.exists()
    False
    """
    import fcntl

    path = Path(directory) / LOCK_NAME
    host = socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                flocked = True
            except BlockingIOError:
                raise OutputLockedError(f"{directory}: another run is writing this directory "
                                        f"({_describe(_readHolder(fd))}); wait for it to end, or give another "
                                        f"output directory (lock file {path})") from None
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                flocked = False  # no flock on this file system: the holder's PID decides alone
            if _sameFile(fd, path):
                holder = _readHolder(fd)
                break
            # Its holder removed the file while we waited for it (it removes it before letting go): a
            # lock on a removed file holds nothing, so start again on the path's new file.
            os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    try:
        if holder:
            sameHost = holder.get("host") == host
            pid = holder.get("pid")
            running = isinstance(pid, int) and _isRunning(pid)
            if not sameHost or (running and not flocked):
                elsewhere = "" if sameHost else " (its PID cannot be checked from this host)"
                raise OutputLockedError(
                    f"{directory}: another run is writing this directory ({_describe(holder)}), or was killed "
                    f"there{elsewhere}; if it is no longer running, remove {path}")
            (warn or (lambda message: warnings.warn(message, RuntimeWarning, stacklevel=4)))(
                f"{directory}: taking over the lock of a run that ended without removing it "
                f"({_describe(holder)}; lock file {path})")
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.pwrite(fd, (json.dumps({"pid": os.getpid(), "host": host, "started": started}) + "\n").encode(), 0)
        os.fsync(fd)
        yield path
    finally:
        # Removed while still held, so that no one can win the lock on the file as it goes.
        if _readHolder(fd).get("pid") == os.getpid() and _sameFile(fd, path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        os.close(fd)


def _sameFile(fd: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)
