"""Console logging for the package's commands; task loggers are ``lsst.utils.logging``'s.

Task loggers (`lsst.utils.logging.getLogger`, an
`lsst.utils.logging.LsstLogAdapter` with ``trace`` and ``verbose`` and the
``TRACE`` and ``VERBOSE`` levels) come from lsst-utils, as in the LSST
Science Pipelines; the framework re-exports them. This module adds what the
package's command-line programs need on top: `consoleLogging` sets up the
console as the LSST command-line tools (``pipetask``, ``butler``) do:
``<logger name> <LEVEL>: <message>`` lines on standard error, the ``lsst``
loggers at the level asked for and other libraries' loggers at ``WARNING``.
"""

from __future__ import annotations

__all__ = ["CONSOLE_FORMAT", "LOG_LEVELS", "consoleLogging"]

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

# Imported for its side effect: it registers the TRACE and VERBOSE level names that `--log-level`
# (LOG_LEVELS) looks up by name.
import lsst.utils.logging  # noqa: F401

CONSOLE_FORMAT = "{name} {levelname}: {message}"
"""Format of console log lines (`str.format` style): the one of the LSST
command-line tools without ``--long-log``, so their log-reading habits and
``grep`` patterns carry over."""

LOG_LEVELS = ("TRACE", "DEBUG", "VERBOSE", "INFO", "WARNING", "ERROR", "CRITICAL")
"""Level names a command's ``--log-level`` accepts, most verbose first."""

#: The logger hierarchy that ``--log-level`` sets: every task logger (``lsst.<task>``) and module
#: logger (``lsst.meas.extensions.madness...``) of the package is in it.
_PACKAGE_ROOT_LOGGER = "lsst"


class _ConsoleHandler(logging.StreamHandler):
    """Stream handler that writes around running progress bars.

    A log line written while a ``tqdm`` bar is drawn on the same stream
    would be spliced into the bar; ``tqdm.write`` clears the bars, writes the
    line and draws them again.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is a dependency, but logging must never be what fails
            super().emit(record)
            return
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


def _levelNumber(level: int | str) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    return number


def _logWarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                file: TextIO | None = None, line: str | None = None) -> None:
    # A `warnings.showwarning` that logs, like `logging.captureWarnings`, but without the source
    # file and line, which name the package's internals rather than anything the user can act on.
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, message)


@contextmanager
def consoleLogging(level: int | str = "INFO", stream: TextIO | None = None) -> Iterator[logging.Handler]:
    """Print log records on the console for the duration of a ``with`` block.

    For command-line programs. Installs a handler on the root logger that
    writes ``<logger name> <LEVEL>: <message>`` lines (`CONSOLE_FORMAT`), sets
    the ``lsst`` logger hierarchy (every task and module of this package) to
    ``level`` and leaves other libraries' loggers at ``WARNING`` (or at
    ``level`` when that is higher), as LSST's ``pipetask`` does. Python
    warnings (`warnings.warn`) become records of the ``py.warnings`` logger,
    so they too carry a name and a level. Everything is put back on exit, so
    a program called in-process (a test) leaves the logging of its caller as
    it found it.

    Parameters
    ----------
    level : `int` or `str`, optional
        Lowest level shown from the ``lsst`` loggers: a number or one of
        `LOG_LEVELS` (any case).
    stream : `typing.TextIO`, optional
        Where the lines go; `sys.stderr` (as it is when the block starts) if
        `None`, which keeps standard output for the program's own results.

    Yields
    ------
    handler : `logging.Handler`
        The handler installed.

    Raises
    ------
    ValueError
        Raised if ``level`` is not a level name.

    Examples
    --------
    >>> import io
    >>> from lsst.utils.logging import getLogger
    >>> console = io.StringIO()
    >>> with consoleLogging("WARNING", stream=console):
    ...     getLogger("lsst.madnessDeblend").info("not shown")
    ...     getLogger("lsst.madnessDeblend").warning("%d parents skipped", 2)
    >>> print(console.getvalue(), end="")
    lsst.madnessDeblend WARNING: 2 parents skipped
    """
    number = _levelNumber(level)
    handler = _ConsoleHandler(sys.stderr if stream is None else stream)
    savedShowwarning = warnings.showwarning
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, style="{"))
    root, package = logging.getLogger(), logging.getLogger(_PACKAGE_ROOT_LOGGER)
    saved = root.level, package.level
    root.addHandler(handler)
    # Other libraries (JAX, matplotlib, torch) say useful things at WARNING and too much below it.
    root.setLevel(max(number, logging.WARNING))
    package.setLevel(number)
    warnings.showwarning = _logWarning
    try:
        yield handler
    finally:
        warnings.showwarning = savedShowwarning
        root.removeHandler(handler)
        root.setLevel(saved[0])
        package.setLevel(saved[1])
