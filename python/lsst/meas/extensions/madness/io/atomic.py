"""Files that appear whole or not at all.

A writer killed half-way (a batch system's time limit, an out-of-memory kill) must not leave a
file that looks complete: :func:`atomicPath` hands out a temporary name beside the target, and
renames it onto the target only when the writing succeeded. ``os.replace`` within one directory
is atomic on POSIX file systems, so a reader sees either the old file, or the new one whole.

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
import os
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

__all__ = ["atomicPath", "writeTextAtomic"]


@contextlib.contextmanager
def atomicPath(path: str | PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds, else delete it.

    The temporary name keeps the target's suffixes (``.x.fits`` stays a FITS name for writers
    that look at it) and starts with a dot, so directory listings and globs skip it.
    """
    path = Path(path)
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
